"""The API's recorded answers — the OpenAPI examples in ``app/api/examples/*.json`` and the
README's example answer — as the served models give them.

The requests are ``app/api/examples/requests.json``. Each goes through the whole HTTP app
in-process (middleware, validation, routes, response schemas; no server, no job workers), with
the default settings whatever the environment says. A retrained model answers differently, so
``make train`` runs this after training; ``tests/test_api_examples.py`` fails while an example
differs from what is served.

    .venv/bin/python training/record_examples.py
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.api.schemas import EXAMPLES
from app.conversations import load_conversation_rules
from app.core.config import Settings
from app.main import create_app
from app.pipeline.engine import build_pipeline
from training import DEFAULT_LEXICONS, DEFAULT_MODELS, REPO

README = REPO / "README.md"
README_MARKS = ("<!-- analyze example -->\n", "<!-- end analyze example -->")


def recorded_requests() -> dict[str, dict]:
    """Example name -> ``{"path", "body"}`` of its request."""
    return json.loads((EXAMPLES / "requests.json").read_text(encoding="utf-8"))


def answers(models_dir: Path = DEFAULT_MODELS, lexicon_dir: Path = DEFAULT_LEXICONS) -> dict[str, dict]:
    """Example name -> the app's answer to its request, with the models under ``models_dir``."""
    settings = Settings.model_construct(models_dir=Path(models_dir), lexicon_dir=Path(lexicon_dir))  # no env
    pipeline = build_pipeline(settings.lexicon_dir, settings.models_dir, max_text_chars=settings.max_text_chars)
    app = create_app(settings, pipeline=pipeline)
    app.state.conversation_rules = load_conversation_rules(settings.lexicon_dir)
    try:
        return {name: asyncio.run(_post(app, r["path"], r["body"])) for name, r in recorded_requests().items()}
    finally:
        app.state.analysis_pool.shutdown()


async def _post(app, path: str, body: dict) -> dict:
    """One POST through the ASGI app; the answer must be a 200. Written out rather than through
    httpx's ASGI transport: httpx is a dev dependency, and ``pingjia train`` runs this."""
    data = json.dumps(body, ensure_ascii=False).encode()
    incoming = [{"type": "http.request", "body": data, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"localhost"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("localhost", 80),
        "state": {},
    }
    await app(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if sent[0]["status"] != 200:
        raise RuntimeError(f"POST {path} answered {sent[0]['status']}: {answer[:300]!r}")
    return json.loads(answer)


def readme_block(analysis: dict) -> str:
    """An answer as the README shows it: one line per key, list items one per line."""
    lines = []
    for key, value in analysis.items():
        if isinstance(value, list) and value:
            shown = "[\n" + ",\n".join(f"  {_one_line(v)}" for v in value) + "]"
        else:
            shown = _one_line(value)
        lines.append(f" {_one_line(key)}: {shown}")
    return "```json\n{\n" + ",\n".join(lines) + "\n}\n```\n"


def _one_line(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def readme_example(readme: str) -> str:
    """The README's example answer: the text between its marks."""
    start, end = README_MARKS
    return readme.split(start, 1)[1].split(end, 1)[0]


def write(examples: dict[str, dict]) -> None:
    """Each answer into ``app/api/examples/<name>.json``, the analysis into the README."""
    for name, body in examples.items():
        (EXAMPLES / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if README.exists():  # a checkout (an installed package has none)
        readme = README.read_text(encoding="utf-8")
        README.write_text(readme.replace(readme_example(readme), readme_block(examples["analyze"])), encoding="utf-8")


if __name__ == "__main__":
    recorded = answers()
    write(recorded)
    print(f"recorded {', '.join(recorded)} into {EXAMPLES.relative_to(REPO)} and the README's example")
