"""Benchmark: the analytics SQL models (the shared position grid, then disagreement over every
subset + bins, value priorities and outliers) on a synthetic paper-scale warehouse, against a naive
pandas baseline.

    python bench/analytics.py            # 300,000 scenarios x 12 models (7.2M classification rows)
    python bench/analytics.py --quick    # 30,000 scenarios

Each computation runs in a fresh subprocess per engine, so its wall time and peak RSS
(VmHWM, else ``ru_maxrss``) are its own; the DuckDB path also runs all four in one process (as a pipeline
run would) for the total. The naive baseline computes each analysis from the placements directly. Both engines read the same Parquet parts; their results are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_seconds, peak_rss_mb, scratch_dir  # noqa: E402

from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA  # noqa: E402
from specstress.tasks.pairs import PAIRS_SCHEMA  # noqa: E402

MODELS = [
    "claude-opus-4", "claude-opus-3", "claude-sonnet-4", "claude-sonnet-3.7", "claude-haiku-3.5",
    "gpt-4.1", "gpt-4o", "o3", "o4-mini", "gpt-4.1-mini",
    "gemini-2.5-pro", "grok-4",
]
#: The paper's six subsets: the whole panel, the two providers' families and three pairs.
SUBSETS = {
    "all": MODELS,
    "claude": MODELS[:5],
    "openai": MODELS[5:10],
    "opus4_vs_sonnet4": ["claude-opus-4", "claude-sonnet-4"],
    "o3_vs_gpt41": ["o3", "gpt-4.1"],
    "gemini_vs_grok": ["gemini-2.5-pro", "grok-4"],
}
N_CATEGORIES = 26
N_TOP = 6
N_VALUES = 3000
HIGH = 1.5
MIN_GAP = 4
MIN_SHARE = 9 / 11
COMPUTATIONS = ("disagreement", "value_priorities", "outliers")
#: What DuckDB runs, in order: the shared position grid (persisted, as its stage does), then the three.
DUCKDB_STEPS = ("position_grid", *COMPUTATIONS)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


# --------------------------------------------------------------------------- synthetic data


def hex_ids(rng: np.random.Generator, n: int, width: int, prefix: str = "") -> pa.StringArray:
    """``n`` random ids ``prefix + width hex digits``, built directly as Arrow buffers."""
    p = np.frombuffer(prefix.encode(), dtype=np.uint8)
    digits = HEX[rng.integers(0, 16, size=(n, width), dtype=np.uint8)]
    data = np.concatenate([np.broadcast_to(p, (n, len(p))), digits], axis=1).ravel()
    step = len(p) + width
    offsets = np.arange(0, n * step + 1, step, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def build_warehouse(root: Path, n_scenarios: int, n_parts: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    n_pairs = max(1, n_scenarios // 3)
    k = len(MODELS)
    categories = [f"category_{i:02d}" for i in range(N_CATEGORIES)]
    tops = [f"top_{i}" for i in range(N_TOP)]
    cat_top = rng.integers(0, N_TOP, N_CATEGORIES)
    value_cat = rng.integers(0, N_CATEGORIES, N_VALUES)
    value_names = pa.array([f"value {i:04d}" for i in range(N_VALUES)])

    # pairs: two values of different categories
    v1 = rng.integers(0, N_VALUES, n_pairs)
    v2 = rng.integers(0, N_VALUES, n_pairs)
    clash = value_cat[v1] == value_cat[v2]
    while clash.any():
        v2[clash] = rng.integers(0, N_VALUES, int(clash.sum()))
        clash = value_cat[v1] == value_cat[v2]
    c1, c2 = value_cat[v1], value_cat[v2]
    pair_ids = hex_ids(rng, n_pairs, 16, "p_")
    cat_arr = pa.array(categories)
    top_arr = pa.array(tops)
    pairs = pa.table({
        "pair_id": pair_ids, "value1": value_names.take(v1), "value2": value_names.take(v2),
        "value1_id": pa.array([f"v{i}" for i in v1]), "value2_id": pa.array([f"v{i}" for i in v2]),
        "value1_description": pa.nulls(n_pairs, pa.string()), "value2_description": pa.nulls(n_pairs, pa.string()),
        "category1": cat_arr.take(c1), "category2": cat_arr.take(c2),
        "top_category1": top_arr.take(cat_top[c1]), "top_category2": top_arr.take(cat_top[c2]),
    }, schema=PAIRS_SCHEMA)
    (root / "pairs").mkdir(parents=True)
    pq.write_table(pairs, root / "pairs" / "part-00000.parquet", compression="zstd")

    # scenarios: three per pair (neutral, value1, value2 nudges)
    scen_pair = np.arange(n_scenarios) % n_pairs
    nudge = np.array([0.0, 0.8, -0.8])[np.minimum(np.arange(n_scenarios) // n_pairs, 2)]
    lean = rng.normal(0, 1.1, n_scenarios) + nudge
    contested = rng.uniform(0.3, 1.5, n_scenarios)  # how much the panel splits on this scenario
    scenario_ids = hex_ids(rng, n_scenarios, 16, "s_")
    pref = rng.normal(0, 0.7, (k, N_CATEGORIES))  # per-model category preferences
    bias = rng.normal(0, 0.3, k)

    (root / "classifications").mkdir()
    bounds = np.linspace(0, n_scenarios, n_parts + 1).astype(int)
    statuses = np.array(["ok", "missing", "parse_error", "unmatched"])
    for part, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        ns = b - a
        n = ns * k * 2
        s = np.repeat(np.arange(a, b), k * 2)
        m = np.tile(np.repeat(np.arange(k), 2), ns)
        slot = np.tile(np.array([1, 2], dtype=np.int8), ns * k)
        p = scen_pair[s]
        mine = np.where(slot == 1, c1[p], c2[p])
        other = np.where(slot == 1, c2[p], c1[p])
        sign = np.where(slot == 1, 1.0, -0.8)
        x = (3 + sign * lean[s] + 0.9 * (pref[m, mine] - pref[m, other]) + bias[m]
             + rng.normal(0, 1, n) * contested[s])
        flip = rng.random(n) < 0.01  # the odd response that reads the scenario the other way round
        x[flip] = 6 - x[flip]
        pos = np.clip(np.rint(x), 0, 6).astype(np.int8)
        # ~2% non-ok: a failed classification loses both values of that (scenario, model)
        bad_call = rng.random(ns * k) < 0.02
        bad = np.repeat(bad_call, 2)
        st = np.zeros(n, dtype=np.int64)
        st[bad] = np.repeat(rng.integers(1, len(statuses), ns * k), 2)[bad]
        call_keys = hex_ids(rng, ns * k, 64).take(pa.array(np.repeat(np.arange(ns * k), 2)))
        value_idx = np.where(slot == 1, v1[p], v2[p])
        t = pa.table({
            "scenario_id": scenario_ids.take(pa.array(s)),
            "pair_id": pair_ids.take(pa.array(p)),
            "model_id": pa.array(MODELS).take(pa.array(m)),
            "value_slot": pa.array(slot, pa.int8()),
            "value": value_names.take(pa.array(value_idx)),
            "position": pa.array(pos, pa.int8(), mask=bad),
            "confidence": pa.array(np.round(rng.uniform(0.4, 1.0, n), 2), mask=bad),
            "reasoning": pa.nulls(n, pa.string()),
            "status": pa.array(statuses).take(pa.array(st)),
            "judge": pa.array(np.full(n, "gpt-4.1-matcher")),
            "presented_index": pa.array(m.astype(np.int16)),
            "response_label": pa.array([f"R{i}" for i in range(k)]).take(pa.array(m)),
            "call_key": call_keys,
        }, schema=CLASSIFICATIONS_SCHEMA)
        pq.write_table(t, root / "classifications" / f"part-{part:05d}.parquet", compression="zstd")

    subsets = pa.table({"subset": [s for s, ms in SUBSETS.items() for _ in ms],
                        "model_id": [m for ms in SUBSETS.values() for m in ms]})
    pq.write_table(subsets, root / "subsets.parquet")
    files = sorted(str(f) for f in (root / "classifications").glob("part-*.parquet"))
    return {"classifications": files, "pairs": [str(root / "pairs" / "part-00000.parquet")],
            "subsets": str(root / "subsets.parquet"),
            "grid": str(root / "position_grid" / "part-00000.parquet"), "rows": n_scenarios * k * 2, "pairs_n": n_pairs,
            "bytes": sum(os.path.getsize(f) for f in files)}


# --------------------------------------------------------------------------- DuckDB (the real code path)


def duckdb_compute(name: str, data: dict, threads: int | None) -> pa.Table:
    """One SQL model as its pipeline stage runs it. position_grid reads the classifications and is
    written to Parquet (as the stage persists it); the three analyses read that grid."""
    from specstress.tasks.disagreement import DISAGREEMENT_SCHEMA
    from specstress.tasks.outliers import OUTLIERS_SCHEMA
    from specstress.tasks.position_grid import POSITION_GRID_SCHEMA
    from specstress.tasks.value_priorities import PRIORITIES_SCHEMA
    from specstress.warehouse.sql_files import model_refs, run_model
    from specstress.warehouse.store import parquet_options

    subsets = pq.read_table(data["subsets"])
    if name == "position_grid":
        src: dict = {"classifications": data["classifications"]}
        params, schema = {}, POSITION_GRID_SCHEMA
    elif "position_grid" in model_refs(name):
        src = {"position_grid": [data["grid"]]}
    else:  # model files of an older revision (--sql-rev) read the classifications themselves
        src = {"classifications": data["classifications"]}
    if name == "disagreement":
        params, schema = {"high": HIGH}, DISAGREEMENT_SCHEMA
    elif name == "value_priorities":
        src["pairs"] = data["pairs"]
        params, schema = {}, PRIORITIES_SCHEMA
    elif name == "outliers":
        params, schema = {"min_gap": MIN_GAP, "min_share": MIN_SHARE}, OUTLIERS_SCHEMA
    src["subsets"] = subsets  # as the stages pass it: a small Arrow table
    out = run_model(name, src, params, threads=threads).cast(schema)
    if name == "position_grid":
        Path(data["grid"]).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(out, data["grid"] + ".tmp", **parquet_options(out))  # as the warehouse writes artefacts
        os.replace(data["grid"] + ".tmp", data["grid"])
    return out


# --------------------------------------------------------------------------- pandas (the naive baseline)


def _read_classifications(data: dict):
    import pandas as pd

    cols = ["scenario_id", "pair_id", "model_id", "value_slot", "position", "status"]
    df = pd.concat([pd.read_parquet(f, columns=cols) for f in data["classifications"]], ignore_index=True)
    ok = df[(df["status"] == "ok") & df["position"].notna()].copy()
    ok["position"] = ok["position"].astype("float64")
    return ok


def pandas_disagreement(data: dict):
    import pandas as pd

    ok = _read_classifications(data)
    subsets = pd.read_parquet(data["subsets"])
    sizes = subsets.groupby("subset").size().rename("subset_size").reset_index()
    m = ok.merge(subsets, on="model_id")
    g = m.groupby(["subset", "scenario_id", "value_slot"], sort=False)
    per_value = g.size().rename("size").to_frame()
    per_value["sd"] = g["position"].std(ddof=0)
    per_value["pair_id"] = g["pair_id"].first()
    per_value = per_value.reset_index()
    wide = per_value.pivot_table(index=["subset", "scenario_id"], columns="value_slot", values="sd", aggfunc="first")
    n_models = per_value.groupby(["subset", "scenario_id"])["size"].min().rename("n_models")
    pair = per_value.groupby(["subset", "scenario_id"])["pair_id"].first()
    out = pd.DataFrame({"pair_id": pair, "n_models": n_models})
    out["std_value1"] = wide.get(1)
    out["std_value2"] = wide.get(2)
    out = out.reset_index().merge(sizes, on="subset")
    out = out[out["n_models"] >= 2]
    d = np.maximum(out["std_value1"].fillna(0).to_numpy(), out["std_value2"].fillna(0).to_numpy())
    out["d"] = d
    out["bin"] = np.select([d < 1.0, d < 1.5, d < 2.0, d < 2.5], ["[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)"],
                           "[2.5,3]")
    out["high"] = d >= HIGH
    return out.sort_values(["subset", "d", "scenario_id"], ascending=[True, False, True])


def pandas_value_priorities(data: dict):
    import pandas as pd

    ok = _read_classifications(data)
    pairs = pd.read_parquet(data["pairs"][0], columns=["pair_id", "category1", "category2",
                                                       "top_category1", "top_category2"])
    placed = ok.merge(pairs, on="pair_id")
    one = placed["value_slot"] == 1
    placed["category"] = np.where(one, placed["category1"], placed["category2"])
    placed["top_category"] = np.where(one, placed["top_category1"], placed["top_category2"])
    placed["score"] = (placed["position"] - 3) / 3.0
    g = placed.groupby(["model_id", "category"])
    scores = pd.DataFrame({"top_category": g["top_category"].first(), "n": g.size(),
                           "mean_position": g["position"].mean(), "score": g["score"].mean()}).reset_index()
    # duels: each placement against the other value's placement by the same model on the same scenario
    cols = ["model_id", "scenario_id", "category", "position"]
    a = placed.loc[one, cols]
    b = placed.loc[~one, cols]
    duel = a.merge(b, on=["model_id", "scenario_id"], suffixes=("_a", "_b"))
    w1 = np.where(duel["position_a"] > duel["position_b"], 1.0,
                  np.where(duel["position_a"] < duel["position_b"], 0.0, 0.5))
    wins = pd.concat([
        pd.DataFrame({"model_id": duel["model_id"], "category": duel["category_a"], "win": w1}),
        pd.DataFrame({"model_id": duel["model_id"], "category": duel["category_b"], "win": 1.0 - w1}),
    ])
    wins = wins.groupby(["model_id", "category"])["win"].agg(win_rate="mean", duels="size").reset_index()
    panel = scores.groupby("category")["score"].mean().rename("panel_score").reset_index()
    out = scores.merge(wins, on=["model_id", "category"], how="left").merge(panel, on="category")
    out["duels"] = out["duels"].fillna(0).astype("int64")
    out["distinctiveness"] = out["score"] - out["panel_score"]
    out = out.drop(columns="panel_score").sort_values(["model_id", "score", "win_rate", "category"],
                                                      ascending=[True, False, False, True], na_position="last")
    out["rank"] = out.groupby("model_id").cumcount() + 1
    return out


def pandas_outliers(data: dict):
    import pandas as pd

    ok = _read_classifications(data)
    panel = pd.read_parquet(data["subsets"])
    ok = ok[ok["model_id"].isin(panel.loc[panel["subset"] == "all", "model_id"])]
    wide = ok.pivot_table(index=["scenario_id", "value_slot"], columns="model_id", values="position", aggfunc="first")
    p = wide.to_numpy()  # (scenario x value) x model, NaN where the model has no ok placement
    n = (~np.isnan(p)).sum(axis=1)
    far = np.zeros(p.shape, dtype=np.int64)
    for i in range(p.shape[1]):  # pairwise: every model against every other
        for j in range(p.shape[1]):
            if i != j:
                far[:, i] += np.abs(p[:, i] - p[:, j]) >= MIN_GAP
    needed = np.ceil(MIN_SHARE * (n - 1) - 1e-9)
    long = pd.DataFrame({
        "scenario_id": np.repeat(wide.index.get_level_values(0).to_numpy(), p.shape[1]),
        "value_slot": np.repeat(wide.index.get_level_values(1).to_numpy(), p.shape[1]),
        "model_id": np.tile(wide.columns.to_numpy(), p.shape[0]),
        "position": p.ravel(), "far": far.ravel(), "n": np.repeat(n, p.shape[1]),
        "needed": np.repeat(needed, p.shape[1]),
    })
    long = long[long["position"].notna() & (long["n"] >= 2)]
    long["outlier"] = (long["far"] >= long["needed"]) & (long["n"] >= 3)
    one = long["value_slot"] == 1
    long["position_value1"] = long["position"].where(one)
    long["position_value2"] = long["position"].where(~one)
    long["apart_value1"] = long["far"].where(one)
    long["apart_value2"] = long["far"].where(~one)
    out = long.groupby(["scenario_id", "model_id"]).agg(
        n_models=("n", "max"), position_value1=("position_value1", "max"), position_value2=("position_value2", "max"),
        apart_value1=("apart_value1", "max"), apart_value2=("apart_value2", "max"), needed=("needed", "max"),
        outlier=("outlier", "any")).reset_index()
    return out.sort_values(["outlier", "scenario_id", "model_id"], ascending=[False, True, True])


PANDAS = {"disagreement": pandas_disagreement, "value_priorities": pandas_value_priorities,
          "outliers": pandas_outliers}


# --------------------------------------------------------------------------- workers






def worker(args: argparse.Namespace) -> None:
    """Run computations in this (fresh) process; write timings and results for the parent."""
    data = json.loads(Path(args.data).read_text())
    if args.worker == "duckdb":  # import cost is not part of the computation
        import duckdb  # noqa: F401

        import specstress.tasks.registry  # noqa: F401
        import specstress.warehouse.sql_files

        if args.sql_dir:  # time other versions of the model files (e.g. the committed ones)
            specstress.warehouse.sql_files.read_sql = lambda kind, name: (Path(args.sql_dir) / kind / f"{name}.sql").read_text()
    else:
        import pandas  # noqa: F401
    base = peak_rss_mb()
    timings = []
    results = {}
    for name in args.compute.split(","):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        if args.worker == "duckdb":
            res = duckdb_compute(name, data, args.threads)
        else:
            res = PANDAS[name](data)
        timings.append({"name": name, "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                        "peak_rss_mb": peak_rss_mb(), "rows": len(res)})
        results[name] = res
    out = Path(args.result)
    for name, res in results.items():
        if args.save:
            if isinstance(res, pa.Table):
                pq.write_table(res, out.with_suffix(f".{name}.parquet"))
            else:
                res.to_parquet(out.with_suffix(f".{name}.parquet"), index=False)
    out.write_text(json.dumps({"base_rss_mb": base, "timings": timings}))


def run_worker(engine: str, names: list[str], data_file: Path, tmp: Path, threads: int | None,
               save: bool, sql_dir: Path | None = None) -> dict:
    result = tmp / f"{engine}{'-rev' if sql_dir else ''}-{'-'.join(names)}.json"
    cmd = [sys.executable, __file__, "--worker", engine, "--data", str(data_file), "--compute", ",".join(names),
           "--result", str(result)]
    if threads:
        cmd += ["--threads", str(threads)]
    if sql_dir:
        cmd += ["--sql-dir", str(sql_dir)]
    if save:
        cmd.append("--save")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    r = json.loads(result.read_text())
    r["process_seconds"] = time.perf_counter() - t0
    r["result"] = result
    return r


# --------------------------------------------------------------------------- agreement


def compare(duck: dict[str, Path], pand: dict[str, Path]) -> list[str]:
    """Check the DuckDB results against the pandas ones, on every row (not a sample)."""
    import duckdb

    con = duckdb.connect()
    lines = []

    def q(sql: str) -> tuple:
        return con.execute(sql).fetchall()[0]

    # disagreement: same rows, D within 1e-9; bins/high may differ only where D is exactly on a bin
    # edge (1, 1.5, 2, 2.5), where floating-point std lands on either side (the SQL computes D exactly)
    dd, pd_ = duck["disagreement"], pand["disagreement"]
    n_d, n_p = q(f"SELECT (SELECT count(*) FROM '{dd}'), (SELECT count(*) FROM '{pd_}')")
    r = q(f"""SELECT count(*), max(abs(a.d - b.d)),
                     max(abs(coalesce(a.std_value1, -1) - coalesce(b.std_value1, -1))),
                     max(abs(coalesce(a.std_value2, -1) - coalesce(b.std_value2, -1))),
                     count(*) FILTER (WHERE a.n_models <> b.n_models OR a.pair_id <> b.pair_id
                                      OR a.subset_size <> b.subset_size),
                     count(*) FILTER (WHERE a.bin <> b.bin OR a.high <> b.high),
                     count(*) FILTER (WHERE (a.bin <> b.bin OR a.high <> b.high)
                                      AND least(abs(a.d - 1), abs(a.d - 1.5), abs(a.d - 2), abs(a.d - 2.5)) > 1e-9),
                     count(*) FILTER (WHERE a.d >= {HIGH})
              FROM '{dd}' a JOIN '{pd_}' b USING (subset, scenario_id)""")
    max_std = max(r[2], r[3])
    ok = n_d == n_p == r[0] and r[1] <= 1e-9 and max_std <= 1e-9 and r[4] == 0 and r[6] == 0
    lines.append(f"disagreement     rows {n_d:,} vs {n_p:,}, {r[0]:,} matched; max |dD| {r[1]:.1e}, max |d std| "
                 f"{max_std:.1e}; n_models/pair/size mismatches {r[4]}; bin/high mismatches {r[5]} "
                 f"({r[5] - r[6]} with D exactly on a bin edge); high-D rows {r[7]:,} -> "
                 f"{'AGREE' if ok else 'DIFFER'}")
    all_ok = ok

    # value priorities: numbers within 1e-9; ranks equal except among categories with tied scores
    dv, pv = duck["value_priorities"], pand["value_priorities"]
    n_d, n_p = q(f"SELECT (SELECT count(*) FROM '{dv}'), (SELECT count(*) FROM '{pv}')")
    r = q(f"""SELECT count(*), max(abs(a.score - b.score)), max(abs(a.win_rate - b.win_rate)),
                     max(abs(a.distinctiveness - b.distinctiveness)), max(abs(a.mean_position - b.mean_position)),
                     count(*) FILTER (WHERE a.n <> b.n OR a.duels <> b.duels OR a.top_category <> b.top_category),
                     count(*) FILTER (WHERE a.rank <> b.rank),
                     count(*) FILTER (WHERE a.rank <> b.rank AND NOT EXISTS (
                         SELECT 1 FROM '{dv}' c WHERE c.model_id = a.model_id AND c.category <> a.category
                                                  AND abs(c.score - a.score) < 1e-9))
              FROM '{dv}' a JOIN '{pv}' b USING (model_id, category)""")
    num = max(r[1], r[2], r[3], r[4])
    ok = n_d == n_p == r[0] and num <= 1e-9 and r[5] == 0 and r[7] == 0
    lines.append(f"value_priorities rows {n_d} vs {n_p}, {r[0]} matched; max |d score/win/dist/mean| {num:.1e}; "
                 f"n/duels/top mismatches {r[5]}; rank mismatches {r[6]} ({r[6] - r[7]} among tied scores) -> "
                 f"{'AGREE' if ok else 'DIFFER'}")
    all_ok &= ok

    # outliers: the same rows, flags and counts
    do, po = duck["outliers"], pand["outliers"]
    c = q(f"""SELECT (SELECT count(*) FROM '{do}'), (SELECT count(*) FROM '{po}'),
                     (SELECT count(*) FILTER (WHERE outlier) FROM '{do}'),
                     (SELECT count(*) FILTER (WHERE outlier) FROM '{po}')""")
    r = q(f"""SELECT count(*), count(*) FILTER (WHERE a.outlier <> b.outlier OR a.n_models <> b.n_models
                     OR a.apart_value1 IS DISTINCT FROM b.apart_value1 OR a.apart_value2 IS DISTINCT FROM b.apart_value2
                     OR a.position_value1 IS DISTINCT FROM b.position_value1
                     OR a.position_value2 IS DISTINCT FROM b.position_value2 OR a.needed <> b.needed)
              FROM '{do}' a JOIN '{po}' b USING (scenario_id, model_id)""")
    ok = c[0] == c[1] == r[0] and c[2] == c[3] and r[1] == 0
    lines.append(f"outliers         rows {c[0]:,} vs {c[1]:,}, {r[0]:,} matched; outliers {c[2]:,} vs {c[3]:,}; "
                 f"rows differing in any column {r[1]} -> {'AGREE' if ok else 'DIFFER'}")
    all_ok &= ok
    con.close()
    lines.append("DuckDB and pandas results agree" if all_ok else "DuckDB and pandas results DIFFER")
    return lines


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=300_000, help="scenarios (x 12 models x 2 values rows)")
    ap.add_argument("--quick", action="store_true", help="30,000 scenarios")
    ap.add_argument("--parts", type=int, default=16, help="Parquet parts of the classifications artefact")
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=5, help="DuckDB runs (the best and the median are reported)")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline")
    ap.add_argument("--sql-rev", default=None, metavar="GIT_REV",
                    help="also time the model SQL files as of this git revision (before/after a change)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmp", default=None, help="parent dir for the temp warehouse")
    # worker mode (internal)
    ap.add_argument("--worker", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--compute", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sql-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    n = 30_000 if args.quick else args.scenarios

    import duckdb
    import pandas

    print(f"cores: {os.cpu_count()}  duckdb {duckdb.__version__}  pandas {pandas.__version__}  "
          f"DuckDB threads: {args.threads or 'default (= cores)'}")
    with scratch_dir("analytics", keep=args.keep, parent=args.tmp) as tmp:
        t0 = time.perf_counter()
        data = build_warehouse(tmp / "wh", n, args.parts)
        data_file = tmp / "data.json"
        data_file.write_text(json.dumps(data))
        print(f"built {n:,} scenarios x {len(MODELS)} models = {data['rows']:,} classification rows "
              f"({len(data['classifications'])} parts, {data['bytes'] / 2**20:.0f} MiB), {data['pairs_n']:,} pairs, "
              f"{len(SUBSETS)} subsets in {time.perf_counter() - t0:.1f}s")

        # DuckDB: all four in one fresh process, as a pipeline run does them (best of --repeat runs, the
        # machine may be shared), then each computation alone in a fresh process for its own peak RSS
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        runs = [run_worker("duckdb", list(DUCKDB_STEPS), data_file, tmp, args.threads, save=(i == 0))
                for i in range(args.repeat)]
        saved = runs[0]["result"]
        totals = [sum(t["seconds"] for t in r["timings"]) for r in runs]
        best = runs[totals.index(min(totals))]
        duck = {t["name"]: t for t in best["timings"]}
        for name in DUCKDB_STEPS:
            solo = run_worker("duckdb", [name], data_file, tmp, args.threads, save=False)
            duck[name]["solo_rss"] = solo["timings"][0]["peak_rss_mb"]
        pand: dict[str, dict] = {}
        if not args.no_pandas:
            for name in COMPUTATIONS:
                r = run_worker("pandas", [name], data_file, tmp, None, save=True)
                pand[name] = r["timings"][0]
                pand[name]["result"] = r["result"]
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        print()
        print(f"{'computation':<18}{'DuckDB s':>9}{'(CPU s)':>9}{'pandas s':>10}{'(CPU s)':>9}{'pandas/DuckDB':>15}"
              f"{'DuckDB RSS':>12}{'pandas RSS':>12}{'rows':>12}")
        for name in DUCKDB_STEPS:
            d = duck[name]
            p = pand.get(name)
            ps = f"{p['seconds']:.2f}" if p else "-"
            pc = f"{p['cpu_seconds']:.2f}" if p else "-"
            ratio = f"{p['seconds'] / d['seconds']:.1f}x" if p else "-"
            prss = f"{p['peak_rss_mb']:.0f} MB" if p else "-"
            print(f"{name:<18}{d['seconds']:>9.2f}{d['cpu_seconds']:>9.2f}{ps:>10}{pc:>9}{ratio:>15}"
                  f"{d['solo_rss']:>9.0f} MB{prss:>12}{d['rows']:>12,}")
        tot_d = min(totals)
        tot_cpu = sum(t["cpu_seconds"] for t in best["timings"])
        tot_rss = max(r["timings"][-1]["peak_rss_mb"] for r in runs)
        tot_p = sum(p["seconds"] for p in pand.values()) if pand else None
        p_s = f"{tot_p:.2f}" if tot_p else "-"
        p_cpu = f"{sum(p['cpu_seconds'] for p in pand.values()):.2f}" if pand else "-"
        p_ratio = f"{tot_p / tot_d:.1f}x" if tot_p else "-"
        p_rss = f"{max(p['peak_rss_mb'] for p in pand.values()):.0f} MB" if pand else "-"
        print(f"{'all':<18}{tot_d:>9.2f}{tot_cpu:>9.2f}{p_s:>10}{p_cpu:>9}{p_ratio:>15}{tot_rss:>9.0f} MB"
              f"{p_rss:>12}")
        print(f"(DuckDB: the pipeline's four SQL models through run_model in one fresh process: position_grid, "
              f"written to Parquet, then the three analyses reading it; best of {args.repeat} "
              f"(all runs: {', '.join(f'{t:.2f}' for t in totals)} s). Its RSS column is each model alone in a fresh "
              f"process, and the 'all' row the peak of the whole process (interpreter and imports: "
              f"{best['base_rss_mb']:.0f} MB). pandas: each computation in a fresh process, reading the Parquet "
              f"itself. CPU s = user + sys of the process during the computation.)")
        goal_t, goal_m = 3.0, 1536
        median = sorted(totals)[len(totals) // 2]
        if tot_rss > goal_m or tot_d > goal_t:
            verdict = "NOT MET"
        elif median <= goal_t:
            verdict = "MET"
        else:
            verdict = "MET by the best run only, not by the median"
        print(f"goal (grid + three analyses <= {goal_t:.0f} s and <= 1.5 GB peak RSS at paper scale): "
              f"{verdict} (best {tot_d:.2f} s, median {median:.2f} s of {len(totals)} runs; {tot_rss:.0f} MB)"
              + ("" if n == 300_000 else f"  [note: run at {n:,} scenarios, not paper scale]"))
        if args.sql_rev:
            rev_dir = tmp / "rev-sql"
            (rev_dir / "models").mkdir(parents=True)
            steps = []
            for name in ("macros", *DUCKDB_STEPS):
                rel = f"warehouse/sql/{'' if name == 'macros' else 'models/'}{name}.sql"
                got = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.sql_rev}:{rel}"], capture_output=True,
                                     text=True)
                if got.returncode == 0 or name == "macros":  # an older revision may have neither
                    dest = rev_dir / ("" if name == "macros" else "models") / f"{name}.sql"
                    dest.write_text(got.stdout if got.returncode == 0 else "")
                    if name != "macros":
                        steps.append(name)
            h = run_worker("duckdb", steps, data_file, tmp, args.threads, save=False, sql_dir=rev_dir)
            print(f"model SQL as of git {args.sql_rev}, same setup (one run): "
                  + ", ".join(f"{t['name']} {t['seconds']:.2f} s" for t in h["timings"])
                  + f"; all {sum(t['seconds'] for t in h['timings']):.2f} s, peak RSS "
                  f"{h['timings'][-1]['peak_rss_mb']:.0f} MB")
        if pand:
            print()
            duck_files = {name: saved.with_suffix(f".{name}.parquet") for name in COMPUTATIONS}
            pand_files = {name: pand[name]["result"].with_suffix(f".{name}.parquet") for name in COMPUTATIONS}
            for line in compare(duck_files, pand_files):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
