"""The released paper dataset's format: export a run to it, import it back as a run, and compare."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from specstress.paper_dataset import PAPER_MODELS, import_paper
from specstress.warehouse import views
from tests.test_taxonomy import write_tree


@pytest.mark.slow  # needs the demo run
def test_export_has_the_release_columns(demo_run, tmp_path):
    from specstress.paper_dataset import export_paper
    from specstress.warehouse.store import Warehouse

    out = tmp_path / "export.parquet"
    n = export_paper(Warehouse(demo_run["warehouse"]), str(out))
    t = pq.read_table(out)
    assert n == t.num_rows > 0
    cols = set(t.column_names)
    for c in ("rank", "query_generator", "value1", "value2", "nudge_direction", "query", "chunk_index", "entry_idx"):
        assert c in cols
    for m in ("guardian", "scholar", "bon_vivant"):
        assert {f"response_{m}", f"{m}_value1_position", f"{m}_value2_position"} <= cols
    assert t.column("rank").to_pylist()[:3] == [0, 1, 2]


def test_import_release_format(tmp_path):
    import pyarrow as pa

    rows = []
    for i in range(6):
        r = {"rank": i, "query_generator": "o3" if i % 2 else "claude", "value1": "accuracy",
             "value2": "filial piety", "nudge_direction": ["neutral", "value1", "value2"][i % 3],
             "query": f"question {i}", "chunk_index": 0, "entry_idx": i}
        for j, m in enumerate(PAPER_MODELS):
            r[f"response_{m}"] = f"answer {m} {i}"
            r[f"{m}_value1_position"] = 6 if j < 6 else 0   # two camps: D = 3 on every scenario
            r[f"{m}_value2_position"] = 3
        rows.append(r)
    src = tmp_path / "release.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    tree = tmp_path / "values_tree.csv"
    write_tree(tree)
    wh = str(tmp_path / "wh")
    res = import_paper(str(src), wh, name="release", tree_csv=str(tree))
    assert res["rows"] == 6 and len(res["models"]) == 12
    d = views.query(wh, "select subset, avg(d) as d, count(*) as n from disagreement group by subset",
                    "release").to_pylist()
    by = {r["subset"]: r for r in d}
    assert by["all"]["d"] == pytest.approx(3.0) and by["all"]["n"] == 6
    assert by["claude_models"]["d"] == pytest.approx(0.0)   # the five Claude models sit together at 6
    pri = views.query(wh, "select model_id, category, score from value_priorities where rank = 1", "release").to_pylist()
    assert {r["model_id"] for r in pri} == set(PAPER_MODELS)
    assert views.query(wh, "select count(*) as n from responses", "release").to_pylist()[0]["n"] == 72
