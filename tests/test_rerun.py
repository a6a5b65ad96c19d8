"""Cheap reruns: a rerun of a finished run with nothing to build starts neither Prefect nor the emulator and
reuses the report; anything that would change the report or an artefact runs as usual."""

from __future__ import annotations

import json

import pytest

from specstress.cli import main
from specstress.context import RunContext
from specstress.flows import planning
from specstress.warehouse.store import Warehouse
from tests.conftest import DEMO


@pytest.mark.slow
def test_a_rerun_with_every_artefact_built_does_nothing(demo_run, capsys, monkeypatch):
    wh = demo_run["warehouse"]

    def no_flow(*a, **k):
        raise AssertionError("the flow ran")

    import specstress.flows.stress_test as flow_module

    monkeypatch.setattr(flow_module, "stress_test", no_flow)
    assert main(["run", str(DEMO), "--set", f"warehouse={wh}", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calls_sent"] == 0 and summary["built"] == [] and summary["reused_from"]
    assert {s["status"] for s in summary["stages"]} == {"reused"}
    runs = {r["run_id"]: r for r in Warehouse(wh).latest_runs()}
    mine = runs[summary["run_id"]]
    assert mine["status"] == "completed" and mine["calls_sent"] == 0
    assert json.loads(mine["artefacts_json"]) == json.loads(runs[summary["reused_from"]]["artefacts_json"])
    assert mine["report_path"] == runs[summary["reused_from"]]["report_path"]
    # the views select the new run like any other
    assert main(["sql", "select count(*) as n from scenarios", "--warehouse", wh, "--run", summary["run_id"],
                 "--format", "csv"]) == 0
    assert int(capsys.readouterr().out.split()[-1]) > 0
    # other report settings, another artefact, or --resend-errors: the flow runs
    for overrides in ({"warehouse": wh, "report.top_n": 3}, {"warehouse": wh, "disagreement.high": 1.4}):
        assert planning.reusable_run(RunContext.create(DEMO, overrides)) is None
    with pytest.raises(AssertionError, match="the flow ran"):
        main(["run", str(DEMO), "--set", f"warehouse={wh}", "--resend-errors"])
