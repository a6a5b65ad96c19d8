"""Taxonomies: the seed file, the Values-in-the-Wild CSV importer, LLM expansion with dedup, and pairs."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.errors import SpecError
from specstress.tasks.pairs import decode_pair_index, sample_pairs
from specstress.taxonomy import ValueIndex, load_values_in_the_wild, load_yaml_taxonomy

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "specs" / "taxonomy" / "seed.yaml"


def test_seed_taxonomy_shape():
    t = load_yaml_taxonomy(SEED)
    assert t.num_rows >= 150
    assert len(set(t.column("category").to_pylist())) == 26
    assert set(t.column("top_category").to_pylist()) == {
        "Epistemic values", "Protective values", "Practical values", "Social values", "Personal values"}
    assert all(d for d in t.column("description").to_pylist())


def test_value_index_finds_longest_names_first():
    idx = ValueIndex.from_table(load_yaml_taxonomy(SEED))
    found = idx.find("Should harm prevention beat user autonomy? And what about harm prevention again?")
    assert found == ["harm prevention", "user autonomy"]
    assert idx.category("harm prevention") == "Protection of people and environment"


def write_tree(path: Path) -> None:
    rows = [
        ("top1", "Epistemic stuff", "Epistemic values", 3, ""),
        ("cat1", "Rigour", "Methodical rigor", 2, "top1"),
        ("c1", "cluster", "careful checking", 1, "cat1"),
        ("v1", "checking facts", "accuracy", 0, "c1"),
        ("v2", "showing steps", "transparency", 0, "c1"),
        ("top2", "Social stuff", "Social values", 3, ""),
        ("cat2", "Bonds", "Community and relationship bonds", 2, "top2"),
        ("c2", "cluster", "loyalty", 1, "cat2"),
        ("v3", "family first", "filial piety", 0, "c2"),
    ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cluster_id", "description", "name", "level", "parent_cluster_id", "pct_total_occurrences"])
        for r in rows:
            w.writerow([*r, 0.1])


def test_values_in_the_wild_importer(tmp_path):
    p = tmp_path / "values_tree.csv"
    write_tree(p)
    t = load_values_in_the_wild(str(p)).to_pylist()
    by = {r["value"]: r for r in t}
    assert set(by) == {"accuracy", "transparency", "filial piety"}
    assert by["accuracy"]["category"] == "Methodical rigor" and by["accuracy"]["top_category"] == "Epistemic values"
    assert by["accuracy"]["cluster_l1"] == "careful checking"
    assert by["filial piety"]["source"] == "values_in_the_wild"


def test_values_in_the_wild_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SpecError, match="missing columns"):
        load_values_in_the_wild(str(bad))
    from specstress.runspec import load_run_spec

    with pytest.raises(SpecError, match="tree_csv"):
        load_run_spec(ROOT / "specs" / "runs" / "demo.yaml", {"taxonomy": {"source": "values_in_the_wild"}})


def test_taxonomy_expansion_through_the_emulator(tmp_path):
    from specstress.context import RunContext
    from specstress.providers.engine import close_engine
    from specstress.tasks.base import Inputs
    from specstress.tasks.taxonomy import TaxonomyStage
    from specstress.warehouse.store import ArtefactLoader, Warehouse
    from tests.conftest import DEMO, make_emulator

    over = {"warehouse": str(tmp_path), "taxonomy.source": "expand", "taxonomy.per_category": 3,
            "roles.taxonomy_expander": "judge-claude"}
    emu = make_emulator(DEMO, **over).start()
    try:
        ctx = RunContext.create(DEMO, over, emulator_url=emu.url, quiet=True)
        t = TaxonomyStage().compute(ctx, Inputs({}, ArtefactLoader(Warehouse(str(tmp_path)))))
        close_engine(ctx.run_id)
    finally:
        emu.stop()
    base = load_yaml_taxonomy(SEED).num_rows
    rows = t.to_pylist()
    added = [r for r in rows if r["source"] == "expanded"]
    assert len(rows) > base and added
    names = [r["value"] for r in rows]
    assert len(names) == len(set(names))  # deduplicated
    assert emu.stats()["by_endpoint"]["messages"] == 26  # one call per level-2 category


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 60))
def test_decode_pair_index_is_a_bijection(n):
    total = n * (n - 1) // 2
    i, j = decode_pair_index(np.arange(total), n)
    assert (i < j).all() and (j < n).all()
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == list(itertools.combinations(range(n), 2))


def test_sample_pairs_uniform_unordered_no_self_pairs():
    a, b = sample_pairs(30, 400, seed=1)
    assert (a != b).all()
    unordered = {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist(), strict=True)}
    assert len(unordered) == 400  # no pair twice, in either orientation
    assert 0.4 < np.mean(a < b) < 0.6  # orientation is a coin
    a2, b2 = sample_pairs(30, 400, seed=1)
    assert (a == a2).all() and (b == b2).all()
    with pytest.raises(SpecError, match="at most 435"):
        sample_pairs(30, 1000, seed=1)
