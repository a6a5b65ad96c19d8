"""Column documentation for the warehouse's views and SQL models.

Beside every ``sql/views/<view>.sql`` and ``sql/models/<model>.sql`` stands ``<same name>.yaml``::

    description: what the relation holds, in a sentence or two
    grain: what one row is (views)
    columns:
      column_name: what the column means, on one line

The columns are listed in the order the SQL returns them; ``tests/test_view_docs.py`` holds every
view's documented columns equal to its real ones. The README's views table is rendered from these
files; regenerate it after editing one::

    python -m specstress.warehouse.docs --write-readme      # rewrite README.md's views section
    python -m specstress.warehouse.docs --check             # exit 1 when README.md is out of date
    python -m specstress.warehouse.docs VIEW                # print one view's columns
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from specstress.warehouse.sql_files import SQL_DIR

README_BEGIN = "<!-- views:begin -->"
README_END = "<!-- views:end -->"
REGENERATE = "python -m specstress.warehouse.docs --write-readme"

#: The order the README lists views in: the order a reader meets them along the pipeline, then the
#: ledger and lineage. A view not named here comes after these, by name.
VIEW_ORDER = (
    "value_taxonomy", "value_pairs", "scenarios", "scenario_attempts", "responses", "spectra",
    "classifications", "disagreement", "high_disagreement", "value_priorities", "priority_freeform",
    "value_priorities_freeform", "outliers", "topics", "refusals", "compliance_judgments", "compliance",
    "judge_agreement", "calls", "call_log", "artefacts", "runs",
)


class DocError(ValueError):
    """A documentation YAML is missing or malformed."""


@dataclass(frozen=True)
class RelationDoc:
    """The documentation of one view or model."""

    name: str
    description: str
    columns: dict[str, str]
    grain: str = ""


def doc_path(kind: str, name: str) -> Path:
    """The YAML beside ``sql/<kind>/<name>.sql`` (kind: ``views`` or ``models``)."""
    return SQL_DIR / kind / f"{name}.yaml"


def load_doc(kind: str, name: str) -> RelationDoc:
    """Read and check ``sql/<kind>/<name>.yaml``."""
    path = doc_path(kind, name)
    if not path.exists():
        raise DocError(f"{path} is missing: every {kind[:-1]} documents its columns in a YAML beside its SQL")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DocError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DocError(f"{path}: expected a mapping with description and columns")
    unknown = set(data) - {"description", "grain", "columns"}
    if unknown:
        raise DocError(f"{path}: unknown keys {sorted(unknown)} (allowed: description, grain, columns)")
    description, grain, columns = data.get("description"), data.get("grain", ""), data.get("columns")
    if not isinstance(description, str) or not description.strip():
        raise DocError(f"{path}: `description` must be a non-empty string")
    if not isinstance(grain, str):
        raise DocError(f"{path}: `grain` must be a string")
    if not isinstance(columns, dict) or not columns:
        raise DocError(f"{path}: `columns` must map each column name to a one-line description")
    for col, text in columns.items():
        if not isinstance(col, str) or not isinstance(text, str) or not text.strip() or "\n" in text.strip():
            raise DocError(f"{path}: column {col!r} needs a one-line description")
    return RelationDoc(name=name, description=" ".join(description.split()), grain=grain.strip(),
                       columns={c: " ".join(t.split()) for c, t in columns.items()})


def view_names() -> list[str]:
    """Every view that has a ``.sql`` file, in README order."""
    names = {p.stem for p in (SQL_DIR / "views").glob("*.sql")}
    ordered = [v for v in VIEW_ORDER if v in names]
    return ordered + sorted(names - set(ordered))


def model_names() -> list[str]:
    """Every SQL model, as ``run_model`` names it (``disagreement``, ``reference/disagreement``)."""
    root = SQL_DIR / "models"
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.sql"))


def view_docs() -> list[RelationDoc]:
    return [load_doc("views", v) for v in view_names()]


def model_docs() -> list[RelationDoc]:
    return [load_doc("models", m) for m in model_names()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_views_table(docs: Sequence[RelationDoc] | None = None) -> str:
    """A Markdown table: view, grain and column names, one row per view."""
    docs = view_docs() if docs is None else docs
    lines = ["| view | grain | columns |", "|---|---|---|"]
    lines += [f"| `{d.name}` | {_cell(d.grain)} | {_cell(', '.join(d.columns))} |" for d in docs]
    return "\n".join(lines)


def render_columns(doc: RelationDoc, heading: str = "####") -> str:
    """One relation's description and a Markdown table of its columns."""
    lines = [f"{heading} `{doc.name}`", "", doc.description, "", "| column | meaning |", "|---|---|"]
    lines += [f"| `{c}` | {_cell(t)} |" for c, t in doc.columns.items()]
    return "\n".join(lines)


def readme_section(docs: Sequence[RelationDoc] | None = None) -> str:
    """What stands between the README's views markers (the markers included)."""
    docs = view_docs() if docs is None else docs
    parts = [
        README_BEGIN,
        f"<!-- generated from warehouse/sql/views/*.yaml by `{REGENERATE}`: edit the YAML, not this -->",
        render_views_table(docs),
        "",
        "<details><summary>Every view's columns, described</summary>",
        "",
        *(render_columns(d) + "\n" for d in docs),
        "</details>",
        README_END,
    ]
    return "\n".join(parts)


def replace_section(text: str, section: str) -> str:
    """``text`` with what stands between the views markers replaced by ``section``."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise DocError(f"the README has no {README_BEGIN} ... {README_END} section")
    return text[:start] + section + text[end + len(README_END):]


def readme_is_current(readme: Path) -> bool:
    text = readme.read_text(encoding="utf-8")
    return replace_section(text, readme_section()) == text


def write_readme(readme: Path) -> bool:
    """Rewrite the views section of ``readme``; True when it changed."""
    text = readme.read_text(encoding="utf-8")
    new = replace_section(text, readme_section())
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m specstress.warehouse.docs",
                                 description="Render the views' column documentation (sql/views/*.yaml).")
    ap.add_argument("view", nargs="?", help="print this view's (or model's) columns")
    ap.add_argument("--write-readme", action="store_true", help="rewrite the README's views section")
    ap.add_argument("--check", action="store_true", help="exit 1 when the README's views section is out of date")
    ap.add_argument("--readme", type=Path, default=Path("README.md"), help="the README (default: ./README.md)")
    args = ap.parse_args(argv)
    try:
        if args.write_readme:
            changed = write_readme(args.readme)
            print(f"{args.readme}: views section {'rewritten' if changed else 'already current'}")
        elif args.check:
            if not readme_is_current(args.readme):
                print(f"{args.readme}: the views section is out of date; run `{REGENERATE}`", file=sys.stderr)
                return 1
        elif args.view:
            kind = "views" if (SQL_DIR / "views" / f"{args.view}.sql").exists() else "models"
            print(render_columns(load_doc(kind, args.view), heading="##"))
        else:
            print(readme_section())
    except (DocError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
