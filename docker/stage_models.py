"""Copy only the served model versions (``models/current.json``) into a folder for the image.

The Dockerfile runs it in a build stage (``python:3.11-slim``, standard library only) and
copies the result into the final image, so older versions in ``models/`` never reach it:

    python docker/stage_models.py models /staged/models
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}-\d+$")
KIND = re.compile(r"^[a-z_]+$")


def stage(models: Path, out: Path) -> dict[str, str]:
    """Copy ``current.json`` and each version it names; refuse a pointer naming a missing one."""
    current = json.loads((models / "current.json").read_text(encoding="utf-8"))
    if not isinstance(current, dict) or not current:
        raise SystemExit(f"{models / 'current.json'} names no model versions")
    for kind, version in current.items():
        if not (isinstance(version, str) and KIND.match(kind) and VERSION.match(version)):
            raise SystemExit(f"{models / 'current.json'}: {kind!r}: {version!r} is not a model version")
        src = models / kind / version
        if not src.is_dir():
            raise SystemExit(f"{models / 'current.json'} serves {kind} {version}, but {src} does not exist")
        shutil.copytree(src, out / kind / version)
    shutil.copy2(models / "current.json", out / "current.json")
    return current


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: stage_models.py MODELS_DIR OUT_DIR")
    served = stage(Path(sys.argv[1]), Path(sys.argv[2]))
    print("staged:", ", ".join(f"{k} {v}" for k, v in sorted(served.items())))
