"""The run report: one static HTML file with plots (inline PNG) and tables, built from the views.

It always has a disagreement histogram, a model x category priority heatmap and the
highest-disagreement scenarios with every model's answer; sections for compliance, refusals,
topics and outliers appear when those stages ran.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

from specstress.context import RunContext
from specstress.warehouse.store import Warehouse
from specstress.warehouse.views import connect

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;color:#1d2230;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e3e6ee;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}td,th{border:1px solid #dde1ea;padding:.25rem .5rem;vertical-align:top}
th{background:#f3f5f9;text-align:left}.muted{color:#667}.kpi{display:inline-block;margin:.3rem 1.4rem .3rem 0}
.kpi b{display:block;font-size:1.3rem}.scenario{border:1px solid #dde1ea;border-radius:6px;padding:.7rem 1rem;margin:1rem 0}
.answer{font-size:.84rem;max-width:760px}img{max-width:100%}code{background:#f3f5f9;padding:0 .2rem}
"""


def _img(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


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


def _dicts(con: Any, sql: str) -> list[dict[str, Any]]:
    try:
        return con.sql(sql).to_arrow_table().to_pylist()
    except Exception:  # noqa: BLE001 - a view may be empty or absent for this run
        return []


def render_report(wh: Warehouse, run: str | None = None, top_n: int = 10) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    con, sel = connect(wh, run)
    try:
        run_row = _dicts(con, f"SELECT * FROM runs WHERE run_id = '{sel.run_id}'")
        info = run_row[0] if run_row else {}
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>specstress report: {html.escape(str(sel.name))}"
                 f"</title><style>{CSS}</style></head><body>",
                 f"<h1>specstress report: {html.escape(str(sel.name))}</h1>",
                 f"<p class='muted'>run <code>{html.escape(str(sel.run_id))}</code> · status {html.escape(str(sel.status))}"
                 f" · warehouse <code>{html.escape(wh.root)}</code></p>"]
        counts = _dicts(con, """SELECT (SELECT count(*) FROM value_pairs) AS pairs, (SELECT count(*) FROM scenarios) AS scenarios,
            (SELECT count(*) FROM scenarios WHERE kept) AS kept, (SELECT count(*) FROM responses) AS responses,
            (SELECT count(*) FROM classifications WHERE status = 'ok') AS placements""")
        c = counts[0] if counts else {}
        spend = _dicts(con, f"SELECT count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost, coalesce(sum(attempts - 1), 0) "
                            f"AS retries FROM call_log WHERE run_id = '{sel.run_id}'")
        s = spend[0] if spend else {}
        kpis = [("value pairs", c.get("pairs")), ("scenarios", c.get("scenarios")), ("kept", c.get("kept")),
                ("responses", c.get("responses")), ("placements", c.get("placements")),
                ("calls sent by this run", s.get("calls")), ("retries", s.get("retries")),
                ("spent by this run", f"${(s.get('cost') or 0):.4f}"), ("calls from the ledger", info.get("cache_hits"))]
        parts.append("<div>" + "".join(f"<span class='kpi'><b>{html.escape(str(v))}</b>{html.escape(k)}</span>"
                                       for k, v in kpis) + "</div>")

        # ------------------------------------------------------------ disagreement
        parts.append("<h2>Disagreement</h2><p>D = max over the two values of the population standard deviation of the "
                     "panel's positions (0-6). High disagreement: D &ge; the run's threshold.</p>")
        d_all = [r["d"] for r in _dicts(con, "SELECT d FROM disagreement WHERE subset = 'all'")]
        if d_all:
            fig, ax = plt.subplots(figsize=(7.5, 3.2))
            ax.hist(d_all, bins=np.linspace(0, 3, 31), color="#4063d8", edgecolor="white")
            ax.axvline(1.5, color="#c33", linestyle="--", linewidth=1)
            ax.set_xlabel("D (all models)")
            ax.set_ylabel("scenarios")
            ax.set_title("Disagreement across the whole panel")
            parts.append(_img(fig))
        parts.append(_table(_dicts(con, """SELECT subset, count(*) AS scenarios, round(avg(d), 3) AS mean_d,
                sum(CASE WHEN high THEN 1 ELSE 0 END) AS high, round(avg(CASE WHEN high THEN 1.0 ELSE 0 END) * 100, 1) AS high_pct
                FROM disagreement GROUP BY subset ORDER BY subset""")))
        bins = _dicts(con, """SELECT subset,
                count(*) FILTER (WHERE bin = '[0,1)') AS "[0,1)", count(*) FILTER (WHERE bin = '[1,1.5)') AS "[1,1.5)",
                count(*) FILTER (WHERE bin = '[1.5,2)') AS "[1.5,2)", count(*) FILTER (WHERE bin = '[2,2.5)') AS "[2,2.5)",
                count(*) FILTER (WHERE bin = '[2.5,3]') AS "[2.5,3]"
                FROM disagreement GROUP BY subset ORDER BY subset""")
        if bins:
            parts.append("<h3>Scenarios per disagreement bin</h3>" + _table(bins))

        # ------------------------------------------------------------ priorities heatmap
        pri = _dicts(con, "SELECT model_id, category, score, rank FROM value_priorities")
        if pri:
            parts.append("<h2>Value priorities</h2><p>Score = mean of (position &minus; 3) / 3 over every placement on a "
                         "value of the category: +1 always favours it, &minus;1 always opposes it.</p>")
            models = sorted({r["model_id"] for r in pri})
            cats = sorted({r["category"] for r in pri})
            grid = np.full((len(models), len(cats)), np.nan)
            for r in pri:
                grid[models.index(r["model_id"]), cats.index(r["category"])] = r["score"]
            fig, ax = plt.subplots(figsize=(max(8, len(cats) * 0.42), 1.2 + 0.45 * len(models)))
            im = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, rotation=70, ha="right", fontsize=7)
            ax.set_yticks(range(len(models)))
            ax.set_yticklabels(models, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.02)
            ax.set_title("Model x category priority")
            parts.append(_img(fig))
            top = _dicts(con, """SELECT model_id, string_agg(category, ' > ' ORDER BY rank) FILTER (WHERE rank <= 3) AS top_3
                                  FROM value_priorities GROUP BY model_id ORDER BY model_id""")
            parts.append(_table(top))

        # ------------------------------------------------------------ top scenarios
        parts.append(f"<h2>The {top_n} highest-disagreement scenarios</h2>")
        tops = _dicts(con, f"""SELECT d.scenario_id, d.d, s.query, s.value1, s.value2, s.nudge
            FROM disagreement d JOIN scenarios s USING (scenario_id)
            WHERE d.subset = 'all' ORDER BY d.d DESC, d.scenario_id LIMIT {int(top_n)}""")
        for t in tops:
            answers = _dicts(con, f"""SELECT r.model_id, r.outcome, r.response,
                   max(CASE WHEN c.value_slot = 1 THEN c.position END) AS pos_value1,
                   max(CASE WHEN c.value_slot = 2 THEN c.position END) AS pos_value2
                FROM responses r LEFT JOIN classifications c USING (scenario_id, model_id)
                WHERE r.scenario_id = '{t['scenario_id']}' GROUP BY r.model_id, r.outcome, r.response ORDER BY r.model_id""")
            parts.append(
                f"<div class='scenario'><b>D = {t['d']:.2f}</b> · <i>{html.escape(t['value1'])}</i> vs "
                f"<i>{html.escape(t['value2'])}</i> · nudge: {html.escape(t['nudge'])}<p>{html.escape(t['query'] or '')}</p>"
                + _table([{"model": a["model_id"], html.escape(t["value1"])[:30]: a["pos_value1"],
                           html.escape(t["value2"])[:30]: a["pos_value2"], "outcome": a["outcome"],
                           "answer": (a["response"] or "")[:900]} for a in answers]) + "</div>")

        # ------------------------------------------------------------ optional sections
        comp = _dicts(con, """SELECT model_id, count(*) AS judged, round(avg(CASE WHEN problematic THEN 1.0 ELSE 0 END)*100, 1)
                                AS problematic_pct, round(avg(CASE WHEN any_flag THEN 1.0 ELSE 0 END)*100, 1) AS any_judge_pct
                              FROM compliance GROUP BY model_id ORDER BY model_id""")
        if comp:
            parts.append("<h2>Spec compliance</h2>" + _table(comp))
            fig2 = _dicts(con, """SELECT bin, round(avg(CASE WHEN frequent_majority THEN 1.0 ELSE 0 END) * 100, 1) AS majority_pct,
                                  round(avg(CASE WHEN frequent_any THEN 1.0 ELSE 0 END) * 100, 1) AS any_judge_pct, count(*) AS scenarios
                                  FROM (SELECT scenario_id, any_value(bin) AS bin, bool_and(problematic) AS frequent_majority,
                                               bool_and(any_flag) AS frequent_any FROM compliance GROUP BY scenario_id
                                        HAVING count(*) = any_value(group_size))
                                  GROUP BY bin ORDER BY bin""")
            parts.append("<h3>Frequent non-compliance by disagreement bin</h3>" + _table(fig2))
            parts.append("<h3>Judge agreement</h3>" + _table(_dicts(con, "SELECT * FROM judge_agreement")))
        refusals = _dicts(con, """SELECT model_id, count(*) AS responses, round(avg(CASE WHEN refusal THEN 1.0 ELSE 0 END) * 100, 1)
                                  AS refusal_pct FROM refusals GROUP BY model_id ORDER BY model_id""")
        if refusals:
            parts.append("<h2>Refusals</h2>" + _table(refusals))
        topics = _dicts(con, "SELECT topic, count(*) AS scenarios FROM topics GROUP BY topic ORDER BY scenarios DESC")
        if topics:
            parts.append("<h2>Topics</h2>" + _table(topics))
        outl = _dicts(con, "SELECT model_id, count(*) FILTER (WHERE outlier) AS outliers FROM outliers GROUP BY model_id ORDER BY outliers DESC")
        if outl:
            parts.append("<h2>Outlier responses</h2>" + _table(outl))
        stages = _dicts(con, "SELECT stage, artefact_id, row_count, created_at, code_version FROM artefacts "
                             f"WHERE artefact_id IN ({','.join(repr(a) for a in sel.artefacts.values()) or repr('')}) "
                             "ORDER BY created_at")
        parts.append("<h2>Lineage</h2>" + _table(stages))
        parts.append("<p class='muted'>Every number above traces to the call ledger: join any view's <code>call_key</code> "
                     "to <code>calls.key</code> with <code>specstress sql</code>.</p></body></html>")
        return "\n".join(parts)
    finally:
        con.close()


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
