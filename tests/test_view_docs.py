"""Every view and SQL model documents its columns in a YAML beside its SQL, the documented columns
are the real ones, and the README's views table is the one rendered from those YAMLs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from specstress.warehouse import docs, views
from specstress.warehouse.sql_files import SQL_DIR, run_model
from specstress.warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schemas() -> dict[str, pa.Schema]:
    from specstress.tasks.registry import all_stages

    all_stages()  # registers every stage's artefact schema (the columns of an empty view)
    return dict(views.ARTEFACT_SCHEMAS)


def test_every_view_documents_exactly_its_columns(tmp_path, schemas):
    files = sorted(p.stem for p in (SQL_DIR / "views").glob("*.sql"))
    assert sorted(docs.view_names()) == files
    con, _ = views.connect(Warehouse(str(tmp_path)))
    try:
        for view in files:
            doc = docs.load_doc("views", view)
            actual = [r[0] for r in con.sql(f"DESCRIBE {view}").fetchall()]
            assert list(doc.columns) == actual, (
                f"{docs.doc_path('views', view)} documents {list(doc.columns)}, but the view has {actual}")
            assert doc.grain, f"{docs.doc_path('views', view)}: say what one row is (grain)"
    finally:
        con.close()


def test_every_model_documents_exactly_its_columns(schemas):
    """Each model, run on empty inputs, returns the columns its YAML lists."""
    subsets = pa.table({"subset": pa.array([], pa.string()), "model_id": pa.array([], pa.string())})
    params = {"high": 1.5, "min_gap": 4, "min_share": 0.8}
    for model in docs.model_names():
        doc = docs.load_doc("models", model)
        stem = model.rsplit("/", 1)[-1]
        if stem in schemas:  # the artefact the stage writes is cast to the stage's schema
            assert list(doc.columns) == schemas[stem].names, docs.doc_path("models", model)
        sources = {"classifications": schemas["classifications"].empty_table(),
                   "pairs": schemas["pairs"].empty_table(), "subsets": subsets}
        actual = run_model(model, sources, params).column_names
        assert list(doc.columns) == actual, (
            f"{docs.doc_path('models', model)} documents {list(doc.columns)}, but the model returns {actual}")


def test_the_readme_views_table_is_generated_from_the_yaml():
    readme = ROOT / "README.md"
    assert docs.readme_is_current(readme), (
        "README.md's views section (between <!-- views:begin --> and <!-- views:end -->) differs from the "
        f"view documentation in warehouse/sql/views/*.yaml; regenerate it with `.venv/bin/{docs.REGENERATE}`")


def test_a_view_without_documentation_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "SQL_DIR", tmp_path)
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "lonely.sql").write_text("SELECT 1 AS x\n", encoding="utf-8")
    with pytest.raises(docs.DocError, match="lonely.yaml is missing"):
        docs.view_docs()
    (tmp_path / "views" / "lonely.yaml").write_text("description: one\ncolumns: [x]\n", encoding="utf-8")
    with pytest.raises(docs.DocError, match="columns"):
        docs.view_docs()


def test_rendered_table_escapes_pipes_and_keeps_column_order():
    doc = docs.RelationDoc(name="v", description="d", grain="a | b", columns={"z": "last | first", "a": "x"})
    assert docs.render_views_table([doc]).splitlines()[-1] == "| `v` | a \\| b | z, a |"
    assert "| `z` | last \\| first |" in docs.render_columns(doc)
