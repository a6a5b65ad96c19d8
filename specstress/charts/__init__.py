"""Vega-Lite specs for every plot, shared by the explorer (``specstress serve``) and the static report
(``specstress report``): plain dicts with their data inline, rendered by the vendored vega-embed
(``vendor/``: vega, vega-lite and vega-embed, BSD-3), so neither needs a network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier only: nothing is fetched
VENDOR_DIR = Path(__file__).parent / "vendor"
VENDOR_SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")   # in load order


def vendor_js() -> str:
    """The three bundles, concatenated, for inlining into a self-contained page."""
    return "\n;\n".join((VENDOR_DIR / n).read_text(encoding="utf-8") for n in VENDOR_SCRIPTS)


def script_json(obj: Any) -> str:
    """JSON that is safe inside an inline <script>: no '<', '>' or '&' survive, so model text in a chart's data
    cannot close the script element."""
    return (json.dumps(obj, default=str).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _spec(rows: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    return {"$schema": SCHEMA, "data": {"values": rows}, **body}


def d_histogram(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows: subset, d. One small histogram per subset."""
    return _spec(rows, mark="bar", width=220, height=120,
                 encoding={"x": {"field": "d", "type": "quantitative", "bin": {"step": 0.25, "extent": [0, 3]},
                                 "title": "D"},
                           "y": {"aggregate": "count", "type": "quantitative", "title": "scenarios"},
                           "facet": {"field": "subset", "type": "nominal", "columns": 3, "title": None},
                           "tooltip": [{"aggregate": "count", "type": "quantitative", "title": "scenarios"}]})


def heatmap(rows: list[dict[str, Any]], x: str, y: str, color: str, title: str, *, domain: list[float] | None = None,
            fmt: str = ".2f") -> dict[str, Any]:
    scale: dict[str, Any] = {"scheme": "blues"}
    if domain:
        scale["domain"] = domain
    rect = {"mark": "rect", "encoding": {"color": {"field": color, "type": "quantitative", "title": title, "scale": scale}}}
    text = {"mark": {"type": "text", "fontSize": 9},
            "encoding": {"text": {"field": color, "type": "quantitative", "format": fmt}}}
    return _spec(rows, encoding={"x": {"field": x, "type": "nominal", "title": None, "axis": {"labelAngle": -40}},
                                 "y": {"field": y, "type": "nominal", "title": None},
                                 "tooltip": [{"field": x}, {"field": y}, {"field": color, "format": fmt}]},
                 layer=[rect, text])


def stacked_bars(rows: list[dict[str, Any]], y: str, stack_field: str, order_field: str, *,
                 normalize: bool = True, title: str = "share of responses") -> dict[str, Any]:
    """Rows: <y>, <stack_field> (label), <order_field> (level), n."""
    return _spec(rows, mark="bar", width=520,
                 encoding={"y": {"field": y, "type": "nominal", "title": None},
                           "x": {"field": "n", "type": "quantitative", "stack": "normalize" if normalize else True,
                                 "title": title},
                           "color": {"field": stack_field, "type": "nominal", "title": "level",
                                     "sort": {"field": order_field}, "scale": {"scheme": "orangered"}},
                           "order": {"field": order_field, "type": "quantitative"},
                           "tooltip": [{"field": y}, {"field": stack_field}, {"field": "n", "type": "quantitative"}]})


def bars(rows: list[dict[str, Any]], x: str, ys: list[str], title: str) -> dict[str, Any]:
    """Grouped bars: one bar per (x, measure) from wide rows."""
    return _spec(rows, transform=[{"fold": ys, "as": ["measure", "value"]}], mark="bar", width=360, height=200,
                 encoding={"x": {"field": x, "type": "nominal", "title": None},
                           "xOffset": {"field": "measure"},
                           "y": {"field": "value", "type": "quantitative", "title": title},
                           "color": {"field": "measure", "type": "nominal", "title": None},
                           "tooltip": [{"field": x}, {"field": "measure"}, {"field": "value", "type": "quantitative"}]})


def position_strip(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows: value (with its slot), model_id, position, label. Each value's 0-6 spectrum as a strip, each
    model's placement a point on it."""
    base_x = {"field": "position", "type": "quantitative", "scale": {"domain": [-0.3, 6.3]},
              "axis": {"values": [0, 1, 2, 3, 4, 5, 6], "title": "position on the spectrum (0 oppose .. 6 favour)"}}
    points = {"mark": {"type": "point", "filled": True, "size": 90, "opacity": 0.8},
              "encoding": {"x": base_x, "yOffset": {"field": "model_id", "type": "nominal"},
                           "color": {"field": "model_id", "type": "nominal", "title": "model"},
                           "tooltip": [{"field": "model_id"}, {"field": "position"}, {"field": "label"}]}}
    return _spec(rows, width=560, height={"step": 16, "for": "offset"},
                 encoding={"y": {"field": "value", "type": "nominal", "title": None}}, layer=[points])


def lineage_dag(artefacts: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows: stage, artefact_id, parents (ids). The artefact DAG drawn left to right: a node's column is its
    depth (longest path from a root), edges are rules from each parent to its child."""
    by_id = {a["artefact_id"]: a for a in artefacts}
    depth: dict[str, int] = {}

    def d(aid: str, seen: frozenset[str] = frozenset()) -> int:
        if aid not in depth:
            ps = [p for p in by_id[aid].get("parents") or [] if p in by_id and p not in seen]
            depth[aid] = 1 + max((d(p, seen | {aid}) for p in ps), default=-1)
        return depth[aid]

    for aid in by_id:
        d(aid)
    rows_at: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for aid in sorted(by_id, key=lambda a: (depth[a], by_id[a]["stage"])):
        pos[aid] = (depth[aid], rows_at.get(depth[aid], 0))
        rows_at[depth[aid]] = pos[aid][1] + 1
    nodes = [{"kind": "node", "x": x, "y": y, "stage": by_id[a]["stage"], "artefact_id": a} for a, (x, y) in pos.items()]
    edges = [{"kind": "edge", "x": pos[p][0], "y": pos[p][1], "x2": pos[a][0], "y2": pos[a][1]}
             for a in by_id for p in by_id[a].get("parents") or [] if p in pos]
    x = {"field": "x", "type": "quantitative", "axis": None, "scale": {"domainMin": -0.3}}
    y = {"field": "y", "type": "quantitative", "axis": None, "scale": {"reverse": True, "domainMin": -0.5}}
    return _spec(nodes + edges, width=max(300, 150 * (1 + max(rows_at, default=0))),
                 height=max(120, 40 * max(rows_at.values(), default=1)),
                 layer=[{"transform": [{"filter": "datum.kind == 'edge'"}],
                         "mark": {"type": "rule", "color": "#99a"},
                         "encoding": {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}}},
                        {"transform": [{"filter": "datum.kind == 'node'"}], "mark": {"type": "circle", "size": 80},
                         "encoding": {"x": x, "y": y, "tooltip": [{"field": "stage"}, {"field": "artefact_id"}]}},
                        {"transform": [{"filter": "datum.kind == 'node'"}],
                         "mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 11},
                         "encoding": {"x": x, "y": y, "text": {"field": "stage"}}}])
