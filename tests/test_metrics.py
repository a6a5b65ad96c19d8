"""The metrics: hand-computed cases, invariants (hypothesis), and the SQL models against the
numpy reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress import metrics
from specstress.domain import disagreement_bin
from specstress.warehouse.sql_files import run_model

positions = st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=12)


# --------------------------------------------------------------------------- D by hand


@pytest.mark.parametrize("v1,v2,expected", [
    ([3, 3, 3, 3], [3, 3, 3, 3], 0.0),
    ([0, 6], [3, 3], 3.0),                                   # two models at the extremes: std 3
    ([0, 6, 0, 6], [6, 0, 6, 0], 3.0),
    ([1, 2, 3], [3, 3, 3], math.sqrt(2 / 3)),               # mean 2, deviations 1,0,1
    ([2, 4], [1, 5], 2.0),                                  # value 2 dominates
    ([0, 0, 0, 6], [3, 3, 3, 3], math.sqrt(6.75)),          # mean 1.5: (2.25*3 + 20.25)/4 = 6.75
    ([5, 5, 5, 5, 5, 0], [1, 1, 1, 1, 1, 6], math.sqrt(125 / 36)),
])
def test_disagreement_hand_computed(v1, v2, expected):
    assert metrics.disagreement(v1, v2) == pytest.approx(expected)


def _classifications(v1, v2):
    rows = []
    for i, (a, b) in enumerate(zip(v1, v2, strict=True)):
        for slot, p in ((1, a), (2, b)):
            rows.append({"scenario_id": "s1", "pair_id": "p1", "model_id": f"m{i}", "value_slot": slot,
                         "position": p, "status": "ok"})
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize("v1,v2,expected", [
    ([0, 6], [3, 3], 3.0), ([1, 2, 3], [3, 3, 3], math.sqrt(2 / 3)), ([2, 4], [1, 5], 2.0),
    ([0, 0, 0, 6], [3, 3, 3, 3], math.sqrt(6.75)),
])
def test_disagreement_sql_hand_computed(v1, v2, expected):
    models = [f"m{i}" for i in range(len(v1))]
    subsets = pa.table({"subset": ["all"] * len(models), "model_id": models})
    out = run_model("disagreement", {"classifications": _classifications(v1, v2), "subsets": subsets},
                    {"high": 1.5}).to_pylist()
    assert len(out) == 1
    assert out[0]["d"] == pytest.approx(expected)
    assert out[0]["high"] == (expected >= 1.5)
    assert out[0]["bin"] == disagreement_bin(expected)


def test_disagreement_sql_ignores_non_ok_and_needs_two_models():
    t = _classifications([0, 6, 6], [3, 3, 3]).to_pylist()
    for r in t:
        if r["model_id"] == "m2":
            r["status"], r["position"] = "missing", None
    subsets = pa.table({"subset": ["all"] * 3 + ["solo", "solo"], "model_id": ["m0", "m1", "m2", "m2", "m1"]})
    out = {r["subset"]: r for r in run_model("disagreement", {"classifications": pa.Table.from_pylist(t),
                                                               "subsets": subsets}, {"high": 1.5}).to_pylist()}
    assert out["all"]["n_models"] == 2 and out["all"]["d"] == pytest.approx(3.0)
    assert "solo" not in out  # only one model of the subset has an ok placement


# --------------------------------------------------------------------------- D invariants


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_disagreement_properties(data):
    v1 = data.draw(positions)
    v2 = data.draw(st.lists(st.integers(0, 6), min_size=len(v1), max_size=len(v1)))
    d = metrics.disagreement(v1, v2)
    assert 0.0 <= d <= 3.0 + 1e-12
    perm = data.draw(st.permutations(list(range(len(v1)))))
    assert metrics.disagreement([v1[i] for i in perm], [v2[i] for i in perm]) == pytest.approx(d)
    if d >= 1.5:
        spread = max(max(v1) - min(v1), max(v2) - min(v2))
        assert spread >= 3  # some pair of models differs by at least 3 points


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=8))
def test_sql_disagreement_matches_reference(pairs):
    v1 = [a for a, _ in pairs]
    v2 = [b for _, b in pairs]
    models = [f"m{i}" for i in range(len(v1))]
    subsets = pa.table({"subset": ["all"] * len(models), "model_id": models})
    out = run_model("disagreement", {"classifications": _classifications(v1, v2), "subsets": subsets},
                    {"high": 1.5}).to_pylist()
    assert out[0]["d"] == pytest.approx(metrics.disagreement(v1, v2), abs=1e-9)


# --------------------------------------------------------------------------- Fleiss' kappa


def test_fleiss_kappa_textbook():
    """Fleiss (1971) as reproduced on Wikipedia: 10 items, 14 raters, 5 categories -> kappa = 0.210."""
    table = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])
    assert metrics.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_perfect_and_labels():
    labels = [["a", "a", "a"], ["b", "b", "b"], ["c", "c", "c"]]
    assert metrics.fleiss_kappa(metrics.label_counts(labels, ["a", "b", "c"])) == pytest.approx(1.0)
    assert metrics.pairwise_agreement(labels) == {(0, 1): 1.0, (0, 2): 1.0, (1, 2): 1.0}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abc"), min_size=3, max_size=3), min_size=2, max_size=30))
def test_fleiss_kappa_bounds(labels):
    counts = metrics.label_counts(labels, list("abc"))
    k = metrics.fleiss_kappa(counts)
    assert -1.0 - 1e-9 <= k <= 1.0 + 1e-9
    perm = counts[:, [2, 0, 1]]  # relabelling categories changes nothing
    assert metrics.fleiss_kappa(perm) == pytest.approx(k)


# --------------------------------------------------------------------------- outliers


def test_outlier_rule_paper_case():
    # 12 models: one at 6, ten at 1, one at 3 -> the 6 differs by >= 4 from ten others (>= 9 needed)
    pos = [6] + [1] * 10 + [3]
    flags = metrics.outliers(pos)
    assert flags[0] is True and not any(flags[1:])
    # only 8 far models -> not an outlier
    pos = [6] + [1] * 8 + [3, 3, 3]
    assert metrics.outliers(pos)[0] is False


@settings(max_examples=200, deadline=None)
@given(positions)
def test_outlier_rule_properties(pos):
    flags = metrics.outliers(pos)
    n = len(pos)
    needed = math.ceil(9 / 11 * (n - 1) - 1e-9)
    for i, f in enumerate(flags):
        far = sum(1 for j in range(n) if j != i and abs(pos[i] - pos[j]) >= 4)
        assert f == (n >= 3 and far >= needed)
    if len(set(pos)) == 1:
        assert not any(flags)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=3, max_size=12))
def test_outlier_sql_matches_reference(pos):
    models = [f"m{i}" for i in range(len(pos))]
    rows = []
    for m, p in zip(models, pos, strict=True):
        rows.append({"scenario_id": "s", "pair_id": "p", "model_id": m, "value_slot": 1, "position": p, "status": "ok"})
        rows.append({"scenario_id": "s", "pair_id": "p", "model_id": m, "value_slot": 2, "position": 3, "status": "ok"})
    subsets = pa.table({"subset": ["all"] * len(models), "model_id": models})
    out = run_model("outliers", {"classifications": pa.Table.from_pylist(rows), "subsets": subsets},
                    {"min_gap": 4, "min_share": 9 / 11}).to_pylist()
    got = {r["model_id"]: r["outlier"] for r in out}
    want = dict(zip(models, metrics.outliers(pos), strict=True))
    assert got == want


def test_spearman_and_f1():
    assert metrics.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert metrics.f1({1, 2}, {2, 3}) == (0.5, 0.5, 0.5)
