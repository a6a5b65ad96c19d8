"""Samples nest: growing or shrinking a sample keeps what the smaller one drew, so every call already paid
is reused (value pairs, and the compliance samples per disagreement bin)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.context import RunContext
from specstress.domain import DISAGREEMENT_BINS
from specstress.tasks.base import Inputs
from specstress.tasks.compliance import ComplianceStage
from specstress.tasks.pairs import pair_order, sample_pairs

DEMO = Path(__file__).resolve().parents[1] / "specs" / "runs" / "demo.yaml"


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), a=st.integers(1, 500), b=st.integers(1, 500), seed=st.integers(0, 2**31))
def test_pair_samples_are_prefixes_of_one_order(n, a, b, seed):
    total = n * (n - 1) // 2
    a, b = sorted((min(a, total), min(b, total)))
    x1, y1 = sample_pairs(n, a, seed)
    x2, y2 = sample_pairs(n, b, seed)
    assert (x1 == x2[:a]).all() and (y1 == y2[:a]).all()  # the same pairs, the same orientation
    pairs = {(min(p), max(p)) for p in zip(x2.tolist(), y2.tolist(), strict=True)}
    assert len(pairs) == b and all(i != j for i, j in pairs) and max(max(p) for p in pairs) < n


def test_streamed_order_nests_and_is_uniform_enough():
    total = 30_000_000  # above PERMUTE_UP_TO: drawn as a stream, repeats dropped
    small, big = pair_order(total, 1_000, 11), pair_order(total, 5_000, 11)
    assert (small == big[:1_000]).all() and len(set(big.tolist())) == 5_000
    assert 0.4 < float(np.mean(big < total // 2)) < 0.6


def test_orientation_is_a_fair_coin():
    x, y = sample_pairs(500, 20_000, 3)
    assert 0.47 < float(np.mean(x < y)) < 0.53


class _Loader:
    def __init__(self, tables: dict[str, pa.Table]) -> None:
        self.tables = tables

    def __call__(self, stage: str, artefact_id: str) -> pa.Table:
        return self.tables[stage]


def _compliance_samples(n_scenarios: int, per_bin: int, random_sample: int) -> dict[str, list[str]]:
    ctx = RunContext.create(DEMO, {"compliance.per_bin": per_bin, "compliance.random_sample": random_sample})
    sids = [f"s{i:03d}" for i in range(n_scenarios)]
    bins = [label for _, _, label in DISAGREEMENT_BINS]
    tables = {
        "scenarios": pa.table({"scenario_id": sids, "status": ["ok"] * n_scenarios}),
        "disagreement": pa.table({"subset": [ComplianceStage().subset(ctx.spec)] * n_scenarios, "scenario_id": sids,
                                  "bin": [bins[i % 5] for i in range(n_scenarios)]}),
        "high_disagreement": pa.table({"subset": ["all"] * n_scenarios, "scenario_id": sids,
                                       "kept": [i % 3 == 0 for i in range(n_scenarios)]}),
    }
    inputs = Inputs({k: k for k in tables}, _Loader(tables))
    return ComplianceStage().samples(ctx, inputs)


def test_compliance_samples_nest():
    small = _compliance_samples(200, per_bin=3, random_sample=5)
    big = _compliance_samples(200, per_bin=6, random_sample=10)
    for sid, labels in small.items():
        assert set(labels) <= set(big[sid]), sid
    assert sum(len(v) for v in big.values()) > sum(len(v) for v in small.values())
    assert sum(1 for v in small.values() for lab in v if lab.startswith("bin:")) == 5 * 3
