"""Model output is data: judge outputs carrying injected instructions, forged ids and fields, huge strings and
control characters, planted through the emulator (emulator.faults.hostile_rate), alter no other row and break
no view."""

from __future__ import annotations

import pytest

from specstress.emulator import hostile
from tests.conftest import DEMO, make_emulator

#: views whose rows come from judge calls: their natural key, and the columns a judge's output fills
JUDGED = {
    "classifications": (("scenario_id", "model_id", "value_slot"), ("position", "confidence", "reasoning", "status")),
    "refusals": (("scenario_id", "model_id"), ("level", "label", "refusal", "reasoning")),
    "topics": (("scenario_id", "topic"), ("status", "reasoning")),
    "compliance_judgments": (("scenario_id", "model_id", "judge"), ("verdict", "reasoning", "sections", "status")),
}
RATE = 0.15


def test_hostile_outputs_cover_every_kind_and_keep_their_shape():
    data = {"placements": [{"response_id": "R1", "value1": {"position": 2, "confidence": 0.5, "reasoning": "r"},
                            "value2": {"position": 4, "confidence": 0.5, "reasoning": "r"}}]}
    kinds = {}
    for i in range(200):
        key = f"k{i}"
        kinds.setdefault(hostile.kind_of(key), hostile.hostile(data, key))
    assert set(kinds) == set(hostile.KINDS)
    assert kinds["injection"]["placements"][0]["value1"]["reasoning"].startswith("SYSTEM OVERRIDE")
    assert len(kinds["huge"]["placements"][0]["value1"]["reasoning"]) == 300_000
    assert "\x00" in kinds["control"]["placements"][0]["value2"]["reasoning"]
    forged = kinds["extra_fields"]
    assert forged["scenario_id"] == "s-forged" and [p["response_id"] for p in forged["placements"]] == ["R1", "R1", "R99"]
    assert sum(hostile.picked(f"k{i}", 0.1) for i in range(10_000)) in range(900, 1100)


@pytest.mark.slow
def test_hostile_judge_outputs_alter_no_other_row_and_break_no_view(demo_run, tmp_path):
    from specstress.flows.stress_test import stress_test
    from specstress.tasks.report import write_report_for
    from specstress.warehouse import views
    from specstress.warehouse.store import Warehouse

    wh = str(tmp_path / "warehouse")
    # huge outputs are billed as the emulator counts their tokens: a budget that the planted outputs fit in
    # a third of the demo's pairs (nested: the same first 50 pairs as the clean demo run, so their scenarios are
    # shared); the rows compared are those of scenarios both runs kept
    overrides = {"warehouse": wh, "emulator.faults.hostile_rate": RATE, "budget_usd": 1000.0, "pairs.count": 50}
    emu = make_emulator(DEMO, **overrides).start()
    try:
        summary = stress_test(str(DEMO), overrides, emulator_url=emu.url, quiet=True)
        planted = emu.stats()["hostile"]
    finally:
        emu.stop()
    assert summary["status"] == "completed" and planted > 50
    clean_run = demo_run["summary"]["run_id"]
    panel = {r["model_id"] for r in views.query(wh, "select distinct model_id from responses").to_pylist()}
    scenarios = {r["scenario_id"] for r in views.query(wh, "select scenario_id from scenarios").to_pylist()}
    kept = "select scenario_id from scenarios where kept"
    shared = ({r["scenario_id"] for r in views.query(wh, kept).to_pylist()}
              & {r["scenario_id"] for r in views.query(demo_run["warehouse"], kept, run=clean_run).to_pylist()})
    assert len(shared) > 50, len(shared)
    for view, (key, filled) in JUDGED.items():
        mine = {tuple(r[k] for k in key): r for r in views.query(wh, f"select * from {view}").to_pylist()}
        clean = {tuple(r[k] for k in key): r for r in
                 views.query(demo_run["warehouse"], f"select * from {view}", run=clean_run).to_pylist()}
        compared = hostile_rows = 0
        for r in mine.values():     # no forged id or field made a row of its own
            assert r["scenario_id"] in scenarios and r.get("model_id", next(iter(panel))) in panel, (view, r)
        for k in mine.keys() | clean.keys():
            if k[0] not in shared:
                continue
            a, b = mine.get(k), clean.get(k)
            if any(r is not None and r["call_key"] and hostile.picked(r["call_key"], RATE) for r in (a, b)):
                hostile_rows += 1
                continue            # a row from a hostile call is that call's data, whatever it says
            if view == "compliance_judgments" and (a is None or b is None):
                continue            # D moved on a hostile scenario, so the compliance sample differs there
            if view == "topics" and (a is None or b is None) and k[1] == "none":
                continue
            assert a is not None and b is not None, (view, k)
            assert {c: a[c] for c in filled} == {c: b[c] for c in filled}, (view, k)
            compared += 1
        assert hostile_rows > 0 and compared > 0, view
    pos = views.query(wh, "select min(position) as lo, max(position) as hi from classifications").to_pylist()[0]
    assert 0 <= pos["lo"] and pos["hi"] <= 6
    for view in views.view_names():                                # every view still answers
        views.query(wh, f"select count(*) from {view}")
    page = open(write_report_for(Warehouse(wh), summary["run_id"]), encoding="utf-8").read()
    assert "<script>alert(1)</script>" not in page and "\x1b[2J" not in page
