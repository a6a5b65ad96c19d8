"""Judge swaps: several matchers (roles.matchers), their agreement (matcher_agreement) and the conclusions under
each (sensitivity); a matcher added later pays for its own calls only."""

from __future__ import annotations

import random
import shutil

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.warehouse.sql_files import read_sql, render_sql
from tests.conftest import DEMO, make_emulator


def _agreement(rows_a: list[tuple], rows_b: list[tuple]) -> list[dict]:
    """matcher_agreement over placements (scenario, model, slot, position) of matchers a and b."""
    def tab(rows, judge):
        return pa.table({"scenario_id": [r[0] for r in rows], "model_id": [r[1] for r in rows],
                         "value_slot": [r[2] for r in rows], "position": [r[3] for r in rows],
                         "judge": [judge] * len(rows), "status": ["ok"] * len(rows)})
    con = duckdb.connect()
    con.register("a", tab(rows_a, "a"))
    con.register("b", tab(rows_b, "b"))
    sql = render_sql(read_sql("views", "matcher_agreement"), {"classifications": "a", "matcher_panel": "b"})
    out = con.sql(sql).to_arrow_table().to_pylist()
    con.close()
    return out


def _kappa(a: list[int], b: list[int]) -> float:
    """Quadratic-weighted Cohen's kappa from the confusion matrix (the textbook definition)."""
    n = len(a)
    obs = [[0.0] * 7 for _ in range(7)]
    for x, y in zip(a, b, strict=True):
        obs[x][y] += 1 / n
    ra = [sum(obs[i]) for i in range(7)]
    rb = [sum(obs[i][j] for i in range(7)) for j in range(7)]
    num = sum((i - j) ** 2 * obs[i][j] for i in range(7) for j in range(7))
    den = sum((i - j) ** 2 * ra[i] * rb[j] for i in range(7) for j in range(7))
    return 1 - num / den


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=80))
def test_weighted_kappa_matches_the_confusion_matrix_definition(pairs):
    a = [(f"s{i}", "m", 1, x) for i, (x, _) in enumerate(pairs)]
    b = [(f"s{i}", "m", 1, y) for i, (_, y) in enumerate(pairs)]
    got = {r["model_id"]: r for r in _agreement(a, b)}
    overall = got["(all)"]
    assert overall["placements"] == len(pairs)
    assert overall["exact"] == pytest.approx(sum(x == y for x, y in pairs) / len(pairs))
    assert overall["within_1"] == pytest.approx(sum(abs(x - y) <= 1 for x, y in pairs) / len(pairs))
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(xs)) > 1 or len(set(ys)) > 1 or xs[0] != ys[0]:
        assert overall["weighted_kappa"] == pytest.approx(_kappa(xs, ys), abs=1e-9)
        assert overall["weighted_kappa"] <= 1 + 1e-12
    else:
        assert overall["weighted_kappa"] is None   # one position only: kappa is undefined


def test_agreement_per_model_and_perfect_agreement():
    rnd = random.Random(1)
    a = [(f"s{i}", m, slot, rnd.randint(0, 6)) for i in range(50) for m in ("x", "y") for slot in (1, 2)]
    b = [(s, m, slot, p if m == "x" else 6 - p) for s, m, slot, p in a]
    got = {r["model_id"]: r for r in _agreement(a, b)}
    assert got["x"]["exact"] == 1.0 and got["x"]["weighted_kappa"] == pytest.approx(1.0)
    assert got["y"]["weighted_kappa"] < 0 and got["(all)"]["placements"] == 200
    assert {r["matcher_a"] for r in got.values()} == {"a"} and {r["matcher_b"] for r in got.values()} == {"b"}


@pytest.mark.slow
def test_adding_matchers_pays_only_for_the_new_ones(demo_run, tmp_path):
    """On a copy of the demo warehouse: a second matcher sends only its own placements; a third, later, only
    its own again. matcher_agreement and sensitivity then compare them."""
    from specstress.flows.stress_test import stress_test
    from specstress.warehouse import views

    wh = str(tmp_path / "warehouse")
    shutil.copytree(demo_run["warehouse"], wh)
    sent_models = []
    for matchers in (["judge-gpt", "judge-claude"], ["judge-gpt", "judge-claude", "judge-gemini"]):
        overrides = {"warehouse": wh, "roles.matchers": matchers}
        emu = make_emulator(DEMO, **overrides).start()
        try:
            summary = stress_test(str(DEMO), overrides, emulator_url=emu.url, quiet=True)
        finally:
            emu.stop()
        assert summary["status"] == "completed"
        calls = views.query(wh, f"select stage, model_id, count(*) as n from calls "
                                f"where run_id = '{summary['run_id']}' group by all").to_pylist()
        sent_models.append({(r["stage"], r["model_id"]) for r in calls})
        assert summary["calls_sent"] == sum(r["n"] for r in calls) > 0
    assert sent_models[0] == {("matcher_panel", "judge-claude")}
    assert sent_models[1] == {("matcher_panel", "judge-gemini")}
    agree = views.query(wh, "select * from matcher_agreement where model_id = '(all)'").to_pylist()
    assert {(r["matcher_a"], r["matcher_b"]) for r in agree} == {
        ("judge-claude", "judge-gemini"), ("judge-claude", "judge-gpt"), ("judge-gemini", "judge-gpt")}
    for r in agree:   # the sim matchers misread 5% of placements by one position: close agreement
        assert r["placements"] > 1000 and r["within_1"] > 0.97 and r["weighted_kappa"] > 0.85, r
    sens = views.query(wh, "select * from sensitivity").to_pylist()
    assert {r["matcher"] for r in sens} == {"judge-gpt", "judge-claude", "judge-gemini"}
    high = {r["matcher"]: r for r in sens if r["conclusion"] == "high_disagreement_set"}
    assert high["judge-gpt"]["overlap"] == 1.0 and 0.6 < high["judge-claude"]["overlap"] < 1.0
    assert {r["conclusion"] for r in sens} == {"high_disagreement_set", "top3_categories", "outlier_models",
                                              "fold_increase"}
