"""Value taxonomies: our YAML seed format and Anthropic's public Values-in-the-Wild CSVs.

Both load into one Arrow table, one row per leaf value, with its level-2 category and its
top-level category. Level numbers follow Values in the Wild: 0 leaf, 1 fine cluster,
2 category (26 of them), 3 top-level (5 of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from specstress.errors import SpecError
from specstress.hashing import short_id

TAXONOMY_SCHEMA = pa.schema(
    [
        ("value_id", pa.string()),
        ("value", pa.string()),
        ("description", pa.string()),
        ("cluster_l1", pa.string()),
        ("category", pa.string()),
        ("category_description", pa.string()),
        ("top_category", pa.string()),
        ("source", pa.string()),
    ]
)


@dataclass(frozen=True)
class ValueInfo:
    value: str
    description: str
    category: str
    top_category: str


def normalise_name(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower())


def value_id(name: str) -> str:
    return "v_" + short_id(normalise_name(name), 12)


def load_yaml_taxonomy(path: Path, source: str = "file") -> pa.Table:
    """Load our seed format (see ``specs/taxonomy/seed.yaml``) and validate it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: taxonomy file not found. Fix: point taxonomy.path at a taxonomy YAML.") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: taxonomy is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise SpecError(f"{path}: a taxonomy needs a top-level `categories:` list. Fix: see specs/taxonomy/seed.yaml.")
    rows: dict[str, list[Any]] = {f.name: [] for f in TAXONOMY_SCHEMA}
    seen: dict[str, str] = {}
    for ti, top in enumerate(data["categories"]):
        tname = _need(top, "name", f"categories[{ti}]", path)
        for ci, cat in enumerate(top.get("children") or []):
            cname = _need(cat, "name", f"categories[{ti}].children[{ci}]", path)
            for vi, val in enumerate(cat.get("values") or []):
                where = f"categories[{ti}].children[{ci}].values[{vi}]"
                vname = normalise_name(_need(val, "name", where, path))
                if vname in seen:
                    raise SpecError(f"{path}: {where}: value {vname!r} appears twice (also under {seen[vname]}). "
                                    "Fix: keep one.")
                seen[vname] = cname
                rows["value_id"].append(value_id(vname))
                rows["value"].append(vname)
                rows["description"].append(str(val.get("description") or ""))
                rows["cluster_l1"].append(None)
                rows["category"].append(cname)
                rows["category_description"].append(str(cat.get("description") or ""))
                rows["top_category"].append(tname)
                rows["source"].append(source)
    if len(rows["value"]) < 2:
        raise SpecError(f"{path}: the taxonomy has fewer than two leaf values; pairs need at least two.")
    return pa.table(rows, schema=TAXONOMY_SCHEMA)


def _need(obj: Any, key: str, where: str, path: Path) -> str:
    if not isinstance(obj, dict) or not obj.get(key):
        raise SpecError(f"{path}: {where}: missing `{key}`. Fix: add it.")
    return str(obj[key])


def load_values_in_the_wild(tree_csv: str) -> pa.Table:
    """Read Anthropic's ``values_tree.csv`` (cluster_id, description, name, level, parent_cluster_id, ...).

    ``tree_csv`` is a local path or an ``hf://datasets/Anthropic/values-in-the-wild/values_tree.csv``
    URL; the latter is read by DuckDB's httpfs extension, which needs network on first use.
    """
    import duckdb

    con = duckdb.connect()
    try:
        if tree_csv.startswith(("hf://", "s3://", "gs://", "http://", "https://")):
            try:
                con.execute("INSTALL httpfs; LOAD httpfs;")
            except Exception as exc:  # offline: say what to do
                raise SpecError(
                    f"{tree_csv}: DuckDB needs its httpfs extension to read remote files and could not get it "
                    f"({type(exc).__name__}). Fix: download values_tree.csv once and set taxonomy.tree_csv to the "
                    "local path.") from None
        tree = con.sql(f"SELECT * FROM read_csv_auto('{_sql_str(tree_csv)}', header=true)").to_arrow_table()
    except duckdb.Error as exc:
        raise SpecError(f"{tree_csv}: cannot read values_tree.csv: {exc}") from None
    finally:
        con.close()
    needed = {"cluster_id", "name", "level", "parent_cluster_id"}
    missing = needed - set(tree.column_names)
    if missing:
        raise SpecError(f"{tree_csv}: not a Values-in-the-Wild tree; missing columns {sorted(missing)}.")
    nodes = {r["cluster_id"]: r for r in tree.to_pylist()}
    rows: dict[str, list[Any]] = {f.name: [] for f in TAXONOMY_SCHEMA}

    def ancestor(node: dict[str, Any], level: int) -> dict[str, Any] | None:
        cur: dict[str, Any] | None = node
        guard = 0
        while cur is not None and int(cur["level"]) < level and guard < 10:
            cur = nodes.get(cur.get("parent_cluster_id"))
            guard += 1
        return cur if cur is not None and int(cur["level"]) == level else None

    seen: set[str] = set()
    for node in tree.to_pylist():
        if int(node["level"]) != 0:
            continue
        name = normalise_name(str(node["name"]))
        if name in seen:
            continue
        seen.add(name)
        l1, l2, l3 = ancestor(node, 1), ancestor(node, 2), ancestor(node, 3)
        rows["value_id"].append(value_id(name))
        rows["value"].append(name)
        rows["description"].append(str(node.get("description") or ""))
        rows["cluster_l1"].append(str(l1["name"]) if l1 else None)
        rows["category"].append(str(l2["name"]) if l2 else "Uncategorised")
        rows["category_description"].append(str(l2.get("description") or "") if l2 else "")
        rows["top_category"].append(str(l3["name"]) if l3 else "Uncategorised")
        rows["source"].append("values_in_the_wild")
    return pa.table(rows, schema=TAXONOMY_SCHEMA)


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


class ValueIndex:
    """Finds taxonomy values named in free text (longest match first, case-insensitive)."""

    def __init__(self, values: dict[str, ValueInfo]) -> None:
        self.values = values
        names = sorted(values, key=len, reverse=True)
        self._re = re.compile(r"(?<![a-z0-9-])(" + "|".join(re.escape(n) for n in names) + r")(?![a-z0-9-])",
                              re.IGNORECASE) if names else None

    @classmethod
    def from_table(cls, table: pa.Table) -> ValueIndex:
        vals = {}
        for r in table.to_pylist():
            vals[r["value"]] = ValueInfo(r["value"], r["description"] or "", r["category"], r["top_category"])
        return cls(vals)

    def find(self, text: str) -> list[str]:
        """Distinct values named in ``text`` in order of first appearance."""
        if not self._re or not text:
            return []
        out: list[str] = []
        for m in self._re.finditer(text):
            v = m.group(1).lower()
            if v not in out:
                out.append(v)
        return out

    def category(self, value: str) -> str | None:
        info = self.values.get(value.lower())
        return info.category if info else None

    def categories(self) -> list[str]:
        return sorted({v.category for v in self.values.values()})
