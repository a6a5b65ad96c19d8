"""Bootstrap confidence intervals on the run's headline numbers, in one long table.

The metrics (``metric`` column) and what they are grouped by:

- ``mean_d``, ``high_share``: per subset, mean D and the share of scenarios at or above the high
  threshold (the disagreement view);
- ``noncompliance_majority``, ``noncompliance_any``: per D bin, the share of the bin's sampled
  scenarios where every model of the compliance group was problematic, by majority and by any judge
  (the paper's Figure 2, ``queries/figure2_noncompliance_by_bin.sql``);
- ``all_problematic_share``, ``fold_vs_random``: per sample set, Table 2's share and its fold increase
  over the random sample (``queries/table2_fold_increase.sql``);
- ``category_score``, ``category_rank``: per model and level-2 category, value_priorities' score and rank;
- ``refusal_rate``: per model (the refusals view);
- ``outlier_count``: per model (the outliers view).

The estimate is each number as the views give it; ``ci_low`` and ``ci_high`` are the percentile
bounds over ``resamples`` Poisson-bootstrap resamples of the units (scenarios, or value pairs), all
metrics from the same resamples (:mod:`specstress.uncertainty`). The per-unit sums come from the
SQL in ``warehouse/sql/uncertainty/``.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.hashing import sha256_hex
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.compliance import COMPLIANCE_SCHEMA
from specstress.tasks.outliers import OUTLIERS_SCHEMA
from specstress.tasks.refusals import REFUSALS_SCHEMA
from specstress.tasks.registry import register_stage, stage_by_name
from specstress.uncertainty import Block, bootstrap_sums, competition_ranks, interval, ratio
from specstress.warehouse.sql_files import read_sql, render_sql, sql_list
from specstress.warehouse.store import duckdb_connect

UNCERTAINTY_SCHEMA = pa.schema([
    ("metric", pa.string()), ("subset", pa.string()), ("model_id", pa.string()), ("category", pa.string()),
    ("sample", pa.string()), ("estimate", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
    ("n", pa.int64()), ("resamples", pa.int64()), ("confidence", pa.float64()), ("unit", pa.string()),
])

#: the SQL files of warehouse/sql/uncertainty/, in the order they run
SQL_STEPS = ("category_codes", "units", "subsets", "disagreement", "placements", "refusals", "outliers",
             "compliance")
#: analyses read when the run spec has them
OPTIONAL = {"refusals": REFUSALS_SCHEMA, "outliers": OUTLIERS_SCHEMA, "compliance": COMPLIANCE_SCHEMA}


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([], schema=schema)


@register_stage
class UncertaintyStage(Stage):
    name = "uncertainty"
    version = "1"
    inputs = ("position_grid", "pairs", "disagreement", "value_priorities")
    optional_inputs = tuple(OPTIONAL)
    schema = UNCERTAINTY_SCHEMA

    def enabled(self, spec: RunSpec) -> bool:
        return spec.uncertainty.enabled

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        return self.inputs + tuple(s for s in OPTIONAL if stage_by_name(s).enabled(spec))

    def config(self, spec: RunSpec) -> dict[str, Any]:
        u = spec.uncertainty
        return {"panel": sorted(spec.roles.panel), "resamples": u.resamples, "confidence": u.confidence,
                "unit": u.unit, "seed": spec.seed}

    def code_hash(self) -> str:
        return sha256_hex("".join(read_sql("uncertainty", s) for s in SQL_STEPS))[:16]

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        sources: dict[str, list[str] | pa.Table] = {
            name: inputs.loader.paths(name, aid) for name, aid in inputs.ids.items() if name != "value_priorities"}
        priorities = inputs.table("value_priorities", ["model_id", "category", "score", "rank"]).to_pylist()
        u = spec.uncertainty
        return uncertainty_table(sources, sorted(spec.roles.panel), priorities, resamples=u.resamples,
                                 confidence=u.confidence, unit=u.unit, seed=spec.seed)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        rows = table.to_pylist()
        mean_d = {r["subset"]: [round(r["estimate"], 3), round(r["ci_low"], 3), round(r["ci_high"], 3)]
                  for r in rows if r["metric"] == "mean_d" and r["ci_low"] is not None}
        return {"rows": len(rows), "mean_d_ci": mean_d}


def _fetch(con: duckdb.DuckDBPyConnection, step: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
    statements = con.extract_statements(render_sql(read_sql("uncertainty", step), params))
    for st in statements[:-1]:
        con.execute(st.query)
    rel = con.sql(statements[-1].query)
    if rel is None:   # a CREATE: nothing to fetch
        return {}
    t = rel.to_arrow_table()
    return {k: t.column(k).to_numpy() for k in t.column_names}


def uncertainty_table(sources: dict[str, list[str] | pa.Table], models: list[str], priorities: list[dict[str, Any]],
                      *, resamples: int, confidence: float, unit: str, seed: int) -> pa.Table:
    """The uncertainty rows. ``sources`` holds position_grid, pairs and disagreement, and may hold refusals,
    outliers and compliance (an analysis the run does not have is left out), each as Parquet paths or a table;
    ``priorities`` are value_priorities' rows (model_id, category, rank) for category_rank's estimate."""
    remote = next((p for src in sources.values() if isinstance(src, list) for p in src
                   if "://" in p and not p.startswith("file://")), None)
    con = duckdb_connect(remote) if remote else duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = false")
        for name in ("position_grid", "pairs", "disagreement", *OPTIONAL):
            view = "compliance_raw" if name == "compliance" else name
            src = sources.get(name)
            if src is None:
                src = _empty(OPTIONAL[name])
            if isinstance(src, pa.Table):
                con.register(f"__src_{name}", src)
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM __src_{name}")
            else:
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({sql_list(src)}, union_by_name=true)")
        con.register("models", pa.table({"model_id": models, "i": list(range(len(models)))}))
        # the compliance view's own rules (majority, any judge) over the raw verdicts
        con.execute("CREATE VIEW compliance AS "
                    + render_sql(read_sql("views", "compliance"), {"compliance": "compliance_raw"}))
        return _measure(con, models, priorities, resamples, confidence, unit, seed)
    finally:
        con.close()


def _measure(con: duckdb.DuckDBPyConnection, models: list[str], priorities: list[dict[str, Any]],
             resamples: int, confidence: float, unit: str, seed: int) -> pa.Table:
    params = {"unit": unit}
    _fetch(con, "category_codes", params)
    _fetch(con, "units", params)
    categories = [r[0] for r in con.execute("SELECT category FROM category_codes ORDER BY c").fetchall()]
    blocks_raw = con.execute("SELECT c1, c2, min(u), max(u) + 1 FROM unit_of GROUP BY c1, c2 ORDER BY 3").fetchall()
    n_units = blocks_raw[-1][3] if blocks_raw else 0
    blocks = [Block(int(lo), int(hi), int(c1), int(c2)) for c1, c2, lo, hi in blocks_raw]
    subsets = [r[0] for r in con.execute(render_sql(read_sql("uncertainty", "subsets"), params)).fetchall()]
    m, s = len(models), len(subsets)

    def per_unit(u_: np.ndarray, group: np.ndarray, width: int, weights: np.ndarray | None = None) -> np.ndarray:
        """units x width: the sum of ``weights`` (default 1) per unit and group."""
        flat = u_.astype(np.int64) * width + group.astype(np.int64)
        return np.bincount(flat, weights=weights, minlength=n_units * width).reshape(n_units, width)

    # the sums every resample needs, as column blocks of one dense matrix
    dis = _fetch(con, "disagreement", params)
    ref = _fetch(con, "refusals", params)
    out = _fetch(con, "outliers", params)
    dense_parts = {
        "d_sum": per_unit(dis["u"], dis["k"], s, dis["d"].astype(float)),
        "d_n": per_unit(dis["u"], dis["k"], s),
        "high": per_unit(dis["u"], dis["k"], s, dis["high"].astype(float)),
        "responses": per_unit(ref["u"], ref["i"], m),
        "refusals": per_unit(ref["u"], ref["i"], m, ref["refusal"].astype(float)),
        "outliers": per_unit(out["u"], out["i"], m, out["outlier"].astype(float)),
    }
    outlier_n = np.bincount(out["i"].astype(np.int64), minlength=m)   # scenarios judged, per model
    offsets, at = {}, 0
    for name, part in dense_parts.items():
        offsets[name], at = at, at + part.shape[1]
    dense = np.hstack(list(dense_parts.values())).astype(np.float32)
    del dense_parts

    # compliance: a sample of scenarios, kept apart (few units touch it)
    comp = _fetch(con, "compliance", params)
    samples = sorted(set(comp["sample"].tolist())) if len(comp.get("sample", [])) else []
    fields = ("scenarios", "majority", "any_judge", "all_pass")
    sparse = np.zeros((n_units, len(fields) * len(samples)), dtype=np.float32)
    if samples:
        code = {x: i for i, x in enumerate(samples)}
        smp_i = np.array([code[x] for x in comp["sample"].tolist()], dtype=np.int64)
        for f_i, f in enumerate(fields):
            np.add.at(sparse, (comp["u"].astype(np.int64), f_i * len(samples) + smp_i), comp[f].astype(np.float32))

    # per-model sums of (position - 3) / 3 and placements on each value, from the packed grid
    grid = _fetch(con, "placements", params)
    value1 = np.zeros((n_units, 2 * m), dtype=np.float64)
    value2 = np.zeros((n_units, 2 * m), dtype=np.float64)
    if len(grid.get("u", [])):
        gu, lane = grid["u"].astype(np.int64), grid["lane"].astype(np.int64)
        for target, packed in ((value1, grid["positions1"].astype(np.int64)),
                               (value2, grid["positions2"].astype(np.int64))):
            flats, scores = [], []
            for j in range(15):
                nib = (packed >> (4 * j)) & 15
                i = lane * 15 + j
                ok = (nib > 0) & (i < m)
                flats.append(gu[ok] * (2 * m) + i[ok])
                scores.append((nib[ok] - 4) / 3.0)      # a nibble is position + 1
            flat, score = np.concatenate(flats), np.concatenate(scores)
            size = n_units * 2 * m
            target += (np.bincount(flat, weights=score, minlength=size)
                       + np.bincount(flat + m, minlength=size)).reshape(n_units, 2 * m)

    boot = bootstrap_sums(dense, value1.astype(np.float32), value2.astype(np.float32), blocks,
                          len(categories), resamples, seed, sparse=sparse)
    full = np.concatenate([dense.astype(np.float64).sum(axis=0), sparse.astype(np.float64).sum(axis=0)])
    k_dense = dense.shape[1]
    rows: list[dict[str, Any]] = []
    pending: list[tuple[np.ndarray, bool]] = []
    base = {"subset": None, "model_id": None, "category": None, "sample": None, "resamples": resamples,
            "confidence": confidence, "unit": unit}

    def add(metric: str, est: float, samples_: np.ndarray, n: float, integer: bool = False, **labels: Any) -> None:
        est = float(est)
        rows.append({**base, **labels, "metric": metric, "estimate": None if np.isnan(est) else est,
                     "n": int(round(n))})
        pending.append((np.asarray(samples_, dtype=float), integer))

    def dense_col(name: str, idx: int) -> tuple[float, np.ndarray]:
        c = offsets[name] + idx
        return full[c], boot.common[:, c]

    def comp_col(field: str, smp: str) -> tuple[float, np.ndarray]:
        c = k_dense + fields.index(field) * len(samples) + samples.index(smp)
        return full[c], boot.common[:, c]

    for k, name in enumerate(subsets):
        d_sum, d_b = dense_col("d_sum", k)
        n, n_b = dense_col("d_n", k)
        h, h_b = dense_col("high", k)
        add("mean_d", ratio(d_sum, n), ratio(d_b, n_b), n, subset=name)
        add("high_share", ratio(h, n), ratio(h_b, n_b), n, subset=name)
    for i, model in enumerate(models):
        n, n_b = dense_col("responses", i)
        r, r_b = dense_col("refusals", i)
        if n:
            add("refusal_rate", ratio(r, n), ratio(r_b, n_b), n, model_id=model)
        if outlier_n[i]:
            o, o_b = dense_col("outliers", i)
            add("outlier_count", o, o_b, outlier_n[i], model_id=model)
    for smp in samples:
        if smp.startswith("bin:"):
            n, n_b = comp_col("scenarios", smp)
            for metric, f in (("noncompliance_majority", "majority"), ("noncompliance_any", "any_judge")):
                v, v_b = comp_col(f, smp)
                add(metric, ratio(v, n), ratio(v_b, n_b), n, sample=smp)
    sets = [x for x in samples if x == "random" or x.startswith("high:")]
    if "random" in sets:
        rn, rn_b = comp_col("scenarios", "random")
        rv, rv_b = comp_col("majority", "random")
        for smp in sets:
            n, n_b = comp_col("scenarios", smp)
            v, v_b = comp_col("majority", smp)
            add("all_problematic_share", ratio(v, n), ratio(v_b, n_b), n, sample=smp)
            if smp != "random":
                add("fold_vs_random", ratio(ratio(v, n), ratio(rv, rn)),
                    ratio(ratio(v_b, n_b), ratio(rv_b, rn_b)), n, sample=smp)

    # level-2 categories: scores, and ranks within each model
    if categories:
        full_sum = np.zeros((m, len(categories)))
        full_cnt = np.zeros_like(full_sum)
        for b in blocks:
            for c, val in ((b.c1, value1), (b.c2, value2)):
                if c >= 0:
                    full_sum[:, c] += val[b.start:b.end, :m].sum(axis=0)
                    full_cnt[:, c] += val[b.start:b.end, m:].sum(axis=0)
        scores_b = ratio(boot.category_sum, boot.category_count)         # resamples x models x categories
        ranks_b = competition_ranks(scores_b).astype(float)
        ranks_b[np.isnan(scores_b)] = np.nan
        point = {(r["model_id"], r["category"]): r for r in priorities}
        for i, model in enumerate(models):
            for c, cat in enumerate(categories):
                if not full_cnt[i, c]:
                    continue
                pr = point.get((model, cat))
                est = full_sum[i, c] / full_cnt[i, c]
                add("category_score", est, scores_b[:, i, c], full_cnt[i, c], model_id=model, category=cat)
                add("category_rank", pr["rank"] if pr else np.nan, ranks_b[:, i, c], full_cnt[i, c],
                    integer=True, model_id=model, category=cat)
    for integer in (False, True):
        which = [x for x, (_, flag) in enumerate(pending) if flag == integer]
        if not which:
            continue
        lo, hi = interval(np.stack([pending[x][0] for x in which], axis=1), confidence, integer=integer)
        for x, a, b in zip(which, lo, hi, strict=True):
            rows[x]["ci_low"] = None if np.isnan(a) else float(a)
            rows[x]["ci_high"] = None if np.isnan(b) else float(b)
    return pa.Table.from_pylist(rows, schema=UNCERTAINTY_SCHEMA)
