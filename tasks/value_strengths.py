"""Value-category strengths per model from the duels: Bradley–Terry with bootstrap intervals
(:mod:`specstress.strengths`), beside ``value_priorities``' mean-position score.

A duel is one scenario a model answered and the matcher placed on both values: the category of the
value placed higher wins (equal positions: a tie). Duels between two values of one category say
nothing about categories and are left out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.runspec import RunSpec
from specstress.strengths import fit_with_intervals
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.registry import register_stage

STRENGTHS_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("category", pa.string()), ("strength", pa.float64()), ("ci_low", pa.float64()),
    ("ci_high", pa.float64()), ("rank", pa.int64()), ("rank_low", pa.int64()), ("rank_high", pa.int64()),
    ("duels", pa.float64()), ("resamples", pa.int64()), ("confidence", pa.float64()),
])


def duel_tables(rows: list[dict[str, Any]], categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(wins, ties) over ``categories`` from rows of (category1, category2, position1, position2)."""
    idx = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    wins, ties = np.zeros((k, k)), np.zeros((k, k))
    for r in rows:
        a, b = idx[r["category1"]], idx[r["category2"]]
        if a == b:
            continue
        if r["position1"] > r["position2"]:
            wins[a, b] += 1
        elif r["position1"] < r["position2"]:
            wins[b, a] += 1
        else:
            ties[a, b] += 1
            ties[b, a] += 1
    return wins, ties


@register_stage
class ValueStrengthsStage(Stage):
    name = "value_strengths"
    version = "1"
    inputs = ("classifications", "pairs")
    schema = STRENGTHS_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        # resamples and confidence: the run spec's uncertainty section (the fit is cheap: a 26 x 26 table a resample)
        return {"panel": sorted(spec.roles.panel), "resamples": spec.uncertainty.resamples,
                "confidence": spec.uncertainty.confidence, "seed": spec.seed, "prior": 1.0}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        resamples, confidence = spec.uncertainty.resamples, spec.uncertainty.confidence
        pairs = {r["pair_id"]: (r["category1"], r["category2"])
                 for r in inputs.table("pairs", ["pair_id", "category1", "category2"]).to_pylist()}
        placed: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        pair_of: dict[str, str] = {}
        panel = set(spec.roles.panel)
        cols = ["scenario_id", "pair_id", "model_id", "value_slot", "position", "status"]
        for r in inputs.table("classifications", cols).to_pylist():
            if r["status"] == "ok" and r["position"] is not None and r["model_id"] in panel:
                placed[(r["model_id"], r["scenario_id"])][r["value_slot"]] = r["position"]
                pair_of[r["scenario_id"]] = r["pair_id"]
        duels: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (model, sid), pos in placed.items():
            cats = pairs.get(pair_of[sid])
            if 1 in pos and 2 in pos and cats and cats[0] and cats[1]:
                duels[model].append({"category1": cats[0], "category2": cats[1], "position1": pos[1],
                                     "position2": pos[2]})
        rows = []
        for i, model in enumerate(sorted(duels)):
            cats = sorted({c for d in duels[model] for c in (d["category1"], d["category2"])})
            wins, ties = duel_tables(duels[model], cats)
            if not (wins.sum() + ties.sum()):
                continue
            fit = fit_with_intervals(wins, ties, resamples, confidence, seed=spec.seed + i)
            for j, c in enumerate(cats):
                rows.append({"model_id": model, "category": c, "strength": float(fit.strength[j]),
                             "ci_low": float(fit.ci_low[j]), "ci_high": float(fit.ci_high[j]),
                             "rank": int(fit.rank[j]), "rank_low": int(fit.rank_low[j]),
                             "rank_high": int(fit.rank_high[j]), "duels": float(fit.duels[j]),
                             "resamples": resamples, "confidence": confidence})
        return pa.Table.from_pylist(rows, schema=STRENGTHS_SCHEMA)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        top = {r["model_id"]: r["category"] for r in table.to_pylist() if r["rank"] == 1}
        return {"rows": table.num_rows, "top_category": top}
