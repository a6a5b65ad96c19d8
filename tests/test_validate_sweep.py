"""`specstress validate --sweep` pieces and the sim matcher's error models (fast; the sweep itself runs
whole pipelines and is exercised by hand, see the README)."""

from __future__ import annotations

import random

import pytest

from specstress.errors import SpecError
from specstress.sim import judges
from specstress.validation import ValidationReport, parse_sweep, rank_coverage, sweep_overrides, sweep_table
from tests.conftest import DEMO


@pytest.fixture
def fixed_reading(monkeypatch):
    """Every response reads as value1 at 6 and value2 at 1 (no refusal), so only the error model moves them."""
    monkeypatch.setattr(judges, "parse_spectra", lambda p: {"value1": ("a", None), "value2": ("b", None)})
    monkeypatch.setattr(judges, "parse_responses", lambda p: [(f"r{i}", "text") for i in range(200)])
    monkeypatch.setattr(judges, "refusal_level", lambda t: 0)
    monkeypatch.setattr(judges, "read_stance", lambda text, value, strategies: (6 if value == "a" else 1, 0.9, "why"))


def _positions(model, accuracy=0.0):
    out = judges.judge_placements("prompt", random.Random(1), accuracy, single=False, error_model=model)
    return [(p["value1"]["position"], p["value2"]["position"]) for p in out["placements"]]


def test_error_models_err_as_named(fixed_reading):
    assert set(_positions("off_by_one")) <= {(5, 0), (5, 2), (6, 0), (6, 2)}  # 6 + 1 is capped at 6
    assert set(_positions("central")) == {(4, 2)}                   # halfway to 3: 6 -> 4, 1 -> 2
    assert set(_positions("swap")) == {(1, 6)}
    uni = _positions("uniform")
    assert {a for a, _ in uni} == set(range(7)) and {b for _, b in uni} == set(range(7))
    for model in judges.JUDGE_ERROR_MODELS:                          # a perfect judge never errs
        assert set(_positions(model, accuracy=1.0)) == {(6, 1)}


def test_parse_sweep_and_its_errors():
    assert parse_sweep("judge_accuracy=0.6,0.8,1.0") == ("judge_accuracy", [0.6, 0.8, 1.0])
    assert parse_sweep("judge_error=uniform,swap") == ("judge_error", ["uniform", "swap"])
    with pytest.raises(SpecError, match="KEY=V1,V2"):
        parse_sweep("judge_accuracy")
    with pytest.raises(SpecError, match="no values"):
        parse_sweep("judge_accuracy=")


def test_sweep_overrides_set_every_persona_noise():
    o = sweep_overrides(str(DEMO), "noise", 0.35, {"pairs.count": 20})
    assert o["pairs.count"] == 20
    noise = {k: v for k, v in o.items() if k.endswith(".noise")}
    assert len(noise) == 6 and set(noise.values()) == {0.35}
    assert sweep_overrides(str(DEMO), "judge_accuracy", 0.7, None) == {"emulator.sim.judge_accuracy": 0.7}


def test_rank_coverage_with_tied_planted_weights():
    weights = {"a": 2.0, "b": 0.0, "c": 0.0, "d": -1.0}
    bt = {"a": {"rank_low": 1, "rank_high": 1}, "b": {"rank_low": 3, "rank_high": 3},   # b, c tie at ranks 2-3
          "c": {"rank_low": 2, "rank_high": 2}, "d": {"rank_low": 1, "rank_high": 2}}   # d planted 4th: missed
    assert rank_coverage(weights, bt) == pytest.approx(3 / 4)


def test_sweep_table_has_a_row_per_point():
    r = ValidationReport(run_id="x", warehouse="w", spearman={"p": 0.9, "q": 0.7}, f1=0.8,
                         recovery={"score": {"p": {"top1": 1.0, "top3": 2 / 3}},
                                   "bradley_terry": {"p": {"top1": 1.0, "top3": 1.0, "coverage": 0.95}}})
    text = sweep_table("judge_accuracy", [(0.6, r), (1.0, r)])
    lines = text.splitlines()
    assert len(lines) == 4 and "0.700" in lines[2] and "0.800" in lines[2] and "0.95" in lines[2]
