"""GET /v1/jobs (newest first, paged, the caller's own with keys on), job ownership, the cap
on queued jobs per key, and the v3 store migration (an old database still opens)."""

from __future__ import annotations

import sqlite3
from functools import partial

import pytest

from app.api.job_schemas import JobListResponse
from app.jobs.store import MIGRATIONS, SCHEMA_VERSION, NewJob, open_store
from tests.conftest import wait
from tests.test_security import ALICE, BOB, bearer

KEYS = f"alice:{ALICE},bob:{BOB}"


@pytest.fixture
def make_client(make_job_client):
    return partial(make_job_client, workers=0, inline=True, chunk_rows=16)


def submit(client, n=3, key=None, kind="reviews"):
    items = [{"id": f"r{i}", "text": "发货太慢了"} for i in range(n)]
    resp = client.post("/v1/jobs", json={"kind": kind, "items": items}, headers=bearer(key) if key else {})
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


# -- the store -----------------------------------------------------------------------------------
def make_job(store, job_id, owner=None, total=4):
    return store.create_job(NewJob(job_id, "reviews", total, {"plan": {}}, "/nowhere", [(0, total, 0)], owner=owner))


def test_store_lists_newest_first_with_the_total(tmp_path):
    store = open_store(tmp_path / "jobs.db")
    for i in range(5):
        make_job(store, f"j{i}", owner="alice" if i % 2 == 0 else "bob")
    page, total = store.list_jobs(None, 2, 0)
    assert [r.job_id for r in page] == ["j4", "j3"] and total == 5
    page, total = store.list_jobs(None, 2, 4)
    assert [r.job_id for r in page] == ["j0"] and total == 5
    page, total = store.list_jobs("alice", 10, 0)
    assert [r.job_id for r in page] == ["j4", "j2", "j0"] and total == 3
    assert [r.owner for r in page] == ["alice"] * 3
    assert store.list_jobs("carol", 10, 0) == ([], 0)
    assert store.active_jobs("bob") == 2 and store.active_jobs(None) == 5
    store.cancel_job("j1")
    assert store.active_jobs("bob") == 1
    assert store.job_counts() == {"queued": 4, "cancelled": 1}
    store.close()


def v2_database(path):
    """A job database as schema v2 wrote it, with one job in it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, statements in MIGRATIONS:
        if version <= 2:
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute(
        "INSERT INTO jobs (job_id, kind, status, total, n_chunks, params, work_path, created_at)"
        " VALUES ('old', 'reviews', 'done', 2, 1, '{}', '/nowhere', 1.0)"
    )
    conn.commit()
    conn.close()


def test_an_old_schema_database_opens_and_gains_the_owner_column(tmp_path):
    path = tmp_path / "jobs.db"
    v2_database(path)
    store = open_store(path)
    assert SCHEMA_VERSION >= 3
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(jobs)")]
    assert "owner" in cols
    indexes = {r[1] for r in sqlite3.connect(path).execute("PRAGMA index_list(jobs)")}
    assert "jobs_owner" in indexes
    old = store.get_job("old")
    assert old is not None and old.owner is None and old.status == "done"
    assert [r.job_id for r in store.list_jobs(None, 10, 0)[0]] == ["old"]
    assert store.list_jobs("alice", 10, 0) == ([], 0)  # an old job belongs to no key
    make_job(store, "new", owner="alice")
    assert [r.job_id for r in store.list_jobs(None, 10, 0)[0]] == ["new", "old"]
    store.close()
    assert open_store(path).migrate() == SCHEMA_VERSION  # and again: nothing to do


# -- the endpoint --------------------------------------------------------------------------------
def test_list_pages_newest_first_with_links(make_client):
    c = make_client()
    ids = [submit(c, n=i + 1) for i in range(3)]
    body = c.get("/v1/jobs").json()
    JobListResponse.model_validate(body)
    assert [j["job_id"] for j in body["jobs"]] == ids[::-1]
    assert (body["total"], body["limit"], body["offset"]) == (3, 20, 0)
    first = body["jobs"][0]
    assert (first["kind"], first["status"], first["total"], first["done"], first["errors"]) == (
        "reviews",
        "queued",
        3,
        0,
        0,
    )
    assert first["finished_at"] is None and first["created_at"].endswith("+00:00")
    assert first["links"] == c.get(f"/v1/jobs/{ids[2]}").json()["links"]
    page = c.get("/v1/jobs", params={"limit": 1, "offset": 1}).json()
    assert [j["job_id"] for j in page["jobs"]] == [ids[1]] and page["total"] == 3
    assert c.get("/v1/jobs", params={"offset": 10}).json()["jobs"] == []


def test_list_shows_finished_jobs_with_their_counts(make_client):
    c = make_client(workers=1)
    job_id = submit(c, n=5)
    wait(c, job_id)
    (job,) = c.get("/v1/jobs").json()["jobs"]
    assert (job["status"], job["done"], job["total"]) == ("done", 5, 5) and job["finished_at"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}, {"offset": 2**63}])
def test_bad_paging_is_422(make_client, params):
    resp = make_client().get("/v1/jobs", params=params)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_input", resp.text


def test_with_keys_a_key_sees_only_its_own_jobs(make_client):
    c = make_client(api_keys=KEYS)
    mine = submit(c, key=ALICE)
    theirs = submit(c, key=BOB)
    listed = c.get("/v1/jobs", headers=bearer(ALICE)).json()
    assert [j["job_id"] for j in listed["jobs"]] == [mine] and listed["total"] == 1
    assert [j["job_id"] for j in c.get("/v1/jobs", headers=bearer(BOB)).json()["jobs"]] == [theirs]
    for method, path in [
        ("GET", f"/v1/jobs/{theirs}"),
        ("GET", f"/v1/jobs/{theirs}/results"),
        ("GET", f"/v1/jobs/{theirs}/summary"),
        ("DELETE", f"/v1/jobs/{theirs}"),
    ]:
        resp = c.request(method, path, headers=bearer(ALICE))
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", (method, path)
        unknown = c.request(method, path.replace(theirs, "f" * 32), headers=bearer(ALICE))
        assert unknown.json() == {"error": {**resp.json()["error"], "message": unknown.json()["error"]["message"]}}
    assert c.get(f"/v1/jobs/{theirs}", headers=bearer(BOB)).json()["status"] == "queued"  # not cancelled
    assert c.get(f"/v1/jobs/{mine}", headers=bearer(ALICE)).status_code == 200
    assert c.delete(f"/v1/jobs/{mine}", headers=bearer(ALICE)).json()["status"] == "cancelled"


def test_queued_jobs_per_key_are_capped(make_client):
    c = make_client(api_keys=KEYS, max_queued_jobs_per_key=2)
    first = submit(c, key=ALICE)
    submit(c, key=ALICE)
    refused = c.post("/v1/jobs", json={"items": [{"text": "好"}]}, headers=bearer(ALICE))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_jobs"
    assert refused.headers["retry-after"].isdigit()
    submit(c, key=BOB)  # another key has its own allowance
    c.delete(f"/v1/jobs/{first}", headers=bearer(ALICE))  # a finished job no longer counts
    submit(c, key=ALICE)


def test_without_keys_the_cap_counts_every_job(make_client):
    c = make_client(max_queued_jobs_per_key=1)
    submit(c)
    assert c.post("/v1/jobs", json={"items": [{"text": "好"}]}).status_code == 429
    unlimited = make_client(max_queued_jobs_per_key=0)
    submit(unlimited)
