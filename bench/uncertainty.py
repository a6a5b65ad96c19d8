"""Benchmark: the uncertainty stage (Poisson-bootstrap intervals on every headline number) at paper
scale, against a naive bootstrap that resamples the scenarios 1,000 times in a Python loop.

    python bench/uncertainty.py            # 300,000 scenarios x 12 models, 1,000 resamples
    python bench/uncertainty.py --quick    # 30,000 scenarios

The synthetic run is bench/analytics.py's (classifications -> position_grid -> disagreement over six
subsets, value_priorities, outliers), plus refusals for every response and a compliance sample of
1,200 scenarios judged three times for each of the 12 models. The stage reads them as Parquet, as a
run does. The baseline draws each resample's scenario indices and recomputes mean D, the
high-disagreement share, refusal rates, outlier counts and category scores with numpy; it runs a few
resamples and is scaled to the same count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import analytics  # noqa: E402
from common import peak_rss_mb, scratch_dir  # noqa: E402

from specstress.tasks.compliance import COMPLIANCE_SCHEMA  # noqa: E402
from specstress.tasks.refusals import REFUSALS_SCHEMA  # noqa: E402
from specstress.tasks.uncertainty import uncertainty_table  # noqa: E402

BINS = ["[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)", "[2.5,3]"]


def build(root: Path, n_scenarios: int) -> dict:
    data = analytics.build_warehouse(root, n_scenarios, n_parts=4)
    for name in analytics.DUCKDB_STEPS:
        out = analytics.duckdb_compute(name, data, threads=None)
        if name != "position_grid":
            (root / name).mkdir()
            pq.write_table(out, root / name / "part-00000.parquet")
    rng = np.random.default_rng(1)
    scen = pq.read_table(data["grid"], columns=["scenario_id"]).column(0).unique()
    k = len(analytics.MODELS)
    n = len(scen)
    level = rng.integers(0, 7, n * k).astype(np.int8)
    refusals = pa.table({
        "scenario_id": scen.take(pa.array(np.repeat(np.arange(n), k))),
        "model_id": pa.array(analytics.MODELS).take(pa.array(np.tile(np.arange(k), n))),
        "level": level, "label": pa.nulls(n * k, pa.string()), "refusal": pa.array(level >= 5),
        "reasoning": pa.nulls(n * k, pa.string()), "source": pa.array(np.full(n * k, "classifier")),
        "status": pa.array(np.full(n * k, "ok")), "call_key": pa.nulls(n * k, pa.string()),
    }, schema=REFUSALS_SCHEMA)
    (root / "refusals").mkdir()
    pq.write_table(refusals, root / "refusals" / "part-00000.parquet")
    rows = []
    for i, sid in enumerate(scen.take(pa.array(rng.choice(n, 1200, replace=False))).to_pylist()):
        b = BINS[i % 5]
        samples = [f"bin:{b}", "random" if i % 2 else "high:all"]
        for m in analytics.MODELS:
            bad = rng.random() < 0.2 + 0.1 * (i % 5)
            for j in ("judge-a", "judge-b", "judge-c"):
                rows.append({"scenario_id": sid, "model_id": m, "judge": j, "status": "ok", "samples": samples,
                             "verdict": "non_compliant" if bad or rng.random() < 0.1 else "compliant",
                             "subset": "all", "d": 0.5 * (i % 5), "bin": b, "group_size": k})
    (root / "compliance").mkdir()
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in COMPLIANCE_SCHEMA.names} for r in rows],
                                        schema=COMPLIANCE_SCHEMA), root / "compliance" / "part-00000.parquet")
    sources = {"position_grid": [data["grid"]], "pairs": data["pairs"]}
    for name in ("disagreement", "outliers", "refusals", "compliance"):
        sources[name] = [str(root / name / "part-00000.parquet")]
    return {"sources": sources, "priorities": pq.read_table(root / "value_priorities" / "part-00000.parquet"),
            "scenarios": n}


def naive(data: dict, resamples: int, seed: int = 0) -> float:
    """Seconds for ``resamples`` classic bootstrap resamples (draw n scenario indices with replacement and
    recompute every metric), after the same per-scenario tables are in memory."""
    src = data["sources"]
    dis = pq.read_table(src["disagreement"][0], columns=["subset", "scenario_id", "d", "high"])
    grid = pq.read_table(src["position_grid"][0])
    ref = pq.read_table(src["refusals"][0], columns=["scenario_id", "model_id", "refusal"])
    out = pq.read_table(src["outliers"][0], columns=["scenario_id", "model_id", "outlier"])
    pairs = pq.read_table(src["pairs"][0], columns=["pair_id", "category1", "category2"])
    ids = grid.column("scenario_id")
    n = len(ids)
    index = {s: i for i, s in enumerate(ids.to_pylist())}
    # per-scenario arrays, once (not timed as part of a resample)
    d_idx = np.array([index[s] for s in dis.column("scenario_id").to_pylist()])
    subset_codes = dis.column("subset").dictionary_encode().combine_chunks()
    d_sub = np.asarray(subset_codes.indices)
    d = dis.column("d").to_numpy()
    high = np.asarray(dis.column("high").to_numpy(zero_copy_only=False), dtype=float)
    r_idx = np.array([index[s] for s in ref.column("scenario_id").to_pylist()])
    r_model = np.asarray(ref.column("model_id").dictionary_encode().combine_chunks().indices)
    r_val = np.asarray(ref.column("refusal").to_numpy(zero_copy_only=False), dtype=float)
    o_idx = np.array([index[s] for s in out.column("scenario_id").to_pylist()])
    o_model = np.asarray(out.column("model_id").dictionary_encode().combine_chunks().indices)
    o_val = np.asarray(out.column("outlier").to_numpy(zero_copy_only=False), dtype=float)
    cats = {c: i for i, c in enumerate(sorted(set(pairs.column("category1").to_pylist())
                                              | set(pairs.column("category2").to_pylist())))}
    pc = {p: (cats[a], cats[b]) for p, a, b in zip(pairs.column("pair_id").to_pylist(),
                                                   pairs.column("category1").to_pylist(),
                                                   pairs.column("category2").to_pylist(), strict=True)}
    g_c = np.array([pc[p] for p in grid.column("pair_id").to_pylist()])
    k = len(analytics.MODELS)
    pos = [grid.column(f"positions{v}").to_numpy() for v in (1, 2)]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(resamples):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        wd = w[d_idx]
        np.bincount(d_sub, weights=wd * d) / np.bincount(d_sub, weights=wd)
        np.bincount(d_sub, weights=wd * high) / np.bincount(d_sub, weights=wd)
        wr = w[r_idx]
        np.bincount(r_model, weights=wr * r_val) / np.bincount(r_model, weights=wr)
        np.bincount(o_model, weights=w[o_idx] * o_val)
        sums = np.zeros((k, len(cats)))
        counts = np.zeros((k, len(cats)))
        for v in (0, 1):
            for j in range(k):
                nib = (pos[v] >> (4 * j)) & 15
                ok = nib > 0
                key = g_c[ok, v]
                sums[j] += np.bincount(key, weights=w[ok] * (nib[ok] - 4) / 3, minlength=len(cats))
                counts[j] += np.bincount(key, weights=w[ok], minlength=len(cats))
        sums / counts
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30,000 scenarios instead of 300,000")
    ap.add_argument("--scenarios", type=int, default=None)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--baseline-resamples", type=int, default=5, help="resamples the naive loop runs (then scaled)")
    args = ap.parse_args(argv)
    n = args.scenarios or (30_000 if args.quick else 300_000)
    with scratch_dir("uncertainty") as root:
        t0 = time.perf_counter()
        data = build(root, n)
        print(f"synthetic run: {data['scenarios']:,} scenarios x {len(analytics.MODELS)} models, "
              f"built in {time.perf_counter() - t0:.1f} s", flush=True)
        timings = {}
        for unit in ("scenario", "pair"):
            t0 = time.perf_counter()
            table = uncertainty_table(data["sources"], sorted(analytics.MODELS), data["priorities"].to_pylist(),
                                      resamples=args.resamples, confidence=0.95, unit=unit, seed=0)
            timings[unit] = time.perf_counter() - t0
            print(f"uncertainty stage (unit={unit}): {table.num_rows} rows, {args.resamples} resamples: "
                  f"{timings[unit]:.2f} s", flush=True)
        base = naive(data, args.baseline_resamples)
        scaled = base * args.resamples / args.baseline_resamples
        print(f"naive bootstrap loop: {args.baseline_resamples} resamples in {base:.2f} s "
              f"-> {scaled:.1f} s for {args.resamples}")
        print(f"ratio (naive / stage, unit=scenario): {scaled / timings['scenario']:.1f}x")
        print(f"peak RSS: {peak_rss_mb():.0f} MB")
        if n >= 300_000:
            goal = 10.0
            print(f"goal: <= {goal:.0f} s at 300,000 scenarios: "
                  f"{'met' if timings['scenario'] <= goal else 'NOT met'} ({timings['scenario']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
