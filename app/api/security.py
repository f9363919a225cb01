"""API keys, request-rate and upload-volume limits for ``/v1/*``: one pure ASGI middleware
(``ApiGuard``) and the ``OwnerDep`` dependency the job routes filter by.

Keys (``PINGJIA_API_KEYS``) are read once at start-up and kept only as SHA-256 digests; a
request's key is hashed and compared with every configured digest (``hmac.compare_digest``,
no early exit), so neither the keys nor the timing of a comparison reveal one. A key's id —
its name, or the first 12 hex digits of its digest — is what jobs, logs and limits carry.
``/v1/admin`` keeps its own token (``PINGJIA_ADMIN_TOKEN``) and is not guarded here.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.core.middleware import route_path, send_error

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_KEY_CHARS = 16


class KeyConfigError(ValueError):
    """PINGJIA_API_KEYS cannot be used as given; the message says which entry and why."""


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys as ``(key id, digest)`` pairs."""

    entries: tuple[tuple[str, bytes], ...]
    weak: tuple[str, ...] = field(default=())  # ids of plain keys shorter than MIN_KEY_CHARS

    def identify(self, key: str) -> str | None:
        """The id of ``key``, or None; every configured digest is compared, in constant time."""
        given, found = key_digest(key), None
        for key_id, digest in self.entries:
            if hmac.compare_digest(given, digest) and found is None:
                found = key_id
        return found


def parse_entry(entry: str) -> tuple[str | None, bytes, bool]:
    """``(name, digest, plain)`` of one entry: ``key``, ``name:key``, ``sha256:<hex>`` or
    ``name:sha256:<hex>`` (a plain key without a name must not contain ``:``).

    >>> parse_entry("ci:sha256:" + "ab" * 32)[0], parse_entry("k" * 20)[0]
    ('ci', None)
    """
    name, rest = None, entry
    if not entry.lower().startswith("sha256:") and ":" in entry:
        name, rest = entry.split(":", 1)
        if not _NAME.match(name):
            raise KeyConfigError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    if rest.lower().startswith("sha256:"):
        hexdigest = rest[7:]
        if not _HEX64.match(hexdigest):
            raise KeyConfigError(f"{'key ' + name if name else 'an entry'}: sha256: needs 64 hex digits")
        return name, bytes.fromhex(hexdigest), False
    if not rest:
        raise KeyConfigError(f"key {name!r} is empty")
    return name, key_digest(rest), True


def load_keys(value: str | None) -> KeyRing | None:
    """The key ring from ``PINGJIA_API_KEYS`` — a file (one entry a line, ``#`` comments) or a
    comma-separated list — or None when unset/empty. Refuses duplicates and bad entries, so
    the service does not start with keys other than the operator meant."""
    if value is None or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        entries = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        where = str(path)
    elif value.strip().startswith(("/", "./", "../", "~")):
        raise KeyConfigError(f"PINGJIA_API_KEYS names {value.strip()!r}, which is not a file")
    else:
        entries, where = [e.strip() for e in value.split(",") if e.strip()], "PINGJIA_API_KEYS"
    if not entries:
        raise KeyConfigError(f"{where} holds no key")
    ring, weak, seen = [], [], set()
    for entry in entries:
        try:
            name, digest, plain = parse_entry(entry)
        except KeyConfigError as exc:
            raise KeyConfigError(f"{where}: {exc}") from None
        key_id = name or digest.hex()[:12]
        if key_id in seen or any(digest == d for _, d in ring):
            raise KeyConfigError(f"{where}: key {key_id!r} appears twice")
        seen.add(key_id)
        ring.append((key_id, digest))
        if plain and len(entry) - (len(name) + 1 if name else 0) < MIN_KEY_CHARS:
            weak.append(key_id)
    return KeyRing(tuple(ring), tuple(weak))


class TokenBucket:
    """Token buckets by key: ``rate`` tokens a second up to ``capacity``. Idle buckets (full
    again) are dropped when there are more than ``max_keys``, so many clients cannot grow it
    without bound."""

    def __init__(self, rate: float, capacity: float, max_keys: int = 10_000):
        self.rate, self.capacity, self.max_keys = rate, capacity, max_keys
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take ``cost`` tokens: 0.0 when granted, else the seconds until they would be."""
        bucket = self._refilled(key, now)
        if bucket[0] >= cost:
            bucket[0] -= cost
            return 0.0
        return (cost - bucket[0]) / self.rate

    def spend(self, key: str, cost: float, now: float | None = None) -> float:
        """Take ``cost`` tokens whatever is left (bytes already received); returns the balance."""
        bucket = self._refilled(key, now)
        bucket[0] -= cost
        return bucket[0]

    def _refilled(self, key: str, now: float | None) -> list[float]:
        """``key``'s bucket ``[tokens, last]`` topped up to ``now`` (a new one starts full; idle
        ones are pruned first when the table is full)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = [self.capacity, now]
        bucket[0], bucket[1] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate), now
        return bucket

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when there is none).

    >>> bearer_token("Bearer  abc "), bearer_token("Basic abc"), bearer_token(None)
    ('abc', None, None)
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def token_matches(authorization: str | None, expected: str) -> bool:
    """Whether the header carries ``expected`` as its bearer token (compared in constant time)."""
    given = bearer_token(authorization)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def retry_after(seconds: float) -> str:
    """Whole seconds, at least 1 (Retry-After takes an integer)."""
    return str(max(1, math.ceil(seconds)))


class ApiGuard:
    """Keys, request rate and upload volume for paths under ``/v1/`` (``/v1/admin`` excepted).
    Each part is off when its setting is unset; with all off the request passes untouched."""

    def __init__(self, app, keys: KeyRing | None, rate: TokenBucket | None, upload: TokenBucket | None):
        self.app, self.keys, self.rate, self.upload = app, keys, rate, upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = route_path(scope)
        if not path.startswith("/v1/") or path.startswith("/v1/admin/"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        if self.keys is not None:
            given = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
            key_id = self.keys.identify(given) if given else None
            if key_id is None:
                wrong = ', error="invalid_token"' if given else ""
                return await send_error(
                    scope,
                    send,
                    "unauthorized",
                    "send Authorization: Bearer <API key>" + (" (this key is not known)" if given else ""),
                    {b"www-authenticate": f"Bearer{wrong}".encode()},
                )
            scope.setdefault("state", {})["key_id"] = key_id
            who = key_id
        else:
            client = scope.get("client")
            who = client[0] if client else "-"
        if self.rate is not None:
            if wait := self.rate.take(who):
                why = f"more than {self.rate.rate:g} requests per second (burst {self.rate.capacity:g})"
                return await rate_limited(scope, send, why, wait)
        if self.upload is not None and scope["method"] in ("POST", "PUT", "PATCH"):
            return await self._metered(scope, receive, send, who, headers.get(b"content-length"))
        await self.app(scope, receive, send)

    async def _metered(self, scope, receive, send, who: str, declared: bytes | None):
        """Request bodies debit the key's hourly byte budget: a declared length up front
        (429 when over budget, 413 when larger than a whole hour's), a chunked body as it arrives."""
        budget = self.upload
        if declared is not None and declared.isdigit():
            size = int(declared)
            if size > budget.capacity:
                why = f"a {size}-byte body is more than PINGJIA_UPLOAD_BYTES_PER_HOUR ({budget.capacity:g})"
                return await send_error(scope, send, "body_too_large", why)
            if wait := budget.take(who, size):
                why = f"this body would exceed the {budget.capacity:g} bytes per hour allowed"
                return await rate_limited(scope, send, why, wait)
            return await self.app(scope, receive, send)

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                balance = budget.spend(who, len(message["body"]))
                if balance < 0:  # Retry-After: when the overdraft is paid back
                    raise HTTPException(
                        429,
                        detail=f"uploads exceeded {budget.capacity:g} bytes per hour; retry later",
                        headers={"Retry-After": retry_after(-balance / budget.rate)},
                    )
            return message

        await self.app(scope, counting_receive, send)


async def rate_limited(scope, send, why: str, wait: float) -> None:
    """429 ``rate_limited`` with the seconds to wait, in the message and in ``Retry-After``."""
    after = retry_after(wait)
    await send_error(scope, send, "rate_limited", f"{why}; retry after {after} s", {b"retry-after": after.encode()})


def build_guard_parts(settings) -> tuple[KeyRing | None, TokenBucket | None, TokenBucket | None]:
    """The guard's parts from the settings (raises ``KeyConfigError`` on bad keys)."""
    keys = load_keys(settings.api_keys)
    rate = TokenBucket(settings.rate_per_second, settings.rate_burst) if settings.rate_per_second else None
    hourly = settings.upload_bytes_per_hour
    upload = TokenBucket(hourly / 3600.0, hourly) if hourly else None
    return keys, rate, upload


def document_keys(app) -> None:
    """With keys on, the OpenAPI document says /v1 operations need a bearer key (and answer
    401), so /docs offers "Authorize"; /v1/admin keeps its own token."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key from PINGJIA_API_KEYS",
            }
            for path, ops in schema.get("paths", {}).items():
                if path.startswith("/v1/") and not path.startswith("/v1/admin"):
                    for op in ops.values():
                        op["security"] = [{"apiKey": []}]
                        op.setdefault("responses", {}).setdefault("401", {"description": "unauthorized"})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


async def get_owner(request: Request) -> str | None:
    """The caller's key id when keys are on (jobs are theirs alone); None when they are off."""
    return (request.scope.get("state") or {}).get("key_id")


OwnerDep = Annotated[str | None, Depends(get_owner)]
