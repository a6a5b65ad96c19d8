"""Artefact storage: atomic parts, lineage written last, fsspec roots (file:// and an object-store-like
filesystem), and views that read Parquet in place."""

from __future__ import annotations

import pyarrow as pa
import pytest

from specstress.runspec import load_run_spec
from specstress.warehouse import views
from specstress.warehouse.store import Warehouse
from tests.conftest import DEMO


def test_parts_are_invisible_until_renamed_and_artefacts_until_committed(tmp_path):
    wh = Warehouse(str(tmp_path))
    t = pa.table({"x": [1, 2, 3]})
    # a crashed writer leaves a temp file behind: it is never read as a part
    (tmp_path / "artefacts" / "pairs" / "pair-1").mkdir(parents=True)
    (tmp_path / "artefacts" / "pairs" / "pair-1" / ".tmp-dead.parquet").write_bytes(b"half a file")
    assert wh.parts("pairs", "pair-1") == []
    wh.write_part("pairs", "pair-1", wh.part_name(0), t)
    assert len(wh.parts("pairs", "pair-1")) == 1
    assert not wh.has_artefact("pair-1")  # parts without a lineage row do not make an artefact
    row = wh.commit_artefact(artefact_id="pair-1", stage="pairs", stage_version="1", input_ids=["tax-0"],
                             config={"count": 3}, template_hashes={}, run_id="r1", expected_parts=[wh.part_name(0)])
    assert wh.has_artefact("pair-1") and row["row_count"] == 3 and row["part_count"] == 1
    assert wh.lineage().num_rows == 1
    with pytest.raises(RuntimeError):
        wh.commit_artefact(artefact_id="pair-2", stage="pairs", stage_version="1", input_ids=[], config={},
                           template_hashes={}, run_id="r1", expected_parts=[wh.part_name(0)])


def test_object_store_like_filesystem_roundtrip():
    wh = Warehouse("memory://specstress-test")
    assert not wh.is_local
    t = pa.table({"scenario_id": ["a", "b"], "d": [1.0, 2.5]})
    wh.write_part("disagreement", "dis-1", wh.part_name(0), t)
    wh.commit_artefact(artefact_id="dis-1", stage="disagreement", stage_version="1", input_ids=[], config={},
                       template_hashes={}, run_id="r1")
    assert wh.has_artefact("dis-1")
    assert wh.read_artefact("disagreement", "dis-1").to_pylist() == t.to_pylist()
    wh.record_run({"run_id": "r1", "name": "x", "status": "completed", "seq": 1, "artefacts_json": "{}"})
    assert wh.latest_runs()[0]["status"] == "completed"


def test_file_url_root(tmp_path):
    spec = load_run_spec(DEMO, {"warehouse": f"file://{tmp_path}/wh"})
    root = spec.warehouse_root()
    assert root == f"{tmp_path}/wh"
    wh = Warehouse(f"file://{tmp_path}/wh")
    assert wh.is_local
    from specstress.tasks.pairs import PAIRS_SCHEMA

    row = {f.name: None for f in PAIRS_SCHEMA} | {"pair_id": "p", "value1": "a", "value2": "b"}
    wh.write_part("pairs", "p-1", wh.part_name(0), pa.Table.from_pylist([row], schema=PAIRS_SCHEMA))
    wh.commit_artefact(artefact_id="p-1", stage="pairs", stage_version="1", input_ids=[], config={},
                       template_hashes={}, run_id="r1")
    wh.record_run({"run_id": "r1", "name": "x", "status": "completed", "seq": 1,
                   "artefacts_json": '{"pairs": "p-1"}'})
    out = views.query(f"file://{tmp_path}/wh", "select value1 from value_pairs").to_pylist()
    assert out == [{"value1": "a"}]


def test_views_on_an_empty_warehouse_answer_with_no_rows(tmp_path):
    for v in views.view_names():
        assert views.query(str(tmp_path), f"select count(*) as n from {v}").to_pylist()[0]["n"] == 0, v


def test_read_only(tmp_path):
    for q in ("create table t as select 1", "copy (select 1) to 'x.csv'", "select 1; drop view calls",
              "attach 'x.db'", "set threads = 1"):
        with pytest.raises(views.ReadOnlyError):
            views.query(str(tmp_path), q)
