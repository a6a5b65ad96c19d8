"""Two runs that share scenarios, started at the same moment on one warehouse, with ledger compactions forced
while both write (``SPECSTRESS_COMPACT_EVERY``): both finish, no view shows a duplicate, no paid call is lost, and
a third run that reads only their ledger sends nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DEMO, ROOT
from tests.test_crash_torture import _free_port, _stats, _wait_for


@pytest.mark.slow
def test_two_runs_at_once_on_one_warehouse_lose_nothing_and_duplicate_nothing(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from specstress.warehouse import views
    from specstress.warehouse.ledger import live_parts
    from specstress.warehouse.store import Warehouse

    root = str(tmp_path / "wh")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and k != "SPECSTRESS_CRASH_AT"}
    env.update({"PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "SPECSTRESS_COMPACT_EVERY": "2"})
    emulator = subprocess.Popen([sys.executable, "-m", "specstress", "emulator", "--spec", str(DEMO), "--port",
                                 str(port), "--faults", json.dumps({"latency_ms": 10, "rate_429": 0.02})],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cmd(wh: str, name: str, pairs: int) -> list[str]:
        return [sys.executable, "-m", "specstress", "run", str(DEMO), "--quiet", "--json", "--set", f"warehouse={wh}",
                "--set", f"name={name}", "--set", f"pairs.count={pairs}", "--emulator-url", f"http://127.0.0.1:{port}"]

    try:
        _wait_for(port)
        # the 10-pair sample nests in the 16-pair one (a prefix of one seeded order): the runs share 10 pairs
        procs = {name: subprocess.Popen(cmd(root, name, pairs), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, pairs in (("first", 10), ("second", 16))}
        out = {name: p.communicate(timeout=900) for name, p in procs.items()}
        for name, p in procs.items():
            assert p.returncode == 0, (name, out[name][1][-3000:])
        summaries = {name: json.loads(o[0]) for name, o in out.items()}
        sent_by_both = _stats(port)

        # a third run in a new warehouse holding only a copy of the ledger: every call the two runs paid for is
        # there, so it builds everything and sends nothing
        third = str(tmp_path / "third")
        shutil.copytree(os.path.join(root, "ledger"), os.path.join(third, "ledger"))
        r = subprocess.run(cmd(third, "third", 16), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        after = _stats(port)
    finally:
        emulator.kill()
        emulator.wait(10)

    assert after["requests"] == sent_by_both["requests"], "the third run sent calls the first two had paid for"
    assert json.loads(r.stdout)["status"] == "completed"
    compactions = [f for f in os.listdir(os.path.join(root, "ledger", "_retired")) if f.endswith(".json")]
    assert compactions, "no compaction ran while the runs wrote"
    for name, s in summaries.items():
        assert s["status"] == "completed", name
        run = s["run_id"]
        for view, key in (("scenarios", "scenario_id"), ("responses", "scenario_id, model_id"),
                          ("classifications", "scenario_id, model_id, value_slot"),
                          ("disagreement", "scenario_id, subset"), ("refusals", "scenario_id, model_id")):
            dup = views.query(root, f"select {key}, count(*) as n from {view} group by all having count(*) > 1",
                              run=run).num_rows
            assert dup == 0, (name, view)
        # every placement traces to a call in the ledger
        orphans = views.query(root, "select count(*) as n from classifications c left join calls k on c.call_key = "
                                    "k.key where c.call_key is not null and k.key is null", run=run)
        assert orphans.to_pylist()[0]["n"] == 0, name
    # the third run's views equal the second's (the same spec, built from the ledger alone)
    q = "select scenario_id, model_id, value_slot, position from classifications order by all"
    assert views.query(third, q).to_pylist() == views.query(root, q, run=summaries["second"]["run_id"]).to_pylist()
    print(f"parts live: {len(live_parts(Warehouse(root)))}; compactions: {len(compactions)}; emulator: "
          f"{sent_by_both['completed_keys']} keys, {sent_by_both['keys_completed_more_than_once']} completed twice "
          "(both runs sent a shared call at once)")
