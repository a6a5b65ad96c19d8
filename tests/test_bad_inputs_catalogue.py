"""A catalogue of hostile inputs, one table: run specs, taxonomies, model-spec files, imported datasets, CLI arguments
and SQL. Each must end in a one-line error that names the thing and a fix, a non-zero exit, no traceback, nothing
sent to any provider, and no change to a warehouse that already holds a run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from specstress.cli import main
from tests.conftest import DEMO, ROOT

SPECS = ROOT / "specs"


def _demo_text(wh: Path) -> str:
    """The demo spec with absolute paths (the variants live in a temporary folder) and the test's warehouse."""
    text = DEMO.read_text(encoding="utf-8")
    return (text.replace("warehouse: ../../.specstress/warehouse", f"warehouse: {wh}")
            .replace("prices: ../prices.yaml", f"prices: {SPECS / 'prices.yaml'}")
            .replace("path: ../taxonomy/seed.yaml", f"path: {SPECS / 'taxonomy' / 'seed.yaml'}")
            .replace("model_spec: ../model_specs/demo_assistant_spec.md",
                     f"model_spec: {SPECS / 'model_specs' / 'demo_assistant_spec.md'}"))


def _spec(edit: Callable[[str], str] | bytes) -> Callable[[Path, Path], list[str]]:
    """A case: write the edited demo spec, then `specstress run` it."""
    def make(tmp: Path, wh: Path) -> list[str]:
        path = tmp / "spec.yaml"
        if isinstance(edit, bytes):
            path.write_bytes(edit)
        else:
            path.write_text(edit(_demo_text(wh)), encoding="utf-8")
        return ["run", str(path)]
    return make


def _with_file(name: str, content: bytes | str, setting: str) -> Callable[[Path, Path], list[str]]:
    """A case: a file the run spec points to (taxonomy, model spec) holds ``content``."""
    def make(tmp: Path, wh: Path) -> list[str]:
        f = tmp / name
        f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        path = tmp / "spec.yaml"
        path.write_text(_demo_text(wh), encoding="utf-8")
        return ["run", str(path), "--set", f"{setting}={f}"]
    return make


def _import(table: pa.Table | bytes) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, wh: Path) -> list[str]:
        f = tmp / "release.parquet"
        if isinstance(table, bytes):
            f.write_bytes(table)
        else:
            pq.write_table(table, f)
        return ["import-paper", str(f), "--warehouse", str(wh)]
    return make


def _sql(query: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, wh: ["sql", query, "--warehouse", str(wh)]


def _argv(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, wh: [a.replace("{tmp}", str(tmp)).replace("{wh}", str(wh)) for a in args]


def _release(positions: list) -> pa.Table:
    n = len(positions)
    cols = {"value1": ["a"] * n, "value2": ["b"] * n, "nudge_direction": ["neutral"] * n, "query": ["q"] * n,
            "chunk_index": list(range(n)), "entry_idx": list(range(n))}
    for m in ("claude_opus_4", "gpt_4_1"):
        cols[f"response_{m}"] = ["r"] * n
        cols[f"{m}_value1_position"] = positions
        cols[f"{m}_value2_position"] = positions
    return pa.table(cols)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))

TAXONOMY_OK = (SPECS / "taxonomy" / "seed.yaml").read_text(encoding="utf-8")

#: case id -> (argv builder, words the error must hold)
CASES: dict[str, tuple[Callable[[Path, Path], list[str]], tuple[str, ...]]] = {
    # run specs
    "spec: wrong type": (_spec(lambda t: t.replace("count: 150", "count: many")), ("pairs.count",)),
    "spec: unknown top-level key": (_spec(lambda t: t.replace("pairs:\n", "pairz:\n", 1)), ("pairz",)),
    "spec: unknown nested key": (_spec(lambda t: t.replace("max_attempts: 8", "max_attemps: 8")), ("max_attemps",)),
    "spec: unknown matcher": (_spec(lambda t: t.replace("matcher: judge-gpt", "matcher: judge-nope")), ("judge-nope",)),
    "spec: unknown panel model": (_spec(lambda t: t.replace("panel: [guardian,", "panel: [guardien,")), ("guardien",)),
    "spec: subset of unknown model": (_spec(lambda t: t.replace("openai_sdk: [guardian, scholar]",
                                                                "openai_sdk: [guardian, nobody]")), ("nobody",)),
    "spec: duplicate model id": (_spec(lambda t: t.replace("- {id: scholar,", "- {id: guardian,")), ("guardian",)),
    "spec: huge count": (_spec(lambda t: t.replace("count: 150", "count: 1000000000000000000000000000000")),
                         ("pairs.count",)),
    "spec: negative budget": (_spec(lambda t: t.replace("budget_usd: 10.00", "budget_usd: -5")), ("budget_usd",)),
    "spec: panel of one": (_spec(lambda t: t.replace(
        "panel: [guardian, scholar, pragmatist, communitarian, individualist, bon-vivant]", "panel: [guardian]")
        .replace("group: [guardian, scholar]", "group: [guardian]")), ("roles.panel",)),
    "spec: 5 MB file": (_spec(lambda t: t + "\n# " + "x" * 5_000_000 + "\n"), ("MB",)),
    "spec: not UTF-8": (_spec(b"name: demo\ndescription: caf\xe9\xff\n"), ("UTF-8",)),
    "spec: YAML bomb": (_spec(BOMB.encode()), ("bomb",)),
    "spec: empty file": (_spec(b""), ("mapping",)),
    "spec: a list": (_spec(b"- name: demo\n- budget_usd: 3\n"), ("mapping",)),
    "spec: duplicate key": (_spec(lambda t: t.replace("seed: 20251007", "seed: 20251007\nseed: 1")), ("twice",)),
    "spec: broken YAML": (_spec(lambda t: t.replace("pairs:\n  count: 150", "pairs:\n count: [150")), ("YAML",)),
    "spec: cycle of stages in a subset name": (_spec(lambda t: t.replace("openai_sdk:", "all:", 1)), ("all",)),
    # taxonomies
    "taxonomy: missing level": (_with_file("tax.yaml", "name: t\nversion: 1\ncategories:\n  - name: A\n"
                                           "    values:\n      - name: v1\n", "taxonomy.path"), ("tax.yaml",)),
    "taxonomy: duplicate ids": (_with_file("tax.yaml", TAXONOMY_OK.replace(
        "name: thorough verification", "name: evidence-based reasoning"), "taxonomy.path"), ("tax.yaml",)),
    "taxonomy: empty name": (_with_file("tax.yaml", TAXONOMY_OK.replace(
        "name: reproducible results", "name: ''"), "taxonomy.path"), ("tax.yaml",)),
    "taxonomy: not a mapping": (_with_file("tax.yaml", "- a\n- b\n", "taxonomy.path"), ("tax.yaml",)),
    "taxonomy: missing file": (_argv("run", str(DEMO), "--set", "taxonomy.path={tmp}/nope.yaml"), ("nope.yaml",)),
    # model-spec files
    # (an unclosed fence is valid markdown when nothing follows; one that would swallow headings is refused)
    "model spec: unclosed fence": (_with_file("ms.md", "# Spec\n\n## A {#a}\ntext\n```\nnever closed\n\n## B {#b}\n"
                                              "more\n", "compliance.model_spec"), ("never closed",)),
    "model spec: duplicate ids": (_with_file("ms.md", "# Spec\n\n## A {#same}\none\n\n## B {#same}\ntwo\n",
                                             "compliance.model_spec"), ("duplicate section id",)),
    # a 10 MB spec goes into every judge prompt: the budget check refuses the run before any call
    "model spec: 10 MB": (_with_file("ms.md", "# Spec\n\n## A {#a}\n" + "word " * 2_100_000,
                                     "compliance.model_spec"), ("budget",)),
    "model spec: not UTF-8": (_with_file("ms.md", b"# Spec\n\n## A\n\xff\xfe\n", "compliance.model_spec"), ("ms.md",)),
    "model spec: missing": (_argv("run", str(DEMO), "--set", "compliance.model_spec={tmp}/none.md"), ("none.md",)),
    # imported datasets
    "import: corrupt parquet": (_import(b"PAR1 this is not parquet"), ("release.parquet",)),
    "import: wrong columns": (_import(pa.table({"x": [1, 2]})), ("release.parquet",)),
    "import: position out of 0..6": (_import(_release([1, 9])), ("position",)),
    "import: NaN position": (_import(_release([1.0, float("nan")])), ("position",)),
    "import: missing file": (_argv("import-paper", "{tmp}/nothing.parquet", "--warehouse", "{wh}"), ("nothing",)),
    # CLI arguments
    "cli: unknown command": (_argv("frobnicate"), ("frobnicate",)),
    "cli: missing spec": (_argv("run", "{tmp}/missing.yaml"), ("missing.yaml",)),
    "cli: a folder as spec": (_argv("run", "{tmp}"), ("folder",)),
    "cli: --set without =": (_argv("run", str(DEMO), "--set", "pairs.count"), ("pairs.count",)),
    "cli: --set unknown key": (_argv("run", str(DEMO), "--set", "pair.count=20"), ("pair",)),
    "cli: bad --format": (_argv("sql", "select 1", "--warehouse", "{wh}", "--format", "xml"), ("xml",)),
    "cli: unknown run": (_argv("sql", "select 1", "--warehouse", "{wh}", "--run", "no-such-run"), ("no-such-run",)),
    # SQL
    "sql: two statements": (_sql("select 1; select 2"), ("statement",)),
    "sql: insert": (_sql("insert into calls select * from calls"), ("read-only",)),
    "sql: create": (_sql("create table t as select 1"), ("read-only",)),
    "sql: copy": (_sql("copy (select 1) to '/tmp/specstress-x.csv'"), ("read-only",)),
    "sql: attach": (_sql("attach '/tmp/specstress-x.db'"), ("read-only",)),
    "sql: install": (_sql("install httpfs"), ("read-only",)),
    "sql: pragma": (_sql("pragma version"), ("read-only",)),
    "sql: set": (_sql("set threads = 1"), ("read-only",)),
    "sql: 1 MB query": (_sql("select " + " + ".join(["1"] * 250_000)), ("query",)),
}


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A warehouse that already holds a run (an imported release)."""
    from specstress.paper_dataset import import_paper

    root = tmp_path_factory.mktemp("wh")
    src = tmp_path_factory.mktemp("src") / "release.parquet"
    pq.write_table(_release([1, 5, 3, 0]), src)
    import_paper(str(src), str(root))
    return root


def test_the_catalogue_has_at_least_40_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input(case, warehouse, tmp_path, capsys, monkeypatch):
    build, words = CASES[case]

    def never(*a, **k):
        raise AssertionError("a provider call or a flow was reached")

    import specstress.flows.stress_test as flow_module
    import specstress.providers.engine as engine

    monkeypatch.setattr(flow_module, "stress_test", never)
    monkeypatch.setattr(engine, "get_engine", never, raising=False)
    before = _checksums(warehouse)
    argv = build(tmp_path, warehouse)
    try:
        code = main(argv)
    except SystemExit as exc:                     # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code not in (0, None), (case, out[-500:], err[-500:])
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines, case
    message = lines[-1] if lines[-1].startswith("error") or "error:" in lines[-1] else lines[0]
    assert "Traceback" not in err, (case, err[-2000:])
    assert len(message) < 2000, (case, len(message))
    assert any(w.lower() in err.lower() for w in words), (case, err[-1000:])
    assert _checksums(warehouse) == before, case   # nothing already in the warehouse changed
    assert not any(os.scandir(tmp_path / "wh")) if (tmp_path / "wh").exists() else True
