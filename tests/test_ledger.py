"""The call ledger is the cache: final outcomes are hits, everything else is a miss."""

from __future__ import annotations

import pyarrow.parquet as pq

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.warehouse.ledger import Ledger, make_row
from specstress.warehouse.store import Warehouse, utcnow


def req(text: str, **kw) -> CallRequest:
    return CallRequest(provider="openai", model="m", messages=[{"role": "user", "content": text}],
                       params={"max_tokens": 10}, model_id="m1", purpose="test", **kw)


def record(led: Ledger, r: CallRequest, outcome: str, text: str = "x") -> None:
    res = CallResult(key=r.key, outcome=outcome, text=text, usage=Usage(10, 0, 5, 0), cost_usd=0.01, attempts=1)
    led.append(make_row(r, res, "run-1", utcnow(), [200]))


def test_key_is_content_addressed():
    a, b = req("hello"), req("hello")
    assert a.key == b.key and len(a.key) == 64
    assert req("hello", sample_index=1).key != a.key
    assert req("hello", endpoint="emulator").key != a.key
    # bookkeeping (purpose, model id, meta) does not enter the key
    c = CallRequest(provider="openai", model="m", messages=[{"role": "user", "content": "hello"}],
                    params={"max_tokens": 10}, model_id="other", purpose="elsewhere", meta={"x": 1})
    assert c.key == a.key


def test_hits_and_misses(tmp_path):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh, flush_rows=1000, flush_seconds=999)
    ok, refused, retry, unseen = req("ok"), req("refused"), req("retry"), req("unseen")
    record(led, ok, Outcome.OK, "fine")
    record(led, refused, Outcome.REFUSAL, "no")
    record(led, retry, Outcome.RETRYABLE_ERROR, None)
    # buffered rows are visible before any flush
    hits = led.lookup([ok.key, refused.key, retry.key, unseen.key])
    assert set(hits) == {ok.key, refused.key}
    assert hits[ok.key].text == "fine" and hits[ok.key].cached
    assert led.flush() == 3
    assert len(led.files()) == 1
    fresh = Ledger(wh)  # another process: reads only the files
    hits = fresh.lookup([ok.key, refused.key, retry.key, unseen.key])
    assert set(hits) == {ok.key, refused.key}
    assert hits[refused.key].outcome == Outcome.REFUSAL
    assert fresh.final_keys([ok.key, retry.key, unseen.key]) == {ok.key}


def test_retry_then_final_is_a_hit(tmp_path):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh)
    r = req("flaky")
    record(led, r, Outcome.RETRYABLE_ERROR, None)
    led.flush()
    assert led.lookup([r.key]) == {}
    record(led, r, Outcome.OK, "finally")
    led.flush()
    assert Ledger(wh).lookup([r.key])[r.key].text == "finally"


def test_flush_by_size_and_compaction(tmp_path):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh, flush_rows=5, flush_seconds=999)
    reqs = [req(f"q{i}") for i in range(23)]
    for r in reqs:
        record(led, r, Outcome.OK)
    led.flush()
    assert len(led.files()) == 5  # 4 full parts + the rest
    merged = led.compact(min_files=2)
    assert merged == 5 and len(led.files()) == 1
    assert pq.read_table(led.files()[0]).num_rows == 23
    assert Ledger(wh).final_keys(r.key for r in reqs) == {r.key for r in reqs}


def test_spent_by_run(tmp_path):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh)
    for i in range(4):
        record(led, req(f"c{i}"), Outcome.OK)
    assert abs(led.spent_by_run("run-1") - 0.04) < 1e-9
    led.flush()
    assert abs(Ledger(wh).spent_by_run("run-1") - 0.04) < 1e-9
    assert Ledger(wh).spent_by_run("other") == 0.0


def test_remaining_is_an_anti_join_in_plan_order(tmp_path):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh, flush_rows=3, flush_seconds=999)
    reqs = [req(f"r{i}") for i in range(10)]
    for r in reqs[:6]:
        record(led, r, Outcome.OK)
    record(led, reqs[6], Outcome.RETRYABLE_ERROR, None)
    record(led, reqs[7], Outcome.OK)  # still buffered: counts as final too
    keys = [r.key for r in reqs] + [reqs[9].key]
    assert led.remaining(keys) == [reqs[6].key, reqs[8].key, reqs[9].key]
    assert Ledger(Warehouse(str(tmp_path / "empty"))).remaining(keys[:2]) == keys[:2]


def test_a_failed_flush_loses_nothing(tmp_path, monkeypatch):
    wh = Warehouse(str(tmp_path))
    led = Ledger(wh, flush_rows=1000, flush_seconds=999)
    reqs = [req(f"f{i}") for i in range(3)]
    for r in reqs:
        record(led, r, Outcome.OK)
    real = wh.write_table
    calls = {"n": 0}

    def flaky(parts, table):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return real(parts, table)

    monkeypatch.setattr(wh, "write_table", flaky)
    import pytest

    with pytest.raises(OSError):
        led.flush()
    record(led, req("later"), Outcome.OK)
    assert led.flush() == 4  # the three rows came back, ahead of the new one
    assert Ledger(wh).final_keys(r.key for r in reqs) == {r.key for r in reqs}


def test_a_killed_writer_loses_no_finished_call(tmp_path):
    """Rows appended but not yet flushed when the process is killed are in its write-ahead log; the next
    ledger with wal=True writes them as a part and removes the log."""
    import os
    import subprocess
    import sys
    import textwrap

    from specstress.warehouse.ledger import wal_dir

    root = str(tmp_path / "wh")
    child = textwrap.dedent(f"""
        import os, signal
        from specstress.domain import CallRequest, CallResult, Usage
        from specstress.warehouse.ledger import Ledger, make_row
        from specstress.warehouse.store import Warehouse, utcnow
        led = Ledger(Warehouse({root!r}), flush_rows=10, flush_seconds=999, wal=True)
        for i in range(25):
            r = CallRequest(provider="openai", model="m", messages=[{{"role": "user", "content": f"k{{i}}"}}],
                            params={{"max_tokens": 10}}, model_id="m1", purpose="test")
            res = CallResult(key=r.key, outcome="ok", text=f"t{{i}}", usage=Usage(10, 0, 5, 0), cost_usd=0.01, attempts=1)
            led.append(make_row(r, res, "run-1", utcnow(), [200]))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True)
    assert proc.returncode == -9
    wh = Warehouse(root)
    keys = [req(f"k{i}").key for i in range(25)]
    assert len(Ledger(wh).final_keys(keys)) == 20          # two parts of 10 were flushed; 5 rows only in the WAL
    assert len(os.listdir(wal_dir(wh))) == 1
    led = Ledger(wh, wal=True)                              # a run's ledger recovers dead writers' logs
    assert led.final_keys(keys) == set(keys)
    assert led.lookup([keys[24]])[keys[24]].text == "t24"
    assert os.listdir(wal_dir(wh)) == []
    for i in range(3):                                      # a live writer's log goes once its rows are flushed
        record(led, req(f"new{i}"), Outcome.OK)
    assert len(os.listdir(wal_dir(wh))) == 1
    led.flush()
    assert os.listdir(wal_dir(wh)) == []
