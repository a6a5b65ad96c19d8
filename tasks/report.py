"""The run report: one self-contained static HTML file, built from the views with the same Vega-Lite plots
(``specstress.charts``) and canned queries as the explorer (``specstress serve``).

The vendored vega, vega-lite and vega-embed bundles are inlined, so the file opens with no network. Every
model text is escaped, in tables and in the charts' inline data. Headline numbers carry their bootstrap
intervals when the run built the ``uncertainty`` stage. Sections for compliance, refusals, topics and
outliers appear when those stages ran.
"""

from __future__ import annotations

import html
import json
from typing import Any

from specstress import charts
from specstress.context import RunContext
from specstress.warehouse.sql_files import SQL_DIR
from specstress.warehouse.store import Warehouse
from specstress.warehouse.views import connect

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;color:#1d2230;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e3e6ee;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}td,th{border:1px solid #dde1ea;padding:.25rem .5rem;vertical-align:top}
th{background:#f3f5f9;text-align:left}.muted{color:#667}.kpi{display:inline-block;margin:.3rem 1.4rem .3rem 0}
.kpi b{display:block;font-size:1.3rem}.scenario{border:1px solid #dde1ea;border-radius:6px;padding:.7rem 1rem;margin:1rem 0}
.answer{font-size:.84rem;max-width:760px}code{background:#f3f5f9;padding:0 .2rem}.chart{margin:.6rem 0;overflow-x:auto}
"""

#: renders every chart once the inline bundles have loaded; a chart that fails says so in its place
RENDER_JS = """
(function(){var specs=JSON.parse(document.getElementById('chart-specs').textContent);
Object.keys(specs).forEach(function(id){var el=document.getElementById('chart-'+id);
if(typeof vegaEmbed!=='function'){el.textContent='(plots need JavaScript)';return;}
vegaEmbed(el,specs[id],{actions:false,renderer:'svg'}).catch(function(e){el.textContent='plot failed: '+e;});});})();
"""


class _Page:
    """The report being built: HTML parts and the chart specs to render."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: dict[str, dict[str, Any]] = {}

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def chart(self, name: str, spec: dict[str, Any]) -> None:
        self.specs[name] = spec
        self.parts.append(f"<div class='chart' id='chart-{html.escape(name)}'></div>")


def _table(rows: list[dict[str, Any]], cols: list[str] | None = None, fmt: dict[str, str] | None = None) -> str:
    if not rows:
        return '<p class="muted">(no rows)</p>'
    cols = cols or list(rows[0])
    fmt = fmt or {}
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None:
                s = ""
            elif c in fmt and isinstance(v, (int, float)):
                s = format(v, fmt[c])
            else:
                s = str(v)
            cells.append(f"<td>{html.escape(s)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _dicts(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    try:
        return con.sql(sql, params=params or None).to_arrow_table().to_pylist()
    except Exception:  # noqa: BLE001 - a view may be empty or absent for this run
        return []


def _canned(con: Any, name: str) -> list[dict[str, Any]]:
    """A canonical query from ``warehouse/sql/queries`` (the explorer shows the same tables)."""
    return _dicts(con, (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8"))


def _ci(lo: Any, hi: Any, digits: int = 3, scale: float = 1.0) -> str | None:
    """An interval as ``[lo, hi]`` (``scale`` 100 for a share shown in percent); None when the run has none."""
    if lo is None or hi is None:
        return None
    return f"[{round(scale * float(lo), digits)}, {round(scale * float(hi), digits)}]"


def _ci_of(row: dict[str, Any] | None, digits: int = 3, scale: float = 1.0) -> str | None:
    """The interval of one ``uncertainty`` row, or None when there is no such row."""
    return _ci(row["ci_low"], row["ci_high"], digits, scale) if row else None


def render_report(wh: Warehouse, run: str | None = None, top_n: int = 10) -> str:
    con, sel = connect(wh, run)
    page = _Page()
    add, chart = page.add, page.chart
    try:
        run_row = _dicts(con, "SELECT * FROM runs WHERE run_id = ?", [sel.run_id])
        info = run_row[0] if run_row else {}
        conf = _dicts(con, "SELECT any_value(confidence) AS c, any_value(resamples) AS r FROM uncertainty")
        level = conf[0] if conf and conf[0]["c"] is not None else None
        ci_note = (f"Intervals: {level['c'] * 100:.0f}% seeded bootstrap, {level['r']} resamples (view uncertainty)."
                   if level else "No intervals: this run did not build the uncertainty stage.")
        add(f"<h1>specstress report: {html.escape(str(sel.name))}</h1>")
        add(f"<p class='muted'>run <code>{html.escape(str(sel.run_id))}</code> · status {html.escape(str(sel.status))}"
            f" · warehouse <code>{html.escape(wh.root)}</code> · {html.escape(ci_note)}</p>")
        counts = _dicts(con, """SELECT (SELECT count(*) FROM value_pairs) AS pairs, (SELECT count(*) FROM scenarios) AS scenarios,
            (SELECT count(*) FROM scenarios WHERE kept) AS kept, (SELECT count(*) FROM responses) AS responses,
            (SELECT count(*) FROM classifications WHERE status = 'ok') AS placements""")
        c = counts[0] if counts else {}
        spend = _dicts(con, "SELECT count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost, "
                            "coalesce(sum(attempts - 1), 0) AS retries FROM call_log WHERE run_id = ?", [sel.run_id])
        s = spend[0] if spend else {}
        kpis = [("value pairs", c.get("pairs")), ("scenarios", c.get("scenarios")), ("kept", c.get("kept")),
                ("responses", c.get("responses")), ("placements", c.get("placements")),
                ("calls sent by this run", s.get("calls")), ("retries", s.get("retries")),
                ("spent by this run", f"${(s.get('cost') or 0):.4f}"), ("calls from the ledger", info.get("cache_hits"))]
        add("<div>" + "".join(f"<span class='kpi'><b>{html.escape(str(v))}</b>{html.escape(k)}</span>"
                              for k, v in kpis) + "</div>")

        # ------------------------------------------------------------ disagreement
        add("<h2>Disagreement</h2><p>D = max over the two values of the population standard deviation of the "
            "panel's positions (0-6). High disagreement: D &ge; the run's threshold.</p>")
        d_rows = _dicts(con, "SELECT subset, d FROM disagreement")
        if d_rows:
            chart("hist", charts.d_histogram(d_rows))
        stats = _dicts(con, """SELECT d.subset, count(*) AS scenarios, round(avg(d.d), 3) AS mean_d,
                any_value(m.ci_low) AS mean_lo, any_value(m.ci_high) AS mean_hi,
                sum(d.high::INT) AS high, round(avg(d.high::INT) * 100, 1) AS high_pct,
                any_value(h.ci_low) AS high_lo, any_value(h.ci_high) AS high_hi
            FROM disagreement d
            LEFT JOIN (SELECT * FROM uncertainty WHERE metric = 'mean_d') m USING (subset)
            LEFT JOIN (SELECT * FROM uncertainty WHERE metric = 'high_share') h USING (subset)
            GROUP BY d.subset ORDER BY d.subset""")
        add(_table([{"subset": r["subset"], "scenarios": r["scenarios"], "mean D": r["mean_d"],
                     "mean D interval": _ci(r["mean_lo"], r["mean_hi"]), "high": r["high"], "high %": r["high_pct"],
                     "high % interval": _ci(r["high_lo"], r["high_hi"], 1, 100)}
                    for r in stats]))
        bins = _dicts(con, """SELECT subset,
                count(*) FILTER (WHERE bin = '[0,1)') AS "[0,1)", count(*) FILTER (WHERE bin = '[1,1.5)') AS "[1,1.5)",
                count(*) FILTER (WHERE bin = '[1.5,2)') AS "[1.5,2)", count(*) FILTER (WHERE bin = '[2,2.5)') AS "[2,2.5)",
                count(*) FILTER (WHERE bin = '[2.5,3]') AS "[2.5,3]"
                FROM disagreement GROUP BY subset ORDER BY subset""")
        if bins:
            add("<h3>Scenarios per disagreement bin</h3>" + _table(bins))
        agree = _canned(con, "model_agreement")
        if agree:
            add("<h3>Model x model agreement</h3><p>Share of scenarios where two models sit within 1 position on "
                "both values (query <code>model_agreement</code>).</p>")
            chart("agreement", charts.heatmap(agree, "model_a", "model_b", "agreement", "share within 1",
                                              domain=[0, 1]))

        # ------------------------------------------------------------ priorities
        pri = _dicts(con, "SELECT model_id, category, round(score, 3) AS score, rank FROM value_priorities")
        if pri:
            add("<h2>Value priorities</h2><p>Score = mean of (position &minus; 3) / 3 over every placement on a "
                "value of the category: +1 always favours it, &minus;1 always opposes it.</p>")
            chart("heatmap", charts.heatmap(pri, "model_id", "category", "score", "score"))
            top = _dicts(con, """SELECT v.model_id, v.rank, v.category, round(v.score, 3) AS score,
                    u.ci_low AS rank_lo, u.ci_high AS rank_hi, s.ci_low AS score_lo, s.ci_high AS score_hi
                FROM value_priorities v
                LEFT JOIN (SELECT * FROM uncertainty WHERE metric = 'category_rank') u USING (model_id, category)
                LEFT JOIN (SELECT * FROM uncertainty WHERE metric = 'category_score') s USING (model_id, category)
                WHERE v.rank <= 3 ORDER BY v.model_id, v.rank""")
            add("<h3>Each model's top 3 categories</h3>" + _table(
                [{"model": r["model_id"], "rank": r["rank"], "category": r["category"], "score": r["score"],
                  "score interval": _ci(r["score_lo"], r["score_hi"]),
                  "rank interval": _ci(r["rank_lo"], r["rank_hi"], 0)} for r in top]))

        # ------------------------------------------------------------ top scenarios
        add(f"<h2>The {top_n} highest-disagreement scenarios</h2>")
        tops = _dicts(con, """SELECT d.scenario_id, d.d, s.query, s.value1, s.value2, s.nudge
            FROM disagreement d JOIN scenarios s USING (scenario_id)
            WHERE d.subset = 'all' ORDER BY d.d DESC, d.scenario_id LIMIT ?""", [int(top_n)])
        for t in tops:
            answers = _dicts(con, """SELECT r.model_id, r.outcome, r.response,
                   max(CASE WHEN c.value_slot = 1 THEN c.position END) AS pos_value1,
                   max(CASE WHEN c.value_slot = 2 THEN c.position END) AS pos_value2
                FROM responses r LEFT JOIN classifications c USING (scenario_id, model_id)
                WHERE r.scenario_id = ? GROUP BY r.model_id, r.outcome, r.response ORDER BY r.model_id""",
                             [t["scenario_id"]])
            v1, v2 = str(t["value1"] or ""), str(t["value2"] or "")
            add(f"<div class='scenario'><b>D = {t['d']:.2f}</b> · <i>{html.escape(v1)}</i> vs "
                f"<i>{html.escape(v2)}</i> · nudge: {html.escape(str(t['nudge']))}"
                f"<p>{html.escape(t['query'] or '')}</p>"
                + _table([{"model": a["model_id"], v1[:30]: a["pos_value1"], v2[:30] + " ": a["pos_value2"],
                           "outcome": a["outcome"], "answer": (a["response"] or "")[:900]} for a in answers])
                + "</div>")

        # ------------------------------------------------------------ compliance
        comp = _dicts(con, """SELECT model_id, count(*) AS judged, round(avg(problematic::INT) * 100, 1) AS problematic_pct,
                                     round(avg(any_flag::INT) * 100, 1) AS any_judge_pct
                              FROM compliance GROUP BY model_id ORDER BY model_id""")
        if comp:
            add("<h2>Spec compliance</h2>" + _table(comp))
            fig2 = _canned(con, "figure2_noncompliance_by_bin")
            if fig2:
                add("<h3>Frequent non-compliance by disagreement bin (the paper's Figure 2)</h3>")
                chart("figure2", charts.bars(fig2, "bin", ["majority_pct", "any_judge_pct"], "% of scenarios"))
                ci = {r["sample"]: r for r in _dicts(con, "SELECT * FROM uncertainty WHERE metric = "
                                                          "'noncompliance_majority'")}
                add(_table([{**r, "majority interval (%)": _ci_of(ci.get(f"bin:{r['bin']}"), 1, 100)}
                            for r in fig2]))
            t2 = _canned(con, "table2_fold_increase")
            if t2:
                fold = {r["sample"]: r for r in _dicts(con, "SELECT * FROM uncertainty WHERE metric = 'fold_vs_random'")}
                add("<h3>All-problematic share and fold increase over random (the paper's Table 2)</h3>"
                    + _table([{**r, "fold interval": _ci_of(fold.get(r.get("sample_set")), 2)} for r in t2]))
            add("<h3>Judge agreement</h3>" + _table(_dicts(con, "SELECT metric, judge_a, judge_b, round(value, 4) "
                                                                  "AS value, items FROM judge_agreement")))

        # ------------------------------------------------------------ refusals, topics, outliers
        levels = _dicts(con, "SELECT model_id, level, any_value(label) AS label, count(*) AS n FROM refusals "
                             "GROUP BY model_id, level ORDER BY model_id, level")
        if levels:
            add("<h2>Refusals</h2>")
            chart("refusals", charts.stacked_bars([{**r, "label": f"{r['level']} {r['label']}"} for r in levels],
                                                  "model_id", "label", "level"))
            rate_ci = {r["model_id"]: r for r in _dicts(con, "SELECT * FROM uncertainty WHERE metric = 'refusal_rate'")}
            add(_table([{**r, "refusal interval (%)": _ci_of(rate_ci.get(r["model_id"]), 1, 100)}
                        for r in _canned(con, "refusal_rates")]))
        topics = _dicts(con, "SELECT topic, count(*) AS scenarios FROM topics GROUP BY topic ORDER BY scenarios DESC")
        if topics:
            add("<h2>Topics</h2>" + _table(topics))
        outl = _dicts(con, """SELECT o.model_id, count(*) FILTER (WHERE o.outlier) AS outliers,
                any_value(u.ci_low) AS lo, any_value(u.ci_high) AS hi
            FROM outliers o LEFT JOIN (SELECT * FROM uncertainty WHERE metric = 'outlier_count') u USING (model_id)
            GROUP BY o.model_id ORDER BY outliers DESC, o.model_id""")
        if outl:
            add("<h2>Outlier responses</h2>" + _table([{"model": r["model_id"], "outliers": r["outliers"],
                                                         "interval": _ci(r["lo"], r["hi"], 0)} for r in outl]))

        # ------------------------------------------------------------ lineage
        ids = list(sel.artefacts.values())
        arts = _dicts(con, "SELECT stage, artefact_id, input_ids AS parents, row_count, created_at, code_version "
                           "FROM artefacts WHERE list_contains(?, artefact_id) ORDER BY created_at", [ids])
        add("<h2>Lineage</h2>")
        if arts:
            chart("lineage", charts.lineage_dag(arts))
        add(_table(arts, ["stage", "artefact_id", "row_count", "created_at", "code_version"]))
        add("<p class='muted'>Every number above traces to the call ledger: join any view's <code>call_key</code> "
            "to <code>calls.key</code> with <code>specstress sql</code>.</p>")
    finally:
        con.close()
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>specstress report: {html.escape(str(sel.name))}"
            f"</title><style>{CSS}</style><script>{charts.vendor_js()}</script></head><body>")
    tail = (f"<script type='application/json' id='chart-specs'>{charts.script_json(page.specs)}</script>"
            f"<script>{RENDER_JS}</script></body></html>")
    return head + "\n".join(page.parts) + tail


def write_report(ctx: RunContext, ids: dict[str, str], results: list[dict[str, Any]]) -> str:
    """Render the report of this run (its artefacts are recorded before rendering)."""
    from specstress.warehouse.store import utcnow

    wh = Warehouse(ctx.warehouse_root)
    spec = ctx.spec
    done = {r["stage"]: r["artefact_id"] for r in results}
    hits = sum((r.get("calls") or {}).get("cache_hits", 0) for r in results)
    sent = sum((r.get("calls") or {}).get("sent", 0) for r in results)
    # a provisional record so that the views can select this run while it finishes
    wh.record_run({"run_id": ctx.run_id, "name": spec.run_name, "spec_path": ctx.spec_path, "spec_hash": spec.spec_hash(),
                   "overrides_json": json.dumps(spec.effective_overrides(), default=str),
                   "status": "completed", "seq": 1, "started_at": utcnow(), "finished_at": utcnow(),
                   "artefacts_json": json.dumps(done), "message": "rendering report", "cache_hits": hits,
                   "calls_sent": sent})
    return write_report_for(wh, ctx.run_id, spec.report.top_n)


def write_report_for(wh: Warehouse, run: str | None, top_n: int = 10) -> str:
    from specstress.tasks.registry import all_stages
    from specstress.warehouse.views import select_run

    all_stages()   # the registry discovered: views of stages the run did not build need their columns
    sel = select_run(wh, run)
    page = render_report(wh, sel.run_id, top_n)
    path = wh.write_text(f"reports/{sel.run_id}/report.html", page)
    wh.write_text("reports/latest.html", page)
    return path
