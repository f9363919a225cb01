"""An earlier revision of this project checked out beside it, for the benches that compare
against the code as it was (``bench_revisions.py``, ``bench_pipeline.py --baseline``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(rev: str, where: Path) -> Path:
    """``rev`` in a detached worktree at ``where``, its extension (if any) built in place."""
    git("worktree", "add", "--detach", "--force", str(where), rev)
    if (where / "setup.py").exists():
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=where,
            check=True,
            capture_output=True,
        )
    return where


def remove(where: Path) -> None:
    git("worktree", "remove", "--force", str(where))
