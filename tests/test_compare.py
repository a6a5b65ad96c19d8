"""Run comparison (`specstress compare`, the comparison views) and spec_diff."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from specstress.cli import main
from specstress.paper_dataset import PAPER_MODELS, import_paper
from specstress.warehouse.compare import compare
from tests.conftest import DEMO, make_emulator, shared_data


def _release(path, shifted: str | None = None, shift: int = 0) -> None:
    """A miniature release: 8 scenarios, 12 models; ``shifted`` moves one model's value1 positions."""
    rows = []
    for i in range(8):
        r = {"rank": i, "query_generator": "o3", "value1": "accuracy", "value2": f"value {i % 2}",
             "nudge_direction": "neutral", "query": f"question {i}", "chunk_index": 0, "entry_idx": i}
        for j, m in enumerate(PAPER_MODELS):
            r[f"response_{m}"] = f"answer {m} {i}"
            p1 = (i + j) % 5
            r[f"{m}_value1_position"] = min(6, p1 + shift) if m == shifted else p1
            r[f"{m}_value2_position"] = 3
        rows.append(r)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_comparison_reports_the_model_that_moved_and_only_it(tmp_path, capsys):
    wh = str(tmp_path / "wh")
    _release(tmp_path / "a.parquet")
    _release(tmp_path / "b.parquet", shifted="grok_4", shift=2)
    import_paper(str(tmp_path / "a.parquet"), wh, name="before")
    import_paper(str(tmp_path / "b.parquet"), wh, name="after")
    table, runs = compare(wh, "before", "after")
    assert runs["a_name"] == "before" and runs["b_name"] == "after"
    pos = {r["model_id"]: r for r in table.to_pylist() if r["section"] == "positions"}
    assert set(pos) == set(PAPER_MODELS)
    assert all(pos[m]["shared"] == 16 for m in PAPER_MODELS)          # 8 scenarios x 2 value slots
    moved = {m for m, r in pos.items() if r["changed"]}
    assert moved == {"grok_4"}
    # value1 positions (i + 9) % 5 rise by 2, capped at 6: the exact expected mean shift over 16 slots
    want = sum(min(6, (i + 9) % 5 + 2) - (i + 9) % 5 for i in range(8)) / 16
    assert pos["grok_4"]["mean_shift"] == pytest.approx(want)
    changes, _ = compare(wh, "before", "after", "SELECT * FROM comparison_changes WHERE section = 'positions'")
    assert {r["model_id"] for r in changes.to_pylist()} == {"grok_4"}
    assert all(r["value_slot"] == 1 for r in changes.to_pylist())
    # the CLI prints the same, and refuses one run against itself
    assert main(["compare", "before", "after", "--warehouse", wh, "--format", "json"]) == 0
    assert '"grok_4"' in capsys.readouterr().out
    assert main(["compare", "before", "before", "--warehouse", wh]) == 2
    assert "same run" in capsys.readouterr().err
    assert main(["compare", "before", "nope", "--warehouse", wh]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["compare", "before", "after", "--warehouse", wh, "--sql", "DELETE FROM comparison"]) == 2


def own_copy(demo_run: dict, tmp_path) -> str:
    """A private copy of the shared demo warehouse: its ledger makes the second run cheap, and the shared one
    stays as the demo left it (other tests read its latest run)."""
    target = tmp_path / "warehouse"
    shutil.copytree(demo_run["warehouse"], target)
    return str(target)


@pytest.mark.slow
def test_compare_two_demo_runs_that_differ_in_one_persona(demo_run, tmp_path):
    """Only the persona whose planted weights changed moves beyond the matcher's noise; every other model's
    answers and refusal classifications come from the ledger unchanged."""
    from specstress.flows.stress_test import stress_test

    wh = own_copy(demo_run, tmp_path)
    # sim-guardian (persona 0) now puts Pleasure and enjoyment first instead of last
    overrides = {"warehouse": wh, "emulator.personas.0.weights": {"Pleasure and enjoyment": 3.0,
                                                                   "Protecting vulnerable entities": -1.0}}
    emu = make_emulator(DEMO, **overrides).start()
    try:
        stress_test(str(DEMO), overrides, emulator_url=emu.url, quiet=True)
    finally:
        emu.stop()
    from specstress.warehouse.store import Warehouse

    latest = Warehouse(wh).latest_runs()
    first = demo_run["summary"]["run_id"]
    second = next(r["run_id"] for r in latest if r["run_id"] != first and r["status"] == "completed")
    table, _ = compare(wh, first, second)
    rows = table.to_pylist()
    pos = {r["model_id"]: r for r in rows if r["section"] == "positions"}
    ref = {r["model_id"]: r for r in rows if r["section"] == "refusal_level"}
    others = ("scholar", "pragmatist", "communitarian", "individualist", "bon-vivant")
    # The matcher places all of a scenario's answers in one call, so a changed guardian answer re-draws the
    # matcher's occasional misreads (5% at the demo's judge accuracy) on the others: they move by noise only.
    assert pos["guardian"]["changed"] > 0 and pos["guardian"]["mean_abs_shift"] > 0.3
    assert pos["guardian"]["mean_abs_shift"] > 3 * max(pos[m]["mean_abs_shift"] for m in others)
    for m in others:
        assert pos[m]["mean_abs_shift"] < 0.15, (m, pos[m])
        assert ref[m]["changed"] == 0, (m, ref[m])   # the same answers, classified by the same ledger calls


@pytest.mark.slow
def test_spec_diff_on_the_two_openai_model_spec_versions(demo_run, tmp_path):
    """The demo's compliance judged under the 2025-04-11 and the 2025-12-18 OpenAI Model Spec, on the very
    same responses: spec_diff compares them per model and judge."""
    from specstress.flows.stress_test import stress_test
    from specstress.warehouse.store import Warehouse

    folder = shared_data() / "openai-model-spec"
    old, new = folder / "model_spec_2025-04-11.md", folder / "model_spec_2025-12-18.md"
    if not (old.exists() and new.exists()):
        pytest.skip("../shared/data/openai-model-spec is not here")
    wh = own_copy(demo_run, tmp_path)
    ids = []
    for path in (old, new):
        # the whole OpenAI spec goes into every judge prompt: priced as real calls it would exceed the demo's
        # $10 budget (the emulator charges nothing), and a smaller sample keeps the test short
        overrides = {"warehouse": wh, "compliance.model_spec": str(path), "budget_usd": 100.0,
                     "compliance.per_bin": 4, "compliance.random_sample": 4}
        emu = make_emulator(DEMO, **overrides).start()
        try:
            ids.append(stress_test(str(DEMO), overrides, emulator_url=emu.url, quiet=True)["run_id"])
        finally:
            emu.stop()
    assert len({r["run_id"] for r in Warehouse(wh).latest_runs()} & set(ids)) == 2
    table, _ = compare(wh, ids[0], ids[1], "SELECT * FROM spec_diff")
    rows = table.to_pylist()
    assert {r["model_id"] for r in rows} == {"guardian", "scholar"}           # the compliance group
    assert {r["judge"] for r in rows} >= {"majority", "judge-claude", "judge-gpt", "judge-gemini"}
    for r in rows:  # every judged response of one run was judged in the other, on the same response
        assert r["responses"] >= 8
        assert r["flagged_b"] - r["flagged_a"] == r["newly_flagged"] - r["no_longer_flagged"]
        assert 0.0 <= r["agreement"] <= 1.0
