"""Confusion-matrix figures for the model cards (PNG bytes; matplotlib from the `train` extra)."""
from __future__ import annotations

import io
from collections.abc import Sequence


def confusion_png(panels: Sequence[tuple[str, Sequence[str], Sequence[Sequence[int]]]], *, columns: int = 3,
                  title: str = "") -> bytes:
    """One heat-map panel per (title, labels, matrix rows = gold, columns = predicted), counts
    written in the cells and each row shaded by its own share (recall reads along the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (name, labels, matrix) in zip(axes.flat, panels):
        m = np.asarray(matrix, dtype=float)
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("gold", fontsize=7)
        ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
