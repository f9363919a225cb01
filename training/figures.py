"""Figures for the model cards (PNG bytes; matplotlib from the `train` extra)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def _png(fig: Figure, dpi: int) -> bytes:
    """PNG bytes of a figure built without pyplot: no backend is chosen or switched, so a
    notebook's inline plots keep working and nothing stays registered after the call."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def confusion_png(
    panels: Sequence[tuple[str, Sequence[str], Sequence[Sequence[int]]]], *, columns: int = 3, title: str = ""
) -> bytes:
    """One heat-map panel per (title, labels, matrix rows = gold, columns = predicted), counts
    written in the cells and each row shaded by its own share (recall reads along the diagonal)."""
    rows = (len(panels) + columns - 1) // columns
    fig = Figure(figsize=(3.2 * columns, 3.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (name, labels, matrix) in zip(axes.flat, panels):
        m = np.asarray(matrix, dtype=float)
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("gold", fontsize=7)
        ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig, 100)


def pairs_png(model_m: dict | None, lex_m: dict) -> bytes:
    """Per-pair precision / recall / F1 bars (CV) for the aspect model, F1 marks for the lexicon."""
    keys = list(lex_m["pairs"])
    xs = np.arange(len(keys))
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    if model_m:
        ax.bar(xs - 0.27, [model_m["pairs"][k]["precision"] for k in keys], 0.27, label="model precision (CV)")
        ax.bar(xs, [model_m["pairs"][k]["recall"] for k in keys], 0.27, label="model recall (CV)")
        ax.bar(xs + 0.27, [model_m["pairs"][k]["f1"] for k in keys], 0.27, label="model F1 (CV)")
    ax.plot(xs, [lex_m["pairs"][k]["f1"] for k in keys], "k_", markersize=14, mew=2, label="lexicon F1")
    ax.set_xticks(xs, [f"{k}\n(n={lex_m['pairs'][k]['support']})" for k in keys], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("Aspect-polarity pairs: cross-validated precision / recall / F1")
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    return _png(fig, 110)
