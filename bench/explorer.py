"""Benchmark: the explorer and the static report at paper scale, in one script.

    python bench/explorer.py                  # 300,000 scenarios x 12 models; the report on 50,000
    python bench/explorer.py --quick          # 20,000 and 5,000, a smoke run

A synthetic release in the paper dataset's format (12 models, positions spread over the five D bins, answers
of a few hundred characters) is imported with `specstress import-paper`'s code into a scratch warehouse. The
explorer is then driven in-process through Starlette's TestClient (no network; the same app `specstress serve`
runs), timing the scenario browser's first page, a filtered page and scenario pages (p50 and p95 over
--requests requests each). The baseline, measured in the same run, is the bare DuckDB query under each page
(the same views, one connection): the ratio says what the page adds to the SQL it cannot avoid.

Goals (issue 11): browser pages <= 300 ms p95, a scenario page <= 200 ms p95, the report of 50,000 scenarios
<= 60 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import peak_rss_mb, scratch_dir  # noqa: E402

VALUES = ["accuracy", "transparency", "filial piety"]


def release(n: int, seed: int = 7) -> pa.Table:
    from specstress.paper_dataset import PAPER_MODELS

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {
        "rank": np.arange(n), "query_generator": ["o3"] * n, "chunk_index": np.zeros(n, dtype=np.int64),
        "entry_idx": np.arange(n),
        "value1": [VALUES[i % 2] for i in range(n)], "value2": ["filial piety"] * n,
        "nudge_direction": [("neutral", "value1", "value2")[i % 3] for i in range(n)],
        "query": [f"scenario {i}: my team must decide by Friday whether to put the facts first or family "
                  f"first; what should we do? (variant {i % 97})" for i in range(n)],
    }
    spread = rng.integers(0, 7, size=n)            # how far apart the two camps sit: D spreads over the bins
    for j, m in enumerate(PAPER_MODELS):
        camp = j % 2
        cols[f"{m}_value1_position"] = np.clip(3 + (spread // 2) * (1 if camp else -1) + rng.integers(-1, 2, n), 0, 6)
        cols[f"{m}_value2_position"] = rng.integers(0, 7, size=n)
        cols[f"response_{m}"] = [f"{m} answers scenario {i}: " + "weigh the facts against loyalty, then decide. " * 6
                                 for i in range(n)]
    return pa.table(cols)


def build(root: Path, n: int) -> tuple[Path, float]:
    from specstress.paper_dataset import import_paper
    from tests.test_taxonomy import write_tree

    src = root / f"release-{n}.parquet"
    pq.write_table(release(n), src)
    tree = root / "values_tree.csv"
    write_tree(tree)
    t0 = time.perf_counter()
    import_paper(str(src), str(root / f"wh-{n}"), name="bench", tree_csv=str(tree))
    return root / f"wh-{n}", time.perf_counter() - t0


def timed(fn, reps: int) -> tuple[float, float]:
    out = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    out.sort()
    return statistics.median(out) * 1000, out[min(len(out) - 1, int(0.95 * len(out)))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", type=int, default=300_000)
    ap.add_argument("--report-scenarios", type=int, default=50_000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.scenarios, a.report_scenarios, a.requests = 20_000, 5_000, 15
    from starlette.testclient import TestClient

    from specstress.explorer.app import create_app
    from specstress.tasks.registry import all_stages
    from specstress.tasks.report import write_report_for
    from specstress.warehouse.store import Warehouse
    from specstress.warehouse.views import connect

    all_stages()
    rnd = random.Random(11)
    with scratch_dir("explorer") as root:
        wh, import_s = build(root, a.scenarios)
        print(f"imported {a.scenarios:,} scenarios x 12 models in {import_s:.1f} s")
        client = TestClient(create_app(str(wh)))
        t0 = time.perf_counter()
        first = client.get("/scenarios")
        assert first.status_code == 200, first.text[:500]
        print(f"first request (opens the views): {1000 * (time.perf_counter() - t0):.0f} ms")
        con, _ = connect(str(wh))
        ids = [r[0] for r in con.sql("SELECT scenario_id FROM scenarios").fetchall()]
        bins = [r[0] for r in con.sql("SELECT DISTINCT bin FROM disagreement").fetchall()]

        def page(i: int) -> None:
            assert client.get("/scenarios", params={"page": 1 + i % 5}).status_code == 200

        def filtered(i: int) -> None:   # a value and a D bin: the first request of each of 10 filters scans
            assert client.get("/scenarios", params={"value": VALUES[i % 2], "bin": bins[i % len(bins)]}
                              ).status_code == 200

        def searched(i: int) -> None:   # full-text search over queries and every answer, never seen before
            assert client.get("/scenarios", params={"q": f"(variant {i % 97})", "bin": bins[i % len(bins)]}
                              ).status_code == 200

        def scenario(i: int) -> None:
            assert client.get(f"/scenario/{rnd.choice(ids)}").status_code == 200

        def sql_page(i: int) -> None:   # the floor: the ordered page of the same view, no app around it
            con.sql("SELECT d.scenario_id, d.d, s.query FROM disagreement d JOIN scenarios s USING (scenario_id) "
                    f"WHERE d.subset = 'all' ORDER BY d.d DESC, d.scenario_id LIMIT 50 OFFSET {50 * (i % 5)}").fetchall()

        def sql_scenario(i: int) -> None:
            sid = rnd.choice(ids)
            con.sql("SELECT * FROM responses WHERE scenario_id = ?", params=[sid]).fetchall()
            con.sql("SELECT * FROM classifications WHERE scenario_id = ?", params=[sid]).fetchall()

        rows = []
        for name, fn, floor, goal in (("browser, a page", page, sql_page, 300),
                                      ("browser, filtered", filtered, sql_page, 300),
                                      ("browser, text search", searched, sql_page, 300),
                                      ("scenario page", scenario, sql_scenario, 200)):
            p50, p95 = timed(fn, a.requests)
            f50, _ = timed(floor, a.requests)
            rows.append((name, p50, p95, f50, goal))
        con.close()
        print(f"\n{'page':<20} {'p50 ms':>8} {'p95 ms':>8} {'SQL floor p50':>14} {'ratio':>7} {'goal p95':>9}")
        for name, p50, p95, f50, goal in rows:
            print(f"{name:<20} {p50:>8.0f} {p95:>8.0f} {f50:>14.0f} {p50 / max(f50, 1e-3):>6.1f}x {goal:>6} ms"
                  f"  {'ok' if p95 <= goal else 'MISSED'}")

        rwh, rimport = build(root, a.report_scenarios) if a.report_scenarios != a.scenarios else (wh, import_s)
        t0 = time.perf_counter()
        path = write_report_for(Warehouse(str(rwh)), "bench")
        report_s = time.perf_counter() - t0
        size = Path(path).stat().st_size / 1e6
        print(f"\nreport of {a.report_scenarios:,} scenarios: {report_s:.1f} s, {size:.1f} MB (goal <= 60 s "
              f"{'ok' if report_s <= 60 else 'MISSED'}); peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
