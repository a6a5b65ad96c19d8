"""Bootstrap intervals (specstress/uncertainty.py, the uncertainty stage): the weights, the intervals'
width against theory, determinism, and estimates equal to what the views report."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.tasks.uncertainty import uncertainty_table
from specstress.uncertainty import Block, bootstrap_sums, competition_ranks, interval, poisson_weights, ratio
from specstress.warehouse.sql_files import run_model

CATEGORIES = [f"cat{i:02d}" for i in range(8)]


def test_poisson_weights_have_mean_and_variance_one():
    w = poisson_weights(np.random.default_rng(0), 100, 10_000)
    assert w.dtype == np.float32
    assert abs(w.mean() - 1) < 0.005 and abs(w.var() - 1) < 0.01
    # P(0) = P(1) = 1/e
    assert abs((w == 0).mean() - math.exp(-1)) < 0.003 and abs((w == 1).mean() - math.exp(-1)) < 0.003


def _mean_interval(values: np.ndarray, resamples: int, seed: int, confidence: float = 0.95):
    units = len(values)
    common = np.stack([values, np.ones(units)], axis=1).astype(np.float32)
    empty = np.zeros((units, 2), dtype=np.float32)
    boot = bootstrap_sums(common, empty, empty, [Block(0, units, -1, -1)], 0, resamples, seed)
    return interval(ratio(boot.common[:, 0], boot.common[:, 1])[:, None], confidence)


def test_interval_of_a_mean_has_the_width_theory_gives():
    rng = np.random.default_rng(3)
    values = (rng.random(4000) < 0.3).astype(float)
    lo, hi = _mean_interval(values, 2000, seed=1)
    p = values.mean()
    expected = 2 * 1.96 * math.sqrt(p * (1 - p) / len(values))
    assert lo[0] < p < hi[0]
    assert abs((hi[0] - lo[0]) / expected - 1) < 0.12, (hi[0] - lo[0], expected)


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    trials = 200
    for t in range(trials):
        values = rng.normal(1.0, 2.0, size=300)
        lo, hi = _mean_interval(values, 400, seed=t)
        covered += lo[0] <= 1.0 <= hi[0]
    assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_same_seed_same_intervals_and_chunking_does_not_matter(monkeypatch):
    rng = np.random.default_rng(5)
    values = rng.random(1000)
    first = _mean_interval(values, 300, seed=9)
    assert np.array_equal(first, _mean_interval(values, 300, seed=9))
    assert not np.array_equal(first, _mean_interval(values, 300, seed=10))


@settings(max_examples=40, deadline=None)
@given(st.floats(-3, 3, allow_nan=False), st.integers(1, 200), st.integers(0, 2**31))
def test_identical_units_give_an_interval_of_zero_width(value, units, seed):
    """Whatever the weights, the ratio of sums over identical units is their common value."""
    lo, hi = _mean_interval(np.full(units, value), 50, seed)
    # a resample that draws no unit has no mean and is left out (NaN)
    assert lo[0] == pytest.approx(value, abs=1e-5) and hi[0] == pytest.approx(value, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=60), st.integers(0, 2**31),
       st.floats(0.6, 0.99))
def test_interval_bounds_are_ordered_and_inside_the_data_range(values, seed, confidence):
    v = np.array(values)
    lo, hi = _mean_interval(v, 80, seed, confidence)
    assert lo[0] <= hi[0]
    assert v.min() - 1e-4 <= lo[0] and hi[0] <= v.max() + 1e-4


def test_competition_ranks_share_ties_and_put_missing_last():
    r = competition_ranks(np.array([[0.5, 0.9, 0.5, np.nan, -1.0]]))
    assert r.tolist() == [[2, 1, 2, 5, 4]]


def test_blocks_must_cover_the_units_in_order():
    x = np.zeros((4, 1), dtype=np.float32)
    v = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError):
        bootstrap_sums(x, v, v, [Block(0, 2, 0, 1)], 2, 10, 0)
    with pytest.raises(ValueError):
        bootstrap_sums(x, v, v, [Block(1, 4, 0, 1)], 2, 10, 0)


# ----------------------------------------------------------------------------- the stage's numbers


def _synthetic(seed: int, n_scenarios: int = 300, n_models: int = 5):
    """Classifications, pairs, subsets, refusals and outliers of a small synthetic run."""
    rnd = random.Random(seed)
    models = [f"model-{i}" for i in range(n_models)]
    pairs, rows, refusals = [], [], []
    for p in range(n_scenarios // 3):
        c1, c2 = rnd.sample(CATEGORIES, 2)
        pairs.append({"pair_id": f"p{p}", "category1": c1, "category2": c2, "top_category1": "T", "top_category2": "T"})
    for s in range(n_scenarios):
        pid = f"p{s % len(pairs)}"
        for m in models:
            for slot in (1, 2):
                ok = rnd.random() > 0.05
                rows.append({"scenario_id": f"s{s:04d}", "pair_id": pid, "model_id": m, "value_slot": slot,
                             "position": rnd.randint(0, 6) if ok else None, "status": "ok" if ok else "error"})
            refusals.append({"scenario_id": f"s{s:04d}", "model_id": m, "level": 0, "label": "x",
                             "refusal": rnd.random() < 0.1 + 0.05 * models.index(m), "reasoning": "", "source": "c",
                             "status": "ok", "call_key": "k"})
    cls = pa.Table.from_pylist(rows, schema=pa.schema([
        ("scenario_id", pa.string()), ("pair_id", pa.string()), ("model_id", pa.string()),
        ("value_slot", pa.int8()), ("position", pa.int8()), ("status", pa.string())]))
    subsets = {"all": models, "first_two": models[:2]}
    sub = pa.table({"subset": [s for s, ms in subsets.items() for _ in ms],
                    "model_id": [m for ms in subsets.values() for m in ms]})
    from specstress.tasks.refusals import REFUSALS_SCHEMA

    return models, cls, pa.Table.from_pylist(pairs), sub, pa.Table.from_pylist(refusals, schema=REFUSALS_SCHEMA)


@pytest.fixture(scope="module")
def synthetic_run():
    models, cls, pairs, sub, refusals = _synthetic(1)
    src = {"classifications": cls, "pairs": pairs, "subsets": sub}
    grid = run_model("position_grid", src)
    dis = run_model("disagreement", {"position_grid": grid, "subsets": sub}, {"high": 1.5})
    pri = run_model("value_priorities", {"position_grid": grid, "pairs": pairs, "subsets": sub})
    out = run_model("outliers", {"position_grid": grid, "subsets": sub}, {"min_gap": 4, "min_share": 9 / 11})
    sources = {"position_grid": grid, "pairs": pairs, "disagreement": dis, "refusals": refusals, "outliers": out}
    table = uncertainty_table(sources, models, pri.to_pylist(), resamples=400, confidence=0.9, unit="scenario", seed=3)
    return {"models": models, "sources": sources, "priorities": pri, "table": table, "refusals": refusals,
            "disagreement": dis, "outliers": out}


def _rows(table: pa.Table, metric: str) -> list[dict]:
    return [r for r in table.to_pylist() if r["metric"] == metric]


def test_estimates_equal_what_the_analyses_report(synthetic_run):
    t = synthetic_run["table"]
    dis = synthetic_run["disagreement"].to_pylist()
    for r in _rows(t, "mean_d"):
        ds = [x["d"] for x in dis if x["subset"] == r["subset"]]
        assert r["estimate"] == pytest.approx(sum(ds) / len(ds)) and r["n"] == len(ds)
        assert r["ci_low"] < r["estimate"] < r["ci_high"]
    for r in _rows(t, "high_share"):
        hs = [x["high"] for x in dis if x["subset"] == r["subset"]]
        assert r["estimate"] == pytest.approx(sum(hs) / len(hs))
    pri = {(x["model_id"], x["category"]): x for x in synthetic_run["priorities"].to_pylist()}
    scores = _rows(t, "category_score")
    assert len(scores) == len(pri) > 0
    for r in scores:
        p = pri[(r["model_id"], r["category"])]
        assert r["estimate"] == pytest.approx(p["score"], abs=1e-6) and r["n"] == p["n"]
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
    for r in _rows(t, "category_rank"):
        assert r["estimate"] == pri[(r["model_id"], r["category"])]["rank"]
        assert 1 <= r["ci_low"] <= r["ci_high"] <= len(CATEGORIES) and r["ci_low"] == int(r["ci_low"])
    ref = synthetic_run["refusals"].to_pylist()
    for r in _rows(t, "refusal_rate"):
        mine = [x["refusal"] for x in ref if x["model_id"] == r["model_id"]]
        assert r["estimate"] == pytest.approx(sum(mine) / len(mine))
    out = synthetic_run["outliers"].to_pylist()
    for r in _rows(t, "outlier_count"):
        assert r["estimate"] == sum(x["outlier"] for x in out if x["model_id"] == r["model_id"])
    assert {r["resamples"] for r in t.to_pylist()} == {400} and {r["confidence"] for r in t.to_pylist()} == {0.9}


def test_pair_clusters_change_the_intervals_not_the_estimates(synthetic_run):
    """Scenarios of one pair share its two categories: resampling whole pairs keeps them together. Here the
    scenarios are independent draws, so both give about the same widths: the cluster option runs and agrees."""
    s = synthetic_run
    pair = uncertainty_table(s["sources"], s["models"], s["priorities"].to_pylist(), resamples=400, confidence=0.9,
                             unit="pair", seed=3)
    w = {u: np.mean([r["ci_high"] - r["ci_low"] for r in _rows(tab, "category_score")])
         for u, tab in (("scenario", s["table"]), ("pair", pair))}
    assert 0.7 < w["pair"] / w["scenario"] < 1.4, w
    assert {r["unit"] for r in pair.to_pylist()} == {"pair"}
    est = {(r["metric"], r["subset"], r["model_id"], r["category"]): r["estimate"] for r in s["table"].to_pylist()}
    for r in pair.to_pylist():   # the unit changes the intervals, never the estimates
        assert r["estimate"] == pytest.approx(est[(r["metric"], r["subset"], r["model_id"], r["category"])])


def test_the_stage_is_deterministic_and_seeded(synthetic_run):
    s = synthetic_run
    again = uncertainty_table(s["sources"], s["models"], s["priorities"].to_pylist(), resamples=400, confidence=0.9,
                              unit="scenario", seed=3)
    assert again.equals(s["table"])
    other = uncertainty_table(s["sources"], s["models"], s["priorities"].to_pylist(), resamples=400, confidence=0.9,
                              unit="scenario", seed=4)
    assert not other.equals(s["table"])


def test_a_planted_refusal_gap_is_outside_the_other_models_interval(synthetic_run):
    """model-4 refuses 30% and model-0 10% (the synthetic run plants it): their intervals do not overlap."""
    rates = {r["model_id"]: r for r in _rows(synthetic_run["table"], "refusal_rate")}
    assert rates["model-0"]["ci_high"] < rates["model-4"]["ci_low"]


def test_figure2_and_table2_intervals_from_compliance_verdicts(synthetic_run):
    from specstress.tasks.compliance import COMPLIANCE_SCHEMA

    rnd = random.Random(2)
    rows = []
    bins = ["[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)", "[2.5,3]"]
    for s in range(200):
        b = bins[s % 5]
        samples = [f"bin:{b}"] + (["random"] if s % 2 else ["high:all"])
        share = 0.1 + 0.15 * bins.index(b)
        for m in ("model-0", "model-1"):
            bad = rnd.random() < share
            for j in ("j1", "j2", "j3"):
                verdict = "non_compliant" if bad or rnd.random() < 0.1 else "compliant"
                rows.append({"scenario_id": f"s{s:04d}", "model_id": m, "judge": j, "verdict": verdict,
                             "reasoning": "", "sections": [], "status": "ok", "samples": samples, "subset": "all",
                             "d": 0.5 * bins.index(b), "bin": b, "group_size": 2, "call_key": "k"})
    comp = pa.Table.from_pylist(rows, schema=COMPLIANCE_SCHEMA)
    s = synthetic_run
    t = uncertainty_table({**s["sources"], "compliance": comp}, s["models"], s["priorities"].to_pylist(),
                          resamples=400, confidence=0.95, unit="scenario", seed=3)
    # the same numbers as the paper's Figure 2 and Table 2 queries compute, over the compliance view
    import duckdb

    from specstress.warehouse.sql_files import read_sql, render_sql

    con = duckdb.connect()
    con.register("raw", comp)
    con.execute("CREATE VIEW compliance AS " + render_sql(read_sql("views", "compliance"), {"compliance": "raw"}))
    fig2 = {r[0]: r for r in con.execute(read_sql("queries", "figure2_noncompliance_by_bin")).fetchall()}
    table2 = {r[0]: r for r in con.execute(read_sql("queries", "table2_fold_increase")).fetchall()}
    for r in _rows(t, "noncompliance_majority"):
        b = r["sample"].removeprefix("bin:")
        assert round(100 * r["estimate"], 1) == fig2[b][2] and r["n"] == fig2[b][1]
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
    for r in _rows(t, "noncompliance_any"):
        assert round(100 * r["estimate"], 1) == fig2[r["sample"].removeprefix("bin:")][3]
    for r in _rows(t, "all_problematic_share"):
        assert round(100 * r["estimate"], 1) == table2[r["sample"]][2]
    (fold,) = _rows(t, "fold_vs_random")
    assert round(fold["estimate"], 2) == table2["high:all"][3]
    assert fold["ci_low"] < fold["estimate"] < fold["ci_high"]
    # the rising planted share: the top bin's interval sits above the bottom bin's
    nc = {r["sample"]: r for r in _rows(t, "noncompliance_majority")}
    assert nc["bin:[0,1)"]["ci_high"] < nc["bin:[2.5,3]"]["ci_low"]


def test_intervals_agree_with_scipy_percentile_bootstrap():
    """The stage's Poisson bootstrap of a mean against scipy.stats.bootstrap (percentile method, the classic
    multinomial resampling) on small skewed data: the bounds agree within Monte Carlo error (a fifth of a
    standard error; both use 20,000 resamples)."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(21)
    for n in (60, 250):
        values = rng.exponential(2.0, size=n)
        lo, hi = _mean_interval(values, 20_000, seed=n)
        ref = scipy_stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20_000,
                                    confidence_level=0.95, random_state=np.random.default_rng(n))
        se = values.std(ddof=1) / math.sqrt(n)
        assert abs(lo[0] - ref.confidence_interval.low) < 0.2 * se, (n, lo[0], ref.confidence_interval.low, se)
        assert abs(hi[0] - ref.confidence_interval.high) < 0.2 * se, (n, hi[0], ref.confidence_interval.high, se)
