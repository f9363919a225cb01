"""Versioned, safe model artifacts: one layout and one loader for every trained model.

Layout (``kind`` is ``sentiment``, ``aspects`` …; versions are ``YYYY-MM-DD-N``)::

    models/current.json                      {"sentiment": "2026-11-22-1", "aspects": ...}
    models/<kind>/<version>/model.skops      the object, written with skops (never pickle)
    models/<kind>/<version>/metrics.json     {"format": 1, "kind": ..., "model_sha256": ..., ...}
    models/<kind>/<version>/MODEL_CARD.md    what it is, what it was trained on, how well it does

Why skops with a trusted-types list: loading a model must never run code from the file.
Each kind names, in a module-level constant, the non-default types its artifacts may hold;
skops already trusts builtins, numpy, scipy and scikit-learn types. Anything else found in a
file stops the load with :class:`ArtifactError` instead of being trusted blindly.

Data-only artifacts (the served models: dicts, lists, JSON values and numpy arrays) are read
by :func:`read_data_only` with the standard library and numpy (``allow_pickle=False``): nothing
is imported or instantiated from the file, and serving never imports skops or scikit-learn,
which would cost a second and a half and 100 MB at start-up. Anything else in a file goes
through skops and its trusted-types check.

``metrics.json`` carries ``format`` (this module's layout version) and ``kind``; an artifact
written by an incompatible version is refused with a message saying so, and a file whose
sha256 differs from the one recorded at save time is reported as corrupt.
``current.json`` is shared by all kinds: it is read-modify-written under a lock and replaced
atomically, so saving a sentiment model never clobbers the aspects pointer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
"""Layout version written to and required in ``metrics.json``."""
SUPPORTED_FORMATS = frozenset({1})

POINTER_FILE = "current.json"
MODEL_FILE = "model.skops"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"

# Types beyond skops' defaults (builtins, numpy, scipy, scikit-learn) each kind may contain.
SENTIMENT_TRUSTED_TYPES: tuple[str, ...] = ()
"""The sentiment artifact is data only: a dict of numpy arrays, numbers and strings
(see ``app.pipeline.sentiment.LinearSentimentModel.state``); it needs nothing extra."""
ASPECTS_TRUSTED_TYPES: tuple[str, ...] = ()
"""Placeholder for the aspect model: list here any type its artifact needs beyond the defaults."""
TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    "sentiment": SENTIMENT_TRUSTED_TYPES,
    "aspects": ASPECTS_TRUSTED_TYPES,
}

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})-(\d+)$")


class ArtifactError(RuntimeError):
    """A model artifact is missing, corrupt, untrusted or incompatible; the message says which."""


def trusted_types(kind: str) -> list[str]:
    """The extra types ``kind`` artifacts may contain (unknown kinds: none beyond skops' defaults)."""
    return list(TRUSTED_TYPES.get(kind, ()))


def _read_json(path: Path, what: str):
    """A JSON file's content, or an ArtifactError naming ``what`` was unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{what} {path} is not valid JSON ({exc})") from None


def pointer(models_dir: Path) -> dict[str, str]:
    """Which version of each kind is served, from ``models/current.json``."""
    path = Path(models_dir) / POINTER_FILE
    if not path.is_file():
        raise ArtifactError(f"model pointer {path} is missing; train a model or restore the file")
    data = _read_json(path, "model pointer")
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ArtifactError(f"model pointer {path} must be a JSON object of kind -> version strings")
    return data


def list_versions(models_dir: Path, kind: str) -> list[str]:
    """Saved versions of ``kind``, oldest first (date, then counter)."""
    base = Path(models_dir) / kind
    if not base.is_dir():
        return []
    found = [
        (m.group(1), int(m.group(2)), p.name) for p in base.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))
    ]
    return [name for *_, name in sorted(found)]


@contextlib.contextmanager
def _locked(directory: Path):
    """An exclusive lock on ``directory`` itself (no lock file left lying in the tree)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def set_current(models_dir: Path, kind: str, version: str) -> None:
    """Point ``kind`` at ``version`` in current.json, keeping every other kind's entry."""
    models_dir = Path(models_dir)
    if not (models_dir / kind / version / MODEL_FILE).is_file():
        raise ArtifactError(f"cannot point {kind} at {version}: {models_dir / kind / version} has no {MODEL_FILE}")
    with _locked(models_dir):
        path = models_dir / POINTER_FILE
        current = pointer(models_dir) if path.exists() else {}
        current[kind] = version
        _write_atomic(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_kind(kind: str) -> None:
    if not _KIND.match(kind):
        raise ArtifactError(f"invalid artifact kind {kind!r} (lower-case letters, digits, _)")


def _next_version(models_dir: Path, kind: str, today: dt.date) -> str:
    day = today.isoformat()
    used = [int(v.rsplit("-", 1)[1]) for v in list_versions(models_dir, kind) if v.startswith(day + "-")]
    return f"{day}-{max(used, default=0) + 1}"


def save_artifact(
    models_dir: Path,
    kind: str,
    model_obj: Any,
    metrics: dict,
    card: str,
    *,
    version: str | None = None,
    make_current: bool = True,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a new version of ``kind`` and (by default) make it the one served.

    The files are written to a temporary directory and renamed into place, so a reader
    never sees half an artifact. An object holding types this module would refuse to load
    is refused here, before anything is written. ``extra_files`` (name -> bytes, e.g. a
    confusion-matrix PNG) are written beside them. Returns the version directory.
    """
    _check_kind(kind)
    models_dir = Path(models_dir)
    if version is not None and not _VERSION.match(version):
        raise ArtifactError(f"invalid version {version!r}; expected YYYY-MM-DD-N")
    base = models_dir / kind
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".tmp-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; artifacts are meant to be read by the service
    try:
        model_path = tmp / MODEL_FILE
        _skops().dump(model_obj, model_path, compression=zipfile.ZIP_DEFLATED)
        untrusted = set(_skops().get_untrusted_types(file=model_path)) - set(trusted_types(kind))
        if untrusted:
            raise ArtifactError(
                f"refusing to save a {kind} artifact holding types not in its trusted "
                f"list: {sorted(untrusted)} (add them to artifacts.TRUSTED_TYPES if safe)"
            )
        header = {
            "format": FORMAT,
            "kind": kind,
            "model_sha256": _sha256(model_path),
            "model_bytes": model_path.stat().st_size,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        body = {k: v for k, v in metrics.items() if k not in header and k != "version"}
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        for name, data in (extra_files or {}).items():  # e.g. a confusion-matrix PNG
            if "/" in name or name in (MODEL_FILE, METRICS_FILE, CARD_FILE) or name.startswith("."):
                raise ArtifactError(f"invalid extra artifact file name {name!r}")
            (tmp / name).write_bytes(data)
        for _attempt in range(1000):
            ver = version or _next_version(models_dir, kind, dt.date.today())
            meta = {**header, "version": ver, **body}
            try:
                (tmp / METRICS_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            except TypeError as exc:
                raise ArtifactError(f"metrics are not JSON-serialisable: {exc}") from None
            try:
                os.rename(tmp, base / ver)  # fails if another writer took this version meanwhile
                break
            except OSError:
                if version is not None:
                    raise ArtifactError(f"{base / ver} already exists; versions are never overwritten") from None
        else:  # pragma: no cover
            raise ArtifactError(f"could not allocate a new version under {base}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        set_current(models_dir, kind, ver)
    return base / ver


def read_metrics(models_dir: Path, kind: str, version: str) -> dict:
    """``metrics.json`` of one version, checked for a compatible format and the right kind."""
    vdir = Path(models_dir) / kind / version
    if not vdir.is_dir():
        raise ArtifactError(f"{kind} version {version} not found: {vdir} does not exist")
    path = vdir / METRICS_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the artifact is incomplete")
    metrics = _read_json(path, "metrics file")
    if not isinstance(metrics, dict):
        raise ArtifactError(f"{path} must hold a JSON object")
    fmt = metrics.get("format")
    if fmt not in SUPPORTED_FORMATS:
        raise ArtifactError(
            f"{vdir} has artifact format {fmt!r}; this code reads format(s) "
            f"{sorted(SUPPORTED_FORMATS)} - retrain or upgrade the service"
        )
    if metrics.get("kind") != kind:
        raise ArtifactError(f"{vdir} holds a {metrics.get('kind')!r} artifact, not {kind!r}")
    return metrics


def load_artifact(models_dir: Path, kind: str, version: str | None = None) -> tuple[Any, dict, str]:
    """(object, metrics, version) of ``kind``; the served version unless one is named.

    Every failure is an :class:`ArtifactError` naming the file and what is wrong with it.
    """
    _check_kind(kind)
    models_dir = Path(models_dir)
    if version is None:
        version = pointer(models_dir).get(kind)
        if version is None:
            raise ArtifactError(f"{models_dir / POINTER_FILE} names no {kind!r} version")
    if not _VERSION.match(version):
        raise ArtifactError(f"invalid {kind} version {version!r}; expected YYYY-MM-DD-N")
    metrics = read_metrics(models_dir, kind, version)
    path = models_dir / kind / version / MODEL_FILE
    if not path.is_file():
        raise ArtifactError(f"model file {path} is missing")
    expected = metrics.get("model_sha256")
    if expected and _sha256(path) != expected:
        raise ArtifactError(f"model file {path} is corrupt: its sha256 differs from the one in {METRICS_FILE}")
    try:
        obj = read_data_only(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"model file {path} is corrupt or not a skops file ({type(exc).__name__}: {exc})") from None
    if obj is not _NOT_DATA_ONLY:
        return obj, metrics, version
    sio = _skops()
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ArtifactError(f"model file {path} is corrupt or not a skops file ({type(exc).__name__}: {exc})") from None
    untrusted = sorted(set(found) - set(trusted_types(kind)))
    if untrusted:
        raise ArtifactError(
            f"model file {path} contains untrusted types {untrusted}; "
            f"refusing to load (trusted for {kind}: {trusted_types(kind) or 'skops defaults only'})"
        )
    try:
        obj = sio.load(path, trusted=trusted_types(kind))
    except Exception as exc:
        raise ArtifactError(f"model file {path} could not be loaded ({type(exc).__name__}: {exc})") from None
    return obj, metrics, version


def _skops():
    """skops.io, imported when first needed (it imports scikit-learn: see the module docstring)."""
    import skops.io  # noqa: PLC0415 - deliberately lazy

    return skops.io


_NOT_DATA_ONLY = object()


def read_data_only(path: Path) -> Any:
    """The object in a skops file made only of dicts with string keys, lists, JSON values and
    numpy arrays of numbers (the served models' states), read without skops; ``_NOT_DATA_ONLY``
    when the file holds anything else. Arrays are read with ``allow_pickle=False``."""
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))

        def node(n: Any) -> Any:
            loader, cls, module = n.get("__loader__"), n.get("__class__"), n.get("__module__")
            if loader == "JsonNode" and n.get("is_json") and module == "builtins":
                return json.loads(n["content"])
            if loader == "NdArrayNode" and n.get("type") == "numpy" and (cls, module) == ("ndarray", "numpy"):
                arr = np.load(io.BytesIO(z.read(n["file"])), allow_pickle=False)
                if arr.dtype.hasobject:
                    raise _NotDataOnly
                return arr
            if loader == "ListNode" and (cls, module) == ("list", "builtins"):
                return [node(v) for v in n["content"]]
            if loader == "DictNode" and (cls, module) == ("dict", "builtins"):
                keys = n.get("key_types", {}).get("content", [])
                if any((k.get("__class__"), k.get("__module__")) != ("str", "builtins") for k in keys):
                    raise _NotDataOnly
                return {k: node(v) for k, v in n["content"].items()}
            raise _NotDataOnly

        try:
            return node(schema)
        except _NotDataOnly:
            return _NOT_DATA_ONLY


class _NotDataOnly(Exception):
    pass


def encode_strings(items) -> np.ndarray:
    """Strings as one uint8 array (utf-8, NUL-joined): how states store vocabularies, so an
    artifact needs no trusted types beyond numpy arrays."""
    return np.frombuffer("\x00".join(items).encode("utf-8"), dtype=np.uint8).copy()


def decode_strings(blob) -> list[str]:
    return bytes(blob).decode("utf-8").split("\x00") if len(blob) else []


def count_strings(blob) -> int:
    """``len(decode_strings(blob))``, checking the UTF-8 without making a string of each name
    (a vocabulary holds half a million).

    >>> count_strings(encode_strings(["好", "b", ""])), count_strings(encode_strings([]))
    (3, 0)
    """
    return bytes(blob).decode("utf-8").count("\x00") + 1 if len(blob) else 0


def check_state(state, kind: str, schema: int, keys: tuple[str, ...], trainer: str) -> None:
    """Refuse a model state dict this code cannot serve, with a message rather than a crash
    later: not a dict, another schema version, or missing keys."""
    if not isinstance(state, dict):
        raise ArtifactError(f"{kind} artifact holds a {type(state).__name__}, not a state dict")
    if state.get("schema") != schema:
        raise ArtifactError(
            f"{kind} state schema {state.get('schema')!r}; this code reads {schema} - retrain with {trainer}"
        )
    if missing := [k for k in keys if k not in state]:
        raise ArtifactError(f"{kind} state lacks {missing}")


def is_configured(models_dir: Path, kind: str) -> bool:
    """Whether ``current.json`` names a version of ``kind``. No pointer and no saved version
    means "use the fallback"; saved versions that nothing points at are a broken deployment,
    and raise rather than let a service quietly run on the fallback."""
    models_dir = Path(models_dir)
    if (models_dir / "current.json").exists() and kind in pointer(models_dir):
        return True
    if saved := list_versions(models_dir, kind):
        raise ArtifactError(
            f"{models_dir / kind} has versions {saved} but {models_dir / 'current.json'} "
            f"names none; point it at one (artifacts.set_current)"
        )
    return False
