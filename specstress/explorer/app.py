"""``specstress serve``: a local, read-only results explorer over the warehouse views.

Every page is server-rendered from DuckDB queries over :mod:`specstress.warehouse.views` (fixed SQL with
bound parameters; no endpoint takes SQL from the user, and every statement passes the views' read-only
check), and every page is a deep link: its filters are its query parameters. Any table on a page
downloads with ``?format=csv`` or ``?format=parquet`` (``&table=NAME`` for a page's other tables). Plots
are Vega-Lite specs rendered in the browser by the vega-embed copy shipped in ``specstress/charts/vendor``, so the
pages work without network. Model text is data: Jinja autoescapes everything, and the pages' content
security policy allows no inline script.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from specstress import charts

HERE = Path(__file__).resolve().parent
PER_PAGE = 50
MAX_DOWNLOAD_ROWS = 2_000_000
CSP = ("default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: query parameters every link keeps (the selected run)
STICKY = ("run",)


# ---------------------------------------------------------------------- data access


class Data:
    """One warehouse, one DuckDB connection per selected run (views over Parquet, opened once)."""

    def __init__(self, warehouse: str, run: str | None = None) -> None:
        from specstress.tasks.registry import all_stages  # the stages' artefact schemas, for empty views
        from specstress.warehouse import views

        all_stages()
        self.views = views
        self.warehouse = warehouse
        self.default_run = run
        self._cons: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()
        self._matches: OrderedDict[tuple[Any, ...], pa.Array] = OrderedDict()
        self.connection(run)  # fail early on a wrong --run

    def connection(self, run: str | None) -> tuple[duckdb.DuckDBPyConnection, Any]:
        run = run or self.default_run
        with self._lock:
            if run not in self._cons:
                self._cons[run] = self.views.connect(self.warehouse, run)
            return self._cons[run]

    def sql(self, run: str | None, sql: str, params: list[Any] | None = None) -> pa.Table:
        con, _ = self.connection(run)
        # one query at a time per connection (requests run on worker threads; a cursor would not see the
        # empty views' Arrow tables, which are registered on the connection itself)
        with self._query_lock:
            self.views.check_read_only(con, sql)
            return con.sql(sql, params=params or None).to_arrow_table()

    def matching(self, run: str | None, sql: str, params: list[Any]) -> pa.Array:
        """The ordered scenario ids a browser filter selects, computed once per (run, filter) and kept (LRU, 64
        filters): the page and the match count come from one scan, and paging through a filter costs no scan."""
        key = (run or self.default_run, sql, repr(params))
        with self._lock:
            if key in self._matches:
                self._matches.move_to_end(key)
                return self._matches[key]
        ids = self.sql(run, sql, params).column(0).combine_chunks()
        with self._lock:
            self._matches[key] = ids
            while len(self._matches) > 64:
                self._matches.popitem(last=False)
        return ids

    def canned(self, run: str | None, name: str) -> pa.Table:
        from specstress.warehouse.sql_files import SQL_DIR

        return self.sql(run, (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- page model


@dataclass
class Table:
    name: str
    title: str
    data: pa.Table
    links: dict[str, str] = field(default_factory=dict)   # column -> route prefix (value appended)
    note: str = ""
    error: str = ""
    run: str | None = None   # the selected run, carried by every link

    def href(self, col: str, v: Any) -> str | None:
        if col not in self.links or v in (None, ""):
            return None
        url = self.links[col] + _quote(v)
        if self.run and not self.links[col].endswith("run="):
            url += ("&" if "?" in url else "?") + urlencode({"run": self.run})
        return url

    @property
    def columns(self) -> list[str]:
        return self.data.column_names

    def rows(self) -> list[list[tuple[str, str | None]]]:
        cols = self.columns
        out = []
        for r in self.data.to_pylist():
            row = []
            for c in cols:
                row.append((_cell(r[c]), self.href(c, r[c])))
            out.append(row)
        return out


def _quote(v: Any) -> str:
    from urllib.parse import quote

    return quote(str(v), safe="")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


class Page:
    def __init__(self, request: Request, data: Data) -> None:
        self.request = request
        self.data = data
        self.run = request.query_params.get("run") or None
        self.tables: dict[str, Table] = {}
        self.charts: dict[str, dict[str, Any]] = {}
        self.ctx: dict[str, Any] = {}

    def q(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        return self.data.sql(self.run, sql, params)

    def table(self, name: str, title: str, sql: str, params: list[Any] | None = None, **kw: Any) -> Table:
        try:
            t = Table(name, title, self.q(sql, params), **kw)
        except duckdb.Error as exc:  # a view this warehouse cannot answer: say so, keep the page
            t = Table(name, title, pa.table({}), error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}", **kw)
        return self.add(t)

    def add(self, t: Table) -> Table:
        t.run = self.run
        self.tables[t.name] = t
        return t

    def param(self, name: str, default: str = "") -> str:
        return (self.request.query_params.get(name) or default).strip()

    def int_param(self, name: str, default: int) -> int:
        try:
            return max(1, int(self.param(name, str(default))))
        except ValueError:
            return default


def _rows(t: pa.Table) -> list[dict[str, Any]]:
    return t.to_pylist()


# ---------------------------------------------------------------------- helpers for templates


def make_url(request: Request, path: str | None = None, **params: Any) -> str:
    """``path`` (default: this page) with this page's parameters, ``params`` replacing them (None drops one).
    Without a path only the sticky parameters (the run) are kept."""
    if path is None:
        base = dict(request.query_params)
        path = request.url.path
    else:
        base = {k: v for k, v in request.query_params.items() if k in STICKY}
    base.update({k: v for k, v in params.items()})
    q = {k: v for k, v in base.items() if v not in (None, "")}
    return path + ("?" + urlencode(q) if q else "")


# ---------------------------------------------------------------------- pages


def overview(p: Page) -> str:
    con, sel = p.data.connection(p.run)
    p.ctx["selection"] = sel
    ids = list(sel.artefacts.values())
    p.table("runs", "Runs in this warehouse (newest first)",
            "SELECT run_id, name, status, started_at, finished_at, "
            "round(epoch(finished_at) - epoch(started_at), 1) AS wall_s, calls_sent, cache_hits, "
            "round(spent_usd, 4) AS spent_usd, overrides_json, message FROM runs ORDER BY started_at DESC",
            links={"run_id": "/?run="})
    p.table("artefacts", "Artefacts of this run and their parents (lineage)",
            "SELECT stage, artefact_id, input_ids AS parents, row_count, part_count, run_id AS built_by_run, "
            "created_at FROM artefacts WHERE list_contains(?, artefact_id) ORDER BY created_at, stage", [ids])
    arts = p.tables["artefacts"].data
    if arts.num_rows:
        p.charts["lineage"] = charts.lineage_dag(_rows(arts))
    built_by = "(SELECT DISTINCT run_id FROM artefacts WHERE list_contains(?, artefact_id))"
    p.table("stage_calls", "Calls per stage and model (the runs that built this run's artefacts)",
            f"SELECT stage, model_id, provider, count(*) AS calls, count(*) FILTER (WHERE final AND outcome = 'ok') "
            f"AS ok, sum(greatest(attempts - 1, 0)) AS retries, round(sum(cost_usd), 4) AS cost_usd, "
            f"round(epoch(max(finished_at)) - epoch(min(started_at)), 1) AS wall_s "
            f"FROM calls WHERE run_id IN {built_by} GROUP BY ALL ORDER BY stage, model_id", [ids])
    p.table("roles", "Models and their roles",
            "SELECT 'panel' AS role, model_id, count(*) AS rows FROM responses GROUP BY ALL "
            "UNION ALL SELECT 'matcher', judge, count(*) FROM classifications WHERE judge IS NOT NULL GROUP BY ALL "
            "UNION ALL SELECT 'further matcher', judge, count(*) FROM matcher_panel GROUP BY ALL "
            "UNION ALL SELECT 'compliance judge', judge, count(*) FROM compliance_judgments GROUP BY ALL "
            "UNION ALL SELECT 'scenario generator', generator, count(*) FROM scenarios WHERE generator IS NOT NULL "
            "GROUP BY ALL ORDER BY role, model_id")
    p.table("stage_counts", "Rows per stage view",
            "SELECT 'scenarios' AS view, count(*) AS rows FROM scenarios UNION ALL SELECT 'responses', count(*) "
            "FROM responses UNION ALL SELECT 'classifications', count(*) FROM classifications UNION ALL "
            "SELECT 'disagreement', count(*) FROM disagreement UNION ALL SELECT 'refusals', count(*) FROM refusals "
            "UNION ALL SELECT 'compliance_judgments', count(*) FROM compliance_judgments UNION ALL "
            "SELECT 'outliers', count(*) FILTER (WHERE outlier) FROM outliers")
    return "overview.html"


def disagreement(p: Page) -> str:
    hist = p.table("d", "D per scenario and subset", "SELECT subset, scenario_id, d, bin FROM disagreement "
                   "ORDER BY subset, d DESC", links={"scenario_id": "/scenario/"})
    p.table("bins", "The five D bins: scenarios per subset and bin",
            "SELECT subset, bin, count(*) AS scenarios, round(min(d), 3) AS min_d, round(max(d), 3) AS max_d "
            "FROM disagreement GROUP BY ALL ORDER BY subset, bin")
    if hist.data.num_rows:
        p.charts["hist"] = charts.d_histogram(_rows(hist.data.select(["subset", "d"])))
    p.table("stats", "Mean D and high-disagreement share per subset (with intervals when the run has them)",
            "SELECT d.subset, count(*) AS scenarios, round(avg(d.d), 3) AS mean_d, "
            "round(avg(d.high::INT), 3) AS high_share, any_value(u.ci_low) AS mean_d_ci_low, "
            "any_value(u.ci_high) AS mean_d_ci_high FROM disagreement d LEFT JOIN "
            "(SELECT * FROM uncertainty WHERE metric = 'mean_d') u USING (subset) GROUP BY d.subset ORDER BY d.subset")
    try:
        agree = p.add(Table("agreement", "Model x model agreement: share of scenarios where both models' positions "
                            "are within 1 on both values (query model_agreement)",
                            p.data.canned(p.run, "model_agreement")))
    except duckdb.Error as exc:
        agree = p.add(Table("agreement", "Model x model agreement", pa.table({}), error=str(exc).splitlines()[0]))
    if agree.data.num_rows:
        p.charts["agreement"] = charts.heatmap(_rows(agree.data), "model_a", "model_b", "agreement",
                                               "share within 1", domain=[0, 1])
    return "disagreement.html"


def values(p: Page) -> str:
    pri = p.table("priorities", "Value priorities: model x level-2 category",
                  "SELECT model_id, category, top_category, n, round(mean_position, 3) AS mean_position, "
                  "round(score, 3) AS score, round(win_rate, 3) AS win_rate, rank FROM value_priorities "
                  "ORDER BY model_id, rank")
    if pri.data.num_rows:
        p.charts["heatmap"] = charts.heatmap(_rows(pri.data), "model_id", "category", "score", "score")
    k = p.int_param("k", 5)
    p.ctx["k"] = k
    strengths = ("SELECT s.model_id, s.category, round(s.strength, 3) AS strength, round(s.ci_low, 3) AS ci_low, "
                 "round(s.ci_high, 3) AS ci_high, s.rank, s.rank_low, s.rank_high, u.ci_low AS rank_ci_low, "
                 "u.ci_high AS rank_ci_high, count(*) OVER (PARTITION BY s.model_id) AS categories "
                 "FROM value_strengths s LEFT JOIN (SELECT model_id, category, ci_low, ci_high FROM uncertainty "
                 "WHERE metric = 'category_rank') u USING (model_id, category)")
    source = "value_strengths, with intervals"
    if not p.q("SELECT count(*) AS n FROM value_strengths").column("n")[0].as_py():  # the run has no strengths:
        source = "value_priorities"                                                # rank by priority score
        strengths = ("SELECT v.model_id, v.category, round(v.score, 3) AS score, v.rank, u.ci_low AS rank_ci_low, "
                     "u.ci_high AS rank_ci_high, count(*) OVER (PARTITION BY v.model_id) AS categories "
                     "FROM value_priorities v LEFT JOIN (SELECT model_id, category, ci_low, ci_high FROM uncertainty "
                     "WHERE metric = 'category_rank') u USING (model_id, category)")
    p.table("top", f"Top {k} categories per model ({source})",
            f"SELECT * EXCLUDE (categories) FROM ({strengths}) WHERE rank <= ? ORDER BY model_id, rank", [k])
    p.table("bottom", f"Bottom {k} categories per model",
            f"SELECT * EXCLUDE (categories) FROM ({strengths}) WHERE rank > categories - ? ORDER BY model_id, rank",
            [k])
    return "values.html"


def refusals(p: Page) -> str:
    per = p.table("levels", "Refusal levels per model",
                  "SELECT model_id, level, any_value(label) AS label, count(*) AS n FROM refusals "
                  "GROUP BY model_id, level ORDER BY model_id, level")
    if per.data.num_rows:
        rows = [{**r, "label": f"{r['level']} {r['label']}"} for r in _rows(per.data)]
        p.charts["models"] = charts.stacked_bars(rows, "model_id", "label", "level")
    top = p.table("topics", "Refusal levels per topic",
                  "SELECT t.topic, r.level, any_value(r.label) AS label, count(*) AS n FROM refusals r "
                  "JOIN topics t USING (scenario_id) GROUP BY t.topic, r.level ORDER BY t.topic, r.level")
    if top.data.num_rows:
        rows = [{**r, "label": f"{r['level']} {r['label']}"} for r in _rows(top.data)]
        p.charts["topics"] = charts.stacked_bars(rows, "topic", "label", "level")
    try:
        p.add(Table("rates", "Refusal rate per model (query refusal_rates)", p.data.canned(p.run, "refusal_rates")))
    except duckdb.Error as exc:
        p.add(Table("rates", "Refusal rate per model", pa.table({}), error=str(exc).splitlines()[0]))
    return "refusals.html"


def compliance(p: Page) -> str:
    for name, title, q in (("figure2", "Figure 2: frequent non-compliance per D bin", "figure2_noncompliance_by_bin"),
                           ("table2", "Table 2: all-problematic share and fold increase over random",
                            "table2_fold_increase")):
        try:
            p.add(Table(name, title + f" (query {q})", p.data.canned(p.run, q)))
        except duckdb.Error as exc:
            p.add(Table(name, title, pa.table({}), error=str(exc).splitlines()[0]))
    fig = p.tables["figure2"].data
    if fig.num_rows:
        p.charts["figure2"] = charts.bars(_rows(fig), "bin", ["majority_pct", "any_judge_pct"], "% of scenarios")
    p.table("judges", "Judge agreement", "SELECT metric, judge_a, judge_b, round(value, 4) AS value, items "
            "FROM judge_agreement ORDER BY metric, judge_a, judge_b")
    p.table("verdicts", "Verdicts per judge", "SELECT judge, verdict, count(*) AS n FROM compliance_judgments "
            "GROUP BY ALL ORDER BY judge, verdict")
    return "compliance.html"


def outliers(p: Page) -> str:
    model = p.param("model")
    p.ctx["model"] = model
    try:
        by = p.add(Table("by_model", "Outliers per model (query outliers_by_model)",
                         p.data.canned(p.run, "outliers_by_model"), links={"model_id": "/outliers?model="}))
    except duckdb.Error as exc:
        by = p.add(Table("by_model", "Outliers per model", pa.table({}), error=str(exc).splitlines()[0]))
    p.ctx["models"] = [r["model_id"] for r in _rows(by.data)] if by.data.num_rows else []
    where, params = ("AND o.model_id = ?", [model]) if model else ("", [])
    p.table("scenarios", f"Outlier responses{' of ' + model if model else ''}, by D (whole panel)",
            "SELECT o.model_id, o.scenario_id, s.value1, o.position_value1, s.value2, o.position_value2, "
            "o.apart_value1, o.apart_value2, round(d.d, 3) AS d FROM outliers o JOIN scenarios s USING (scenario_id) "
            f"LEFT JOIN (SELECT * FROM disagreement WHERE subset = 'all') d USING (scenario_id) WHERE o.outlier {where} "
            "ORDER BY d.d DESC NULLS LAST, o.model_id, o.scenario_id LIMIT 1000", params,
            links={"scenario_id": "/scenario/"})
    return "outliers.html"


BROWSER_FILTERS = ("value", "category", "topic", "subset", "bin", "model", "level", "q", "sort")


def _browser_where(p: Page) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    if v := p.param("value"):
        conds.append("(lower(s.value1) = lower(?) OR lower(s.value2) = lower(?))")
        params += [v, v]
    if c := p.param("category"):
        conds.append("(lower(vp.category1) = lower(?) OR lower(vp.category2) = lower(?))")
        params += [c, c]
    if t := p.param("topic"):
        conds.append("s.scenario_id IN (SELECT scenario_id FROM topics WHERE topic = ?)")
        params.append(t)
    if b := p.param("bin"):
        conds.append("d.bin = ?")
        params.append(b)
    model, level = p.param("model"), p.param("level")
    if level:
        try:
            lv = int(level)
        except ValueError:
            raise HTTPException(400, "level takes a refusal level, 0 to 6") from None
        conds.append("s.scenario_id IN (SELECT scenario_id FROM refusals WHERE level = ?"
                     + (" AND model_id = ?)" if model else ")"))
        params += [lv, model] if model else [lv]
    elif model:
        conds.append("s.scenario_id IN (SELECT scenario_id FROM responses WHERE model_id = ?)")
        params.append(model)
    if q := p.param("q"):   # case-insensitive substring; ILIKE scans about 1.5x faster than lower() + contains()
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append("(s.query ILIKE ? ESCAPE '\\' OR s.scenario_id IN (SELECT scenario_id FROM responses "
                     "WHERE response ILIKE ? ESCAPE '\\'))")
        params += [like, like]
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def scenarios(p: Page) -> str:
    subset = p.param("subset", "all")
    where, params = _browser_where(p)
    order = "d.d ASC NULLS LAST" if p.param("sort") == "d_asc" else "d.d DESC NULLS LAST"
    base = ("FROM scenarios s LEFT JOIN value_pairs vp USING (pair_id) "
            "LEFT JOIN (SELECT scenario_id, d, bin FROM disagreement WHERE subset = ?) d USING (scenario_id)")
    page_no = p.int_param("page", 1)
    per_page = min(p.int_param("per_page", PER_PAGE), 500)
    downloading = p.param("format") in ("csv", "parquet")
    columns = ("s.scenario_id, round(d.d, 3) AS d, d.bin, s.value1, s.value2, vp.category1, vp.category2, "
               + ("s.query" if downloading else "left(s.query, 240) AS query"))
    if downloading:
        p.table("scenarios", "Scenarios", f"SELECT {columns} {base}{where} ORDER BY {order}, s.scenario_id "
                f"LIMIT {MAX_DOWNLOAD_ROWS}", [subset, *params], links={"scenario_id": "/scenario/"})
        total = 0
    else:
        # one scan finds the filter's ordered ids (kept for the next pages); the page is then a lookup by id
        ids = p.data.matching(p.run, f"SELECT s.scenario_id {base}{where} ORDER BY {order}, s.scenario_id",
                              [subset, *params])
        total = len(ids)
        page_ids = ids.slice((page_no - 1) * per_page, per_page).to_pylist()
        p.table("scenarios", "Scenarios", f"SELECT {columns} {base} WHERE s.scenario_id IN (SELECT unnest(?)) "
                f"ORDER BY {order}, s.scenario_id", [subset, page_ids], links={"scenario_id": "/scenario/"})
    pages = max(1, math.ceil(total / per_page))
    opts: dict[str, list[str]] = {}
    for name, sql in (("subset", "SELECT DISTINCT subset AS v FROM disagreement ORDER BY 1"),
                      ("bin", "SELECT DISTINCT bin AS v FROM disagreement WHERE bin IS NOT NULL ORDER BY 1"),
                      ("topic", "SELECT DISTINCT topic AS v FROM topics ORDER BY 1"),
                      ("model", "SELECT DISTINCT model_id AS v FROM responses ORDER BY 1"),
                      ("category", "SELECT DISTINCT category AS v FROM (SELECT category1 AS category FROM value_pairs "
                                   "UNION SELECT category2 FROM value_pairs) WHERE category IS NOT NULL ORDER BY 1")):
        try:   # a run's option lists never change: one scan each per run (kept with the filters' ids)
            opts[name] = p.data.matching(p.run, sql, []).to_pylist() if not downloading else []
        except duckdb.Error:
            opts[name] = []
    p.ctx.update(total=total, page_no=page_no, pages=pages, per_page=per_page, opts=opts, subset=subset,
                 filters={k: p.param(k) for k in BROWSER_FILTERS})
    return "scenarios.html"


def scenario(p: Page) -> str:
    sid = p.request.path_params["scenario_id"]
    sc = p.q("SELECT s.*, vp.category1, vp.category2, vp.top_category1, vp.top_category2, vp.value1_description, "
             "vp.value2_description FROM scenarios s LEFT JOIN value_pairs vp USING (pair_id) WHERE s.scenario_id = ?",
             [sid]).to_pylist()
    if not sc:
        raise HTTPException(404, f"no scenario {sid} in this run")
    s = sc[0]
    p.ctx["s"] = s
    p.table("disagreement", "Disagreement (D) per subset", "SELECT subset, n_models, round(std_value1, 3) AS "
            "std_value1, round(std_value2, 3) AS std_value2, round(d, 3) AS d, bin, high FROM disagreement "
            "WHERE scenario_id = ? ORDER BY subset", [sid])
    answers = p.q("SELECT r.model_id, r.outcome, r.response, r.error, r.call_key, f.level AS refusal_level, "
                  "f.label AS refusal_label, o.outlier FROM responses r LEFT JOIN refusals f USING (scenario_id, "
                  "model_id) LEFT JOIN outliers o USING (scenario_id, model_id) WHERE r.scenario_id = ? "
                  "ORDER BY r.model_id", [sid]).to_pylist()
    placements = p.table("placements", "Placements (the matcher's positions, confidence and reasoning)",
                         "SELECT model_id, value_slot, value, position, confidence, reasoning, status, judge, call_key "
                         "FROM classifications WHERE scenario_id = ? ORDER BY value_slot, model_id", [sid],
                         links={"call_key": "/call/"})
    by_model: dict[str, dict[int, dict[str, Any]]] = {}
    for r in _rows(placements.data):
        by_model.setdefault(r["model_id"], {})[r["value_slot"]] = r
    p.ctx.update(answers=answers, by_model=by_model)
    spectra = p.table("spectra", "The two values' spectra", "SELECT value_slot, value, position, label, strategy, "
                      "status, call_key FROM spectra WHERE pair_id = ? ORDER BY value_slot, position", [s["pair_id"]],
                      links={"call_key": "/call/"})
    labels = {(r["value_slot"], r["position"]): r["label"] for r in _rows(spectra.data)}
    strip = [{"value": f"{r['value_slot']}: {r['value']}", "model_id": r["model_id"], "position": r["position"],
              "label": labels.get((r["value_slot"], r["position"]), "")}
             for r in _rows(placements.data) if r["position"] is not None]
    if strip:
        p.charts["strip"] = charts.position_strip(strip)
    p.table("judgments", "Compliance judges' verdicts", "SELECT model_id, judge, verdict, reasoning, sections, status, "
            "call_key FROM compliance_judgments WHERE scenario_id = ? ORDER BY model_id, judge", [sid],
            links={"call_key": "/call/"})
    p.table("topics", "Topics", "SELECT topic, status, reasoning, call_key FROM topics WHERE scenario_id = ?", [sid],
            links={"call_key": "/call/"})
    p.table("refusals", "Refusal ladder", "SELECT model_id, level, label, reasoning, source, call_key FROM refusals "
            "WHERE scenario_id = ? ORDER BY model_id", [sid], links={"call_key": "/call/"})
    return "scenario.html"


def call(p: Page) -> str:
    key = p.request.path_params["key"]
    rows = p.q("SELECT * FROM calls WHERE key = ? ORDER BY finished_at DESC NULLS LAST", [key]).to_pylist()
    if not rows:
        raise HTTPException(404, f"no call {key} in the ledger")
    c = rows[0]

    def pretty(s: Any) -> str:
        if not s:
            return ""
        try:
            return json.dumps(json.loads(s), indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(s)

    p.ctx.update(c=c, request_json=pretty(c.get("request_json")), parsed_json=pretty(c.get("parsed_json")),
                 meta={k: v for k, v in c.items() if k not in ("request_json", "parsed_json", "text")})
    p.table("log", "Ledger entries for this key (call_log)", "SELECT * FROM call_log WHERE key = ? "
            "ORDER BY started_at", [key])
    return "call.html"


def compare(p: Page) -> str:
    models = [r["model_id"] for r in _rows(p.q("SELECT DISTINCT model_id FROM responses ORDER BY 1"))]
    a, b = p.param("a", models[0] if models else ""), p.param("b", models[1] if len(models) > 1 else "")
    p.ctx.update(models=models, a=a, b=b)
    page_no = p.int_param("page", 1)
    downloading = p.param("format") in ("csv", "parquet")
    limit = f"LIMIT {MAX_DOWNLOAD_ROWS}" if downloading else f"LIMIT {PER_PAGE} OFFSET {(page_no - 1) * PER_PAGE}"
    sql = ("WITH c AS (SELECT scenario_id, model_id, value_slot, position FROM classifications WHERE status = 'ok'), "
           "w AS (SELECT scenario_id, max(position) FILTER (WHERE model_id = ? AND value_slot = 1) AS a_v1, "
           "max(position) FILTER (WHERE model_id = ? AND value_slot = 2) AS a_v2, "
           "max(position) FILTER (WHERE model_id = ? AND value_slot = 1) AS b_v1, "
           "max(position) FILTER (WHERE model_id = ? AND value_slot = 2) AS b_v2 FROM c GROUP BY scenario_id) "
           "SELECT w.scenario_id, s.value1, w.a_v1, w.b_v1, s.value2, w.a_v2, w.b_v2, "
           "abs(w.a_v1 - w.b_v1) + abs(w.a_v2 - w.b_v2) AS difference FROM w JOIN scenarios s USING (scenario_id) "
           "WHERE w.a_v1 IS NOT NULL AND w.b_v1 IS NOT NULL "
           f"ORDER BY difference DESC NULLS LAST, w.scenario_id {limit}")
    t = p.table("differences", f"Where {a} (a) and {b} (b) differ most (sum of position differences)", sql,
                [a, a, b, b], links={"scenario_id": "/scenario/"})
    top = [r["scenario_id"] for r in _rows(t.data)[:10]]
    side: list[dict[str, Any]] = []
    if top and not downloading:
        ans = p.q("SELECT r.scenario_id, r.model_id, r.response, s.query FROM responses r JOIN scenarios s "
                  "USING (scenario_id) WHERE list_contains(?, r.scenario_id) AND r.model_id IN (?, ?)",
                  [top, a, b]).to_pylist()
        by = {(r["scenario_id"], r["model_id"]): r for r in ans}
        diff = {r["scenario_id"]: r for r in _rows(t.data)}
        for sid in top:
            ra, rb = by.get((sid, a)), by.get((sid, b))
            side.append({"scenario_id": sid, "row": diff[sid], "query": (ra or rb or {}).get("query", ""),
                         "a": (ra or {}).get("response", ""), "b": (rb or {}).get("response", "")})
    p.ctx.update(side=side, page_no=page_no)
    return "compare.html"


PAGES = {
    "overview": ("/", "Run", overview),
    "disagreement": ("/disagreement", "Disagreement", disagreement),
    "values": ("/values", "Values", values),
    "refusals": ("/refusals", "Refusals", refusals),
    "compliance": ("/compliance", "Compliance", compliance),
    "outliers": ("/outliers", "Outliers", outliers),
    "scenarios": ("/scenarios", "Scenarios", scenarios),
    "compare": ("/compare", "Compare models", compare),
}


# ---------------------------------------------------------------------- downloads


def download(t: Table, fmt: str) -> Response:
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(t.data, buf)
        return Response(buf.getvalue(), media_type="application/vnd.apache.parquet",
                        headers={"Content-Disposition": f'attachment; filename="{t.name}.parquet"'})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(t.columns)
    for r in t.data.to_pylist():
        w.writerow([_csv_cell(r[c]) for c in t.columns])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{t.name}.csv"'})


def _csv_cell(v: Any) -> Any:
    if isinstance(v, list | dict):
        return json.dumps(v, default=str, ensure_ascii=False)
    return v


# ---------------------------------------------------------------------- app


def create_app(warehouse: str, run: str | None = None) -> Starlette:
    """The explorer over ``warehouse``; ``run`` (id or name) is the default run, else the latest completed one.
    Any page takes ``?run=`` to show another run."""
    data = Data(str(warehouse), run)
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
    templates = Jinja2Templates(env=env)

    def endpoint(name: str, fn: Any) -> Any:
        def handle(request: Request) -> Response:
            page = Page(request, data)
            try:
                _, sel = data.connection(page.run)
            except ValueError as exc:  # an unknown ?run=
                raise HTTPException(404, str(exc)) from None
            template = fn(page)
            fmt = request.query_params.get("format")
            if fmt:
                if fmt not in ("csv", "parquet"):
                    raise HTTPException(400, "format takes csv or parquet")
                want = request.query_params.get("table") or next(iter(page.tables), None)
                if want not in page.tables:
                    raise HTTPException(404, f"no table {want!r} on this page; tables: {', '.join(page.tables)}")
                return download(page.tables[want], fmt)
            ctx = {"page": name, "nav": PAGES, "tables": page.tables, "charts": page.charts, "sel": sel,
                   "warehouse": data.warehouse, "url": lambda path=None, **kw: make_url(request, path, **kw),
                   **page.ctx}
            resp = templates.TemplateResponse(request, template, ctx)
            resp.headers["Content-Security-Policy"] = CSP
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            return resp

        return handle

    routes = [Route(path, endpoint(name, fn), methods=["GET", "HEAD"], name=name)
              for name, (path, _, fn) in PAGES.items()]
    routes += [Route("/scenario/{scenario_id:path}", endpoint("scenario", scenario), methods=["GET", "HEAD"]),
               Route("/call/{key:path}", endpoint("call", call), methods=["GET", "HEAD"]),
               Mount("/static/vendor", StaticFiles(directory=str(charts.VENDOR_DIR)), name="vendor"),
               Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes)
    app.state.data = data
    return app
