"""The analytics SQL models (position_grid, then disagreement, outliers, value_priorities) against
plain-Python references, on generated warehouses: panels of 2 to 40 models (so grids of up to three
15-model lanes, and subsets spread over lanes), missing and non-ok placements, several scenarios."""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.warehouse.sql_files import run_model

CATEGORIES = ["care", "candour", "autonomy", "safety"]


def _examples(full: int) -> int:
    """Hypothesis examples: the full count in CI, a quarter in the fast tier (SPECSTRESS_FAST=1)."""
    return max(10, full // 4) if os.environ.get("SPECSTRESS_FAST") == "1" else full


@st.composite
def warehouses(draw):
    n_models = draw(st.integers(2, 40))
    # model names whose sort order differs from their creation order
    models = [f"m{draw(st.integers(0, 9))}-{i:02d}" for i in range(n_models)]
    n_scenarios = draw(st.integers(1, 5))
    rows, pairs = [], {}
    for s in range(n_scenarios):
        pair_id = f"p{s % 3}"
        if pair_id not in pairs:
            c1, c2 = draw(st.lists(st.sampled_from(CATEGORIES), min_size=2, max_size=2, unique=True))
            pairs[pair_id] = {"pair_id": pair_id, "category1": c1, "category2": c2,
                              "top_category1": c1.upper(), "top_category2": c2.upper()}
        for m in models:
            for slot in (1, 2):
                kind = draw(st.sampled_from(["ok", "ok", "ok", "ok", "missing", "absent"]))
                if kind == "absent":
                    continue
                rows.append({"scenario_id": f"s{s}", "pair_id": pair_id, "model_id": m, "value_slot": slot,
                             "position": draw(st.integers(0, 6)) if kind == "ok" else None, "status": kind})
    subsets = {"all": models}
    for k in range(draw(st.integers(0, 3))):
        subsets[f"sub{k}"] = draw(st.lists(st.sampled_from(models), min_size=2, max_size=n_models, unique=True))
    return rows, list(pairs.values()), subsets


def _tables(rows, pairs, subsets):
    cls = pa.Table.from_pylist(rows, schema=pa.schema([
        ("scenario_id", pa.string()), ("pair_id", pa.string()), ("model_id", pa.string()),
        ("value_slot", pa.int8()), ("position", pa.int8()), ("status", pa.string())]))
    sub = pa.table({"subset": [s for s, ms in subsets.items() for _ in ms],
                    "model_id": [m for ms in subsets.values() for m in ms]})
    return cls, pa.Table.from_pylist(pairs), sub


def _placed(rows):
    """(scenario, model) -> {slot: position} over ok placements."""
    out: dict = defaultdict(dict)
    for r in rows:
        if r["status"] == "ok" and r["position"] is not None:
            out[(r["scenario_id"], r["model_id"])][r["value_slot"]] = r["position"]
    return out


@settings(max_examples=_examples(60), deadline=None)
@given(warehouses())
def test_disagreement_sql_matches_reference(wh):
    rows, pairs, subsets = wh
    cls, _, sub = _tables(rows, pairs, subsets)
    got = {(r["subset"], r["scenario_id"]): r
           for r in run_model("disagreement", {"classifications": cls, "subsets": sub}, {"high": 1.5}).to_pylist()}
    placed = _placed(rows)
    scenarios = sorted({r["scenario_id"] for r in rows})
    want = {}
    for name, members in subsets.items():
        for s in scenarios:
            v = {slot: [placed[(s, m)][slot] for m in members if slot in placed.get((s, m), {})] for slot in (1, 2)}
            counts = [len(v[1]), len(v[2])]
            nonzero = [c for c in counts if c > 0]
            if not nonzero or min(nonzero) < 2:
                continue
            stds = [statistics.pstdev(v[k]) if v[k] else None for k in (1, 2)]
            want[(name, s)] = (min(nonzero), stds, max(x or 0.0 for x in stds))
    assert set(got) == set(want)
    for key, (n_models, stds, d) in want.items():
        r = got[key]
        assert r["n_models"] == n_models
        assert r["subset_size"] == len(subsets[key[0]])
        for k, std in zip(("std_value1", "std_value2"), stds, strict=True):
            assert (r[k] is None) == (std is None) and (std is None or r[k] == pytest.approx(std, abs=1e-12))
        assert r["d"] == pytest.approx(d, abs=1e-12)
        assert r["high"] == (r["d"] >= 1.5)


@settings(max_examples=_examples(60), deadline=None)
@given(warehouses(), st.integers(1, 6), st.sampled_from([9 / 11, 0.5, 1.0]))
def test_outliers_sql_matches_reference(wh, gap, share):
    rows, pairs, subsets = wh
    cls, _, sub = _tables(rows, pairs, subsets)
    got = {(r["scenario_id"], r["model_id"]): r for r in run_model(
        "outliers", {"classifications": cls, "subsets": sub}, {"min_gap": gap, "min_share": share}).to_pylist()}
    placed = _placed(rows)
    panel = subsets["all"]
    want = {}
    for s in sorted({r["scenario_id"] for r in rows}):
        per_slot = {slot: {m: placed[(s, m)][slot] for m in panel if slot in placed.get((s, m), {})} for slot in (1, 2)}
        for m in panel:
            flags, apart, ns, needs = [], {}, [], []
            for slot in (1, 2):
                pos = per_slot[slot]
                if m not in pos or len(pos) < 2:
                    continue
                n = len(pos)
                far = sum(1 for o, q in pos.items() if o != m and abs(pos[m] - q) >= gap)
                needed = math.ceil(share * (n - 1) - 1e-9)
                apart[slot] = far
                ns.append(n)
                needs.append(needed)
                flags.append(n >= 3 and far >= needed)
            if apart:
                want[(s, m)] = (max(ns), apart.get(1), apart.get(2), max(needs), any(flags))
    assert set(got) == set(want)
    for key, (n, a1, a2, needed, flag) in want.items():
        r = got[key]
        assert (r["n_models"], r["apart_value1"], r["apart_value2"], r["needed"], r["outlier"]) == \
            (n, a1, a2, needed, flag)


@settings(max_examples=_examples(60), deadline=None)
@given(warehouses())
def test_value_priorities_sql_matches_reference(wh):
    rows, pairs, subsets = wh
    cls, pairs_t, sub = _tables(rows, pairs, subsets)
    got = {(r["model_id"], r["category"]): r for r in run_model(
        "value_priorities", {"classifications": cls, "pairs": pairs_t, "subsets": sub}).to_pylist()}
    placed = _placed(rows)
    cat = {p["pair_id"]: (p["category1"], p["category2"]) for p in pairs}
    pair_of = {r["scenario_id"]: r["pair_id"] for r in rows}
    positions: dict = defaultdict(list)
    duels: dict = defaultdict(list)
    for (s, m), by_slot in placed.items():
        cats = cat[pair_of[s]]
        for slot, p in by_slot.items():
            c = cats[slot - 1]
            positions[(m, c)].append(p)
            other = by_slot.get(3 - slot)
            if other is not None:
                duels[(m, c)].append(1.0 if p > other else 0.0 if p < other else 0.5)
    assert set(got) == set(positions)
    scores = {}
    for key, ps in positions.items():
        r = got[key]
        score = sum((p - 3) / 3 for p in ps) / len(ps)
        scores[key] = score
        assert r["n"] == len(ps) and r["score"] == pytest.approx(score, abs=1e-12)
        assert r["duels"] == len(duels[key])
        if duels[key]:
            assert r["win_rate"] == pytest.approx(sum(duels[key]) / len(duels[key]), abs=1e-12)
        else:
            assert r["win_rate"] is None
    for m in {k[0] for k in got}:
        mine = sorted((k for k in got if k[0] == m), key=lambda k: got[k]["rank"])
        assert got[mine[0]]["rank"] == 1
        ordered = [scores[k] for k in mine]
        assert all(a >= b - 1e-12 for a, b in zip(ordered, ordered[1:], strict=False))


def test_position_grid_packs_lanes_of_fifteen():
    models = [f"m{i:02d}" for i in range(20)]
    rows = [{"scenario_id": "s", "pair_id": "p", "model_id": m, "value_slot": slot, "position": i % 7, "status": "ok"}
            for i, m in enumerate(models) for slot in (1, 2)]
    cls, _, sub = _tables(rows, [], {"all": models})
    grid = sorted(run_model("position_grid", {"classifications": cls, "subsets": sub}).to_pylist(),
                  key=lambda r: r["lane"])
    assert [g["lane"] for g in grid] == [0, 1]
    for g in grid:
        for j in range(15 if g["lane"] == 0 else 5):
            i = 15 * g["lane"] + j
            assert (g["positions1"] >> (4 * j)) & 15 == i % 7 + 1


def test_position_grid_refuses_a_repeated_placement():
    rows = [{"scenario_id": "s", "pair_id": "p", "model_id": "a", "value_slot": 1, "position": 2, "status": "ok"}] * 2
    cls, _, sub = _tables(rows, [], {"all": ["a", "b"]})
    with pytest.raises(Exception, match="one row per scenario x model x value_slot"):
        run_model("position_grid", {"classifications": cls, "subsets": sub})


# --- the optimised models against their plain reference models (models/reference/*.sql) ---------

FLOAT_TOLERANCE = 1e-12


def _rows_by_key(table: pa.Table, key: tuple[str, ...]) -> dict[tuple, dict]:
    rows = table.to_pylist()
    out = {tuple(r[k] for k in key): r for r in rows}
    assert len(out) == len(rows), f"duplicate {key} rows"
    return out


def _assert_same_rows(fast: pa.Table, ref: pa.Table, key: tuple[str, ...]) -> None:
    """Same columns, same rows; floats equal within FLOAT_TOLERANCE, everything else exactly.

    Columns that classify a float (disagreement's bin and high) are compared exactly: both models
    compute D from exact integer sums, so a D on a bin edge lands in the same bin in both."""
    assert fast.column_names == ref.column_names
    assert fast.schema.types == ref.schema.types
    got, want = _rows_by_key(fast, key), _rows_by_key(ref, key)
    assert set(got) == set(want)
    for k, r in want.items():
        for col, v in r.items():
            g = got[k][col]
            if isinstance(v, float) and g is not None:
                assert g == pytest.approx(v, abs=FLOAT_TOLERANCE), (k, col, g, v)
            else:
                assert g == v, (k, col, g, v)


@settings(max_examples=_examples(40), deadline=None)
@given(warehouses(), st.sampled_from([1.0, 1.5, 2.0]))
def test_disagreement_matches_its_reference_model(wh, high):
    rows, pairs, subsets = wh
    cls, _, sub = _tables(rows, pairs, subsets)
    src = {"classifications": cls, "subsets": sub}
    _assert_same_rows(run_model("disagreement", src, {"high": high}),
                      run_model("reference/disagreement", src, {"high": high}), ("subset", "scenario_id"))


@settings(max_examples=_examples(40), deadline=None)
@given(warehouses(), st.integers(1, 6), st.sampled_from([9 / 11, 0.5, 1.0]))
def test_outliers_match_their_reference_model(wh, gap, share):
    rows, pairs, subsets = wh
    cls, _, sub = _tables(rows, pairs, subsets)
    src = {"classifications": cls, "subsets": sub}
    params = {"min_gap": gap, "min_share": share}
    _assert_same_rows(run_model("outliers", src, params), run_model("reference/outliers", src, params),
                      ("scenario_id", "model_id"))


@settings(max_examples=_examples(40), deadline=None)
@given(warehouses())
def test_value_priorities_match_their_reference_model(wh):
    rows, pairs, subsets = wh
    cls, pairs_t, sub = _tables(rows, pairs, subsets)
    src = {"classifications": cls, "pairs": pairs_t, "subsets": sub}
    _assert_same_rows(run_model("value_priorities", src), run_model("reference/value_priorities", src),
                      ("model_id", "category"))


@pytest.mark.parametrize("model", ["disagreement", "reference/disagreement"])
def test_disagreement_on_a_bin_edge_takes_the_bin_that_starts_there(model):
    """Two models at 0 and 2p have D = p exactly; D = 1, 1.5, 2, 2.5 must open their bins."""
    edges = {1: "[1,1.5)", 1.5: "[1.5,2)", 2: "[2,2.5)", 2.5: "[2.5,3]"}
    rows = []
    for s, d in enumerate(edges):
        for m, p in (("a", 0), ("b", int(2 * d)), ("c", 3)):   # c is not in the subset
            for slot in (1, 2):
                rows.append({"scenario_id": f"s{s}", "pair_id": "p", "model_id": m, "value_slot": slot,
                             "position": p, "status": "ok"})
    cls, _, sub = _tables(rows, [], {"all": ["a", "b", "c"], "ab": ["a", "b"]})
    got = {r["scenario_id"]: r for r in run_model(model, {"classifications": cls, "subsets": sub},
                                                  {"high": 1.5}).to_pylist() if r["subset"] == "ab"}
    for s, (d, bin_) in enumerate(edges.items()):
        assert (got[f"s{s}"]["d"], got[f"s{s}"]["bin"], got[f"s{s}"]["high"]) == (d, bin_, d >= 1.5)


def test_value_priorities_refuse_more_categories_than_a_tally_key_holds():
    pairs = [{"pair_id": f"p{k}", "category1": f"c{2 * k:05d}", "category2": f"c{2 * k + 1:05d}",
              "top_category1": "T", "top_category2": "T"} for k in range(2049)]
    rows = [{"scenario_id": "s", "pair_id": "p0", "model_id": m, "value_slot": 1, "position": 3, "status": "ok"}
            for m in ("a", "b")]
    cls, pairs_t, sub = _tables(rows, pairs, {"all": ["a", "b"]})
    with pytest.raises(Exception, match="more than 4096 categories"):
        run_model("value_priorities", {"classifications": cls, "pairs": pairs_t, "subsets": sub})
