"""JobStore (SQLite): schema, leases, the one-transaction commit, recovery, retention."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import time

import numpy as np
import pytest

from app.jobs.store import (
    MAX_ATTEMPTS,
    NO_ROW,
    SCHEMA_VERSION,
    ChunkOutput,
    ColumnSums,
    NewJob,
    StoreUnusable,
    check_not_lost,
    disk_problem,
    open_store,
)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "jobs.db")
    yield s
    s.close()


def make_job(store, job_id="j1", total=10, chunk=4):
    chunks = [(s, min(chunk, total - s), s * 100) for s in range(0, total, chunk)]
    return store.create_job(NewJob(job_id, "reviews", total, {"plan": {}}, "/nowhere", chunks))


def output(claim, terms=None):
    rows = [
        (claim.start_row + i, f"id{claim.start_row + i}", int(i == 0), json.dumps({"row": claim.start_row + i + 1}))
        for i in range(claim.n_rows)
    ]
    return ChunkOutput(rows, {("all", "", "rows"): claim.n_rows}, terms or {}, {"sentiment": "fake"})


def test_schema_is_created_in_wal_mode_and_versioned(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert open_store(f"sqlite:///{tmp_path}/jobs.db").migrate() == SCHEMA_VERSION  # idempotent


def test_a_newer_schema_is_refused(tmp_path):
    open_store(tmp_path / "jobs.db").close()
    conn = sqlite3.connect(tmp_path / "jobs.db")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    with pytest.raises(RuntimeError, match="newer"):
        open_store(tmp_path / "jobs.db")


def test_other_databases_are_named_not_silently_ignored():
    with pytest.raises(NotImplementedError, match="postgresql"):
        open_store("postgresql://db.example/pingjia")


def test_claims_go_in_order_and_commit_finishes_the_job(store):
    make_job(store)
    seen = []
    while claim := store.claim_chunk("w1"):
        assert store.get_job("j1").status == "running"
        assert store.commit_chunk(claim, output(claim))
        seen.append(claim.start_row)
    assert seen == [0, 4, 8]
    job = store.get_job("j1")
    assert (job.status, job.done, job.errors, job.chunks_done) == ("done", 10, 3, 3)
    assert job.finished_at and job.model == {"sentiment": "fake"}
    assert [r for r, _ in store.iter_results(job.jid)] == list(range(10))
    assert dict(((d, k, m), n) for d, k, m, n in store.iter_counts(job.jid)) == {("all", "", "rows"): 10}


def test_a_lost_lease_commits_nothing(store):
    make_job(store)
    claim = store.claim_chunk("w1")
    store.requeue("w1")  # the supervisor thought w1 was dead
    again = store.claim_chunk("w2")
    assert again.chunk_index == claim.chunk_index
    assert not store.commit_chunk(claim, output(claim))  # w1 comes back late: discarded
    assert store.commit_chunk(again, output(again))
    job = store.get_job("j1")
    assert job.done == 4 and [r for r, _ in store.iter_results(job.jid)] == [0, 1, 2, 3]


def test_recover_requeues_every_leased_chunk(store):
    make_job(store)
    a, b = store.claim_chunk("w1"), store.claim_chunk("w2")
    assert store.commit_chunk(a, output(a))
    assert store.recover() == 1  # b was in flight when the service died
    rest = []
    while claim := store.claim_chunk("w3"):
        store.commit_chunk(claim, output(claim))
        rest.append(claim.start_row)
    assert rest == [b.start_row, 8]
    assert [r for r, _ in store.iter_results(store.get_job("j1").jid)] == list(range(10))


def test_terms_and_counts_sum_across_chunks(store):
    make_job(store, total=8)
    c1 = store.claim_chunk("w")
    store.commit_chunk(c1, output(c1, {"慢": [2, 0, 2, 3], "好": [0, 1, 1, None]}))
    c2 = store.claim_chunk("w")
    store.commit_chunk(c2, output(c2, {"慢": [1, 1, 2, 1], "好": [1, 2, 3, 5]}))
    jid = store.get_job("j1").jid
    assert {t[0]: t[1:] for t in store.iter_terms(jid)} == {"慢": (3, 1, 4, 1), "好": (1, 3, 4, 5)}
    assert store.term_totals(jid) == (4, 4, 8)
    assert dict(((d, k, m), n) for d, k, m, n in store.iter_counts(jid))[("all", "", "rows")] == 8


def test_each_chunk_writes_one_report_row_not_a_row_per_term(store, tmp_path):
    make_job(store, total=10)
    for _ in range(2):
        c = store.claim_chunk("w")
        store.commit_chunk(c, output(c, {f"词{i}": [1, 0, 1, c.start_row] for i in range(50)}))
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("SELECT count(*) FROM chunk_reports").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM report_terms").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM report_counts").fetchone()[0] == 0
    c = store.claim_chunk("w")
    odd = ("g:渠道\t", 'a"b\x00\\😀', "rows")  # group columns and values are the upload's own
    store.commit_chunk(c, ChunkOutput(output(c).rows, {("all", "", "rows"): c.n_rows, odd: 2}, {}, {}))  # no terms
    jid = store.get_job("j1").jid
    terms = {t[0]: t[1:] for t in store.iter_terms(jid)}
    assert len(terms) == 50 and terms["词7"] == (2, 0, 2, 0)
    counts = dict(((d, k, m), n) for d, k, m, n in store.iter_counts(jid))
    assert counts[("all", "", "rows")] == 10 and counts[odd] == 2
    store.delete_job(jid)
    assert conn.execute("SELECT count(*) FROM chunk_reports").fetchone()[0] == 0


def test_counters_read_back_in_key_order_whatever_order_chunks_brought_them(store):
    make_job(store, total=8)
    later, earlier = ("day", "2026-10-02", "rows"), ("day", "2026-10-01", "rows")
    for counts in ({later: 4, ("g:渠道", "web", "rows"): 4}, {earlier: 4, ("all", "", "rows"): 8}):
        c = store.claim_chunk("w")
        store.commit_chunk(c, ChunkOutput(output(c).rows, counts, {}, {}))
    counts = list(store.iter_counts(store.get_job("j1").jid))
    assert [c[:3] for c in counts] == [("all", "", "rows"), earlier, later, ("g:渠道", "web", "rows")]


def test_a_job_begun_before_the_v4_upgrade_sums_its_old_and_new_counters(store, tmp_path):
    """Chunks committed by v3 code left their counters in report_counts/report_terms; the
    rest, committed after the upgrade, in chunk_reports: a report reads both."""
    make_job(store, total=8)
    jid = store.get_job("j1").jid
    conn = sqlite3.connect(tmp_path / "jobs.db")
    with conn:
        conn.execute("INSERT INTO report_counts VALUES (?, 'all', '', 'rows', 4)", (jid,))
        conn.execute("INSERT INTO report_counts VALUES (?, 'all', '', 'sent:negative', 1)", (jid,))
        conn.executemany(
            "INSERT INTO report_terms VALUES (?, ?, ?, ?, ?, ?)", [(jid, "慢", 2, 0, 2, 3), (jid, "旧", 0, 1, 1, None)]
        )
    store.claim_chunk("w")  # the first chunk: scored before the upgrade (its counters are above)
    c2 = store.claim_chunk("w")
    store.commit_chunk(c2, output(c2, {"慢": [1, 1, 2, 1], "好": [1, 2, 3, 5]}))
    terms = {t[0]: t[1:] for t in store.iter_terms(jid)}
    assert terms == {"慢": (3, 1, 4, 1), "旧": (0, 1, 1, None), "好": (1, 2, 3, 5)}
    assert store.term_totals(jid) == (4, 4, 8)
    counts = list(store.iter_counts(jid))
    assert counts == sorted(counts) and ("all", "", "rows", 8) in counts and ("all", "", "sent:negative", 1) in counts


def test_cancelled_jobs_are_not_claimed(store):
    make_job(store)
    assert store.cancel_job("j1").status == "cancelled"
    assert store.claim_chunk("w") is None


def test_a_chunk_that_keeps_killing_workers_fails_its_job(store):
    make_job(store)
    for _ in range(MAX_ATTEMPTS):
        assert store.claim_chunk("w").chunk_index == 0
        store.requeue("w")
    assert store.claim_chunk("w") is None
    job = store.get_job("j1")
    assert job.status == "failed" and job.error_code == "worker_crashed" and "rows 1-4" in job.error_message


def test_expired_jobs_are_deleted_with_their_rows(store):
    make_job(store, "old")
    make_job(store, "new")
    while claim := store.claim_chunk("w"):
        store.commit_chunk(claim, output(claim))
    old = store.get_job("old")
    assert store.expired_jobs(old.created_at - 1) == []
    assert [j.job_id for j in store.expired_jobs(time.time() + 1)] == ["old", "new"]
    store.delete_job(old.jid)
    assert store.get_job("old") is None and list(store.iter_results(old.jid)) == []
    assert store.get_job("new").status == "done"


def test_a_full_disk_is_reported_as_such_and_the_connection_stays_usable(store):
    make_job(store, total=40, chunk=20)
    claim = store.claim_chunk("w")
    big = ChunkOutput([(i, f"id{i}", 0, "x" * 3000) for i in range(20)], {}, {}, {"m": "1"})
    limit = store._conn.execute("PRAGMA max_page_count").fetchone()[0]
    store._conn.execute("PRAGMA max_page_count = 1")  # the file may not grow: SQLITE_FULL
    with pytest.raises(sqlite3.OperationalError) as caught:  # not "cannot rollback - no transaction"
        store.commit_chunk(claim, big)
    assert disk_problem(caught.value) == "disk_full" and not store._conn.in_transaction
    store._conn.execute(f"PRAGMA max_page_count = {limit}")
    assert store.commit_chunk(claim, big)  # the same lease, the same connection
    assert store.get_job("j1").done == 20


def test_disk_problems_are_told_from_other_errors():
    assert disk_problem(OSError(errno.ENOSPC, "full")) == disk_problem(OSError(errno.EDQUOT, "quota")) == "disk_full"
    assert disk_problem(OSError(errno.EIO, "io")) is None
    assert disk_problem(ValueError("x")) is None
    assert disk_problem(sqlite3.DatabaseError("database disk image is malformed")) is None


def test_release_hands_a_chunk_back_without_counting_the_attempt(store):
    make_job(store)
    claim = store.claim_chunk("w1")
    assert store.release(claim) and not store.release(claim)  # only the holder's lease, once
    again = store.claim_chunk("w2")
    assert again.chunk_index == claim.chunk_index
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT attempts FROM chunks WHERE chunk_index = 0").fetchone() == (1,)


def test_results_that_fall_short_of_the_committed_count_raise(store):
    make_job(store, total=10, chunk=10)
    claim = store.claim_chunk("w")
    store.commit_chunk(claim, output(claim))
    jid = store.get_job("j1").jid
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM results WHERE row_index >= 6")
    rows = store.iter_results(jid, batch=4)
    got = []
    with pytest.raises(StoreUnusable, match="6 result rows read where 10 were committed"):
        for r, _ in rows:
            got.append(r)
    assert got == list(range(6))  # streamed first; a download of them is cut off, not ended cleanly


def test_a_damaged_file_fails_verify_and_a_missing_one_is_refused_next_to_job_folders(tmp_path):
    store = open_store(tmp_path / "jobs.db")
    make_job(store)
    store.verify()
    store.verify(full=True)
    store.close()
    with open(tmp_path / "jobs.db", "r+b") as f:  # page 2 onwards: the tables' roots
        f.seek(4096)
        f.write(b"\xff" * 4096 * 3)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        s = open_store(tmp_path / "jobs.db")
        s.verify()
    check_not_lost(tmp_path / "absent.db", tmp_path / "jobs")  # a first start: nothing to lose
    (tmp_path / "jobs" / "abc").mkdir(parents=True)
    with pytest.raises(StoreUnusable, match="does not exist but .* holds 1 job folder"):
        check_not_lost(tmp_path / "absent.db", tmp_path / "jobs")


def test_the_job_database_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        store = open_store(tmp_path / "jobs.db")
        store.get_job("x")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("jobs.db")]
    assert {p.name for p in files} >= {"jobs.db", "jobs.db-wal"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    store.close()


def test_column_sums_fold_as_they_go_and_give_the_same_totals(monkeypatch):
    chunks = [(["慢", "好", f"词{i}"], [[1, 0, 2], [0, 1, 0], [1, 1, 1], [i, -1, 7 - i]]) for i in range(5)]
    totals = []
    for fold_every in (3, 10**6):  # folding after every chunk or two, or only at the end
        monkeypatch.setattr(ColumnSums, "FOLD_ENTRIES", fold_every)
        sums = ColumnSums((np.add, np.add, np.add, np.minimum))
        for keys, columns in chunks:
            sums.add(keys, columns)
        keys, columns = sums.result()
        totals.append((keys, [c.tolist() for c in columns]))
    assert totals[0] == totals[1]
    keys, (neg, pos, n_all, first) = totals[0]
    assert keys == ["慢", "好", "词0", "词1", "词2", "词3", "词4"]
    assert neg[:2] == [5, 0] and n_all[:2] == [5, 5] and first[:3] == [0, NO_ROW, 7]


def commit_all(store, terms_of) -> int:
    n = 0
    while c := store.claim_chunk("w"):
        store.commit_chunk(c, output(c, terms_of(c)))
        n += 1
    return n


def report_of(store, jid):
    return sorted(store.iter_terms(jid)), list(store.iter_counts(jid)), store.term_totals(jid)


def test_workers_fold_every_few_chunks_report_rows_into_one_and_the_report_is_the_same(tmp_path, monkeypatch):
    def terms_of(c):
        return {"慢": [1, 0, 1, c.start_row + 1], f"词{c.chunk_index}": [0, 1, 1, None], "好": [0, 2, 2, None]}

    reports = []
    for fold in (10**6, 3):
        monkeypatch.setattr("app.jobs.store.FOLD_CHUNKS", fold)
        s = open_store(tmp_path / f"fold{fold}.db")
        make_job(s, total=40)  # 10 chunks of 4
        assert commit_all(s, terms_of) == 10
        jid = s.get_job("j1").jid
        rows = [i for (i,) in s._conn.execute("SELECT chunk_index FROM chunk_reports ORDER BY chunk_index")]
        reports.append(report_of(s, jid))
        s.close()
    assert rows == [-7, -4, -1, 9]  # three folds of three chunks, keyed by their first, and the last chunk
    assert reports[0] == reports[1]
    terms, _, totals = reports[1]
    assert ("慢", 10, 0, 10, 1) in terms and ("好", 0, 20, 20, None) in terms and totals == (10, 30, 40)


def test_two_workers_folding_the_same_rows_count_them_once(tmp_path, monkeypatch):
    monkeypatch.setattr("app.jobs.store.FOLD_CHUNKS", 10**6)
    a, b = open_store(tmp_path / "jobs.db"), open_store(tmp_path / "jobs.db")
    make_job(a, total=12)
    commit_all(a, lambda c: {"慢": [1, 0, 1, c.start_row]})
    jid = a.get_job("j1").jid
    before = report_of(a, jid)
    monkeypatch.setattr("app.jobs.store.FOLD_CHUNKS", 3)
    real = ColumnSums.result

    def result_after_the_other_folds(self):
        monkeypatch.setattr(ColumnSums, "result", real)
        assert a._fold_reports(jid)  # the other worker folds the same rows meanwhile
        return real(self)

    monkeypatch.setattr(ColumnSums, "result", result_after_the_other_folds)
    assert b._fold_reports(jid) is False  # the rows it summed are gone: its sum is dropped
    assert report_of(a, jid) == before
    assert a._conn.execute("SELECT count(*) FROM chunk_reports").fetchone()[0] == 1


def test_a_chunk_committed_while_a_fold_sums_is_counted_once(tmp_path, monkeypatch):
    """Chunks commit out of order: the fold sums exactly the rows it chose, not a range that a
    chunk committed meanwhile would fall into (it would then be counted in the sum and again
    on its own)."""
    monkeypatch.setattr("app.jobs.store.FOLD_CHUNKS", 10**6)
    a, b = open_store(tmp_path / "jobs.db"), open_store(tmp_path / "jobs.db")
    make_job(a, total=16)  # chunks 0-3
    claims = [a.claim_chunk("w") for _ in range(4)]
    for c in (claims[0], claims[1], claims[3]):
        a.commit_chunk(c, output(c, {"慢": [1, 0, 1, c.start_row]}))
    monkeypatch.setattr("app.jobs.store.FOLD_CHUNKS", 3)
    real_add = ColumnSums.add

    def add_while_chunk_2_commits(self, keys, columns):
        monkeypatch.setattr(ColumnSums, "add", real_add)
        b.commit_chunk(claims[2], output(claims[2], {"慢": [1, 0, 1, 8]}))  # another worker, meanwhile
        real_add(self, keys, columns)

    monkeypatch.setattr(ColumnSums, "add", add_while_chunk_2_commits)
    monkeypatch.setattr(b, "_fold_reports", lambda jid: False)  # b only commits here
    assert a._fold_reports(a.get_job("j1").jid)
    assert list(a.iter_terms(a.get_job("j1").jid)) == [("慢", 4, 0, 4, 0)]
