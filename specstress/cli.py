"""The ``specstress`` command line. Heavy modules are imported inside each command, so that
``specstress --help`` stays fast.

Exit codes: 0 ok, 1 failure, 2 invalid input (run spec, missing key), 3 over budget,
4 a provider refused us for good (bad key, unknown model), 5 calls left unfinished.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_WAREHOUSE_ENV = "SPECSTRESS_WAREHOUSE"


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")


def _parse_sets(items: list[str] | None) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            from specstress.errors import SpecError

            raise SpecError(f"--set {it}: takes key=value with a dotted key. Fix: e.g. --set pairs.count=20.")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _warehouse_from(args: argparse.Namespace) -> str:
    if getattr(args, "warehouse", None):
        return str(Path(args.warehouse).resolve()) if "://" not in args.warehouse else args.warehouse
    if getattr(args, "spec", None):
        from specstress.runspec import load_run_spec

        return load_run_spec(args.spec).warehouse_root()
    env = os.environ.get(DEFAULT_WAREHOUSE_ENV)
    if env:
        return env
    return str(_project_root() / ".specstress" / "warehouse")


# ---------------------------------------------------------------------- commands


def _views() -> Any:
    """The warehouse views, with every registered stage's artefact schema known (for empty views)."""
    from specstress.tasks.registry import all_stages
    from specstress.warehouse import views

    all_stages()
    return views


def cmd_run(args: argparse.Namespace) -> int:
    from specstress.context import RunContext
    from specstress.flows import planning

    overrides = _parse_sets(args.set) or None
    # Everything that can be checked is checked here, before Prefect starts and before any call.
    ctx = RunContext.create(args.spec_path, overrides, emulator_url=args.emulator_url, resend_errors=args.resend_errors)
    planning.preflight(ctx.spec, ctx.emulator_url or "http://emulator.invalid")
    ctx.spent_before = planning.spent_before(ctx)
    planning.check_budget(ctx, planning.plan(ctx))
    t0 = time.monotonic()
    prior = None if args.resend_errors else planning.reusable_run(ctx)
    if prior is not None:   # a rerun with nothing to do: no Prefect, no emulator, no report rebuild
        summary = planning.record_reuse(ctx, prior)
        summary["seconds"] = round(time.monotonic() - t0, 2)
    else:
        _quiet_prefect()
        from specstress.flows.stress_test import stress_test

        summary = stress_test(args.spec_path, overrides, emulator_url=args.emulator_url, quiet=args.quiet,
                              resend_errors=args.resend_errors)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    built = ", ".join(summary["built"]) or "nothing (every artefact already existed)"
    if summary.get("reused_from"):
        built += f"; Prefect not started, report of run {summary['reused_from']} reused"
    print(f"run {summary['run_id']}: {summary['status']} in {summary['seconds']}s")
    print(f"  built: {built}")
    print(f"  calls sent: {summary['calls_sent']}, answered from the ledger: {summary['cache_hits']}, "
          f"spent: ${summary['spent_usd']:.4f}")
    print(f"warehouse: {summary['warehouse']}")
    print(f"report: {summary['report']}")
    print(f'query it: .venv/bin/specstress sql "select count(*) from scenarios" --warehouse {summary["warehouse"]}')
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from specstress.context import RunContext
    from specstress.errors import MissingKeyError
    from specstress.flows import planning

    ctx = RunContext.create(args.spec_path, _parse_sets(args.set) or None)
    try:
        warnings = planning.preflight(ctx.spec)
    except MissingKeyError as exc:
        # plan never sends anything, so it works without keys; the run itself will refuse until they are set
        warnings = [str(exc).replace("nothing has been sent", "`specstress run` refuses to start until they are set")]
        warnings += planning.preflight(ctx.spec, check_keys=False)
    planning.print_warnings(warnings)
    ctx.spent_before = planning.spent_before(ctx)
    rows = planning.plan(ctx)
    if args.json:
        print(json.dumps({"rows": planning.as_dicts(rows), "remaining_usd": planning.remaining_cost(rows),
                          "totals": planning.totals(rows), "batch_mode": ctx.spec.batch.mode,
                          "cache_assumptions": planning.cache_assumptions(ctx.spec),
                          "spent_before": ctx.spent_before, "budget_usd": ctx.spec.budget_usd}, indent=2))
    else:
        print(f"plan for {ctx.spec.name} ({args.spec_path}); prices as of "
              f"{_prices_date(ctx.spec)}; batch mode {ctx.spec.batch.mode}; warehouse {ctx.warehouse_root}")
        print(planning.format_plan(rows, ctx.spec, ctx.spent_before))
    return 0


def _prices_date(spec: Any) -> str:
    from specstress.prices import PriceTable

    return PriceTable.load(spec.resolve(spec.prices)).as_of or "unknown"


def cmd_check(args: argparse.Namespace) -> int:
    from specstress.flows import planning
    from specstress.runspec import load_run_spec

    spec = load_run_spec(args.spec_path, _parse_sets(args.set) or None)
    if args.name:  # e.g. for `prefect deployment run --flow-run-name`
        print(spec.run_name)
        return 0
    planning.print_warnings(planning.preflight(spec))
    print(f"{args.spec_path}: ok (run name {spec.run_name}; {len(spec.models)} models, panel of "
          f"{len(spec.roles.panel)}, {spec.pairs.count} pairs, budget ${spec.budget_usd:.2f})")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    views = _views()

    wh = _warehouse_from(args)
    if not Path(wh).exists() and "://" not in wh:
        print(f"no warehouse at {wh}. Fix: run `specstress run specs/runs/demo.yaml` first, or pass --warehouse.",
              file=sys.stderr)
        return 2
    try:
        table = views.query(wh, args.query, args.run)
    except views.ReadOnlyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a SQL error is the user's to fix
        hint = " (`specstress views` lists the views and their columns)" if "Catalog" in type(exc).__name__ or \
            "Binder" in type(exc).__name__ else ""
        print(f"error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 2
    _print_table(table, args.format, args.max_width)
    return 0


def _print_table(table: Any, fmt: str, max_width: int) -> None:
    rows = table.to_pylist()
    cols = table.column_names
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")  # as the DuckDB CLI: shell tools read it
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
        return

    def cell(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, float):
            s = f"{v:.4g}"
        else:
            s = str(v).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    data = [[cell(r[c]) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(d[i]) for d in data]) for i, c in enumerate(cols)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print(line)
    for d in data:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(d, widths, strict=True)) + " |")
    print(line)
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def cmd_compare(args: argparse.Namespace) -> int:
    from specstress.warehouse.compare import compare
    from specstress.warehouse.views import ReadOnlyError

    views = _views()
    wh = _warehouse_from(args)
    if not Path(wh).exists() and "://" not in wh:
        print(f"no warehouse at {wh}. Fix: pass --warehouse, or run a stress test first.", file=sys.stderr)
        return 2
    sql = args.sql or (f"SELECT * FROM {args.view}" if args.view else None)
    try:
        table, runs = compare(wh, args.run_a, args.run_b, sql, views.ARTEFACT_SCHEMAS)
    except (ValueError, ReadOnlyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a SQL error is the user's to fix
        print(f"error: {type(exc).__name__}: {exc} (views: comparison, comparison_changes, spec_diff)",
              file=sys.stderr)
        return 2
    if args.format == "table":
        print(f"a = {runs['a_name']} ({runs['a']})   b = {runs['b_name']} ({runs['b']})")
    _print_table(table, args.format, args.max_width)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    views = _views()
    from specstress.warehouse.sql_files import SQL_DIR

    names = sorted(p.stem for p in (SQL_DIR / "queries").glob("*.sql"))
    if args.list or not args.name:
        for n in names:
            desc = []
            for line in (SQL_DIR / "queries" / f"{n}.sql").read_text().splitlines()[1:]:
                if not line.startswith("--") or not line.strip("- "):
                    break
                desc.append(line.lstrip("- ").strip())
            print(f"{n}\n    {' '.join(desc)}")
        return 0
    if args.name not in names:
        print(f"error: no query {args.name!r}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    sql = (SQL_DIR / "queries" / f"{args.name}.sql").read_text()
    wh = _warehouse_from(args)
    try:
        table = views.query(wh, sql, args.run)
    except Exception as exc:  # noqa: BLE001
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    _print_table(table, args.format, args.max_width)
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    views = _views()

    for name, cols in views.describe(_warehouse_from(args), args.run).items():
        print(f"{name}: " + ", ".join(f"{c} {t}" for c, t in cols))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """The warehouse's runs, newest first: name, overrides, status, calls, cost, wall time."""
    _views()
    from specstress.warehouse.run_list import list_runs

    wh = _warehouse_from(args)
    if not Path(wh).exists() and "://" not in wh:
        print(f"no warehouse at {wh}. Fix: run `specstress run specs/runs/demo.yaml` first, or pass --warehouse.",
              file=sys.stderr)
        return 2
    _print_table(list_runs(wh), args.format, args.max_width)
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    """The registered stages in DAG order: kind, inputs, and (with a spec) whether the spec enables them."""
    from specstress.tasks.registry import all_stages

    spec = None
    if args.spec_path:
        from specstress.runspec import load_run_spec

        spec = load_run_spec(args.spec_path)
    rows = []
    for st in all_stages():
        inputs = ", ".join(st.inputs_for(spec) if spec else (*st.inputs, *(f"({o})" for o in st.optional_inputs)))
        on = "" if spec is None else ("on" if st.enabled(spec) else "off")
        rows.append((st.name, st.kind, type(st).__module__.removeprefix("specstress."), inputs or "-", on))
    width = [max(len(r[i]) for r in rows + [("stage", "kind", "module", "inputs", "")]) for i in range(5)]
    head = ("stage", "kind", "module", "inputs", "spec" if spec else "")
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip())
    if spec is None:
        print("(inputs in brackets are read only under some run specs; pass a run spec to resolve them)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from specstress.tasks.report import write_report_for  # (it discovers the stage registry itself)
    from specstress.warehouse.store import Warehouse

    wh = Warehouse(_warehouse_from(args))
    if not wh.latest_runs():
        print(f"no runs in {wh.root}. Fix: run `specstress run specs/runs/demo.yaml` first.", file=sys.stderr)
        return 2
    print(write_report_for(wh, args.run))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The local, read-only results explorer (specstress/explorer): prints its URL, serves until Ctrl-C."""
    wh = _warehouse_from(args)
    if not Path(wh).exists() and "://" not in wh:
        print(f"no warehouse at {wh}. Fix: run `specstress run specs/runs/demo.yaml` first, or pass --warehouse.",
              file=sys.stderr)
        return 2
    import uvicorn

    from specstress.explorer.app import create_app

    try:
        app = create_app(wh, args.run)
    except ValueError as exc:  # an unknown --run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"specstress explorer on http://{host}:{args.port}/ (warehouse {wh}); Ctrl-C stops it", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: anyone who can reach this machine can read the results",
              file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
        pass
    print("explorer stopped", file=sys.stderr)
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from specstress.emulator.config import Faults
    from specstress.emulator.plugin import emulator_config, make_server
    from specstress.runspec import load_run_spec

    spec = load_run_spec(args.spec)
    em = emulator_config(spec)
    faults = em.faults
    if args.faults:
        faults = Faults.model_validate({**faults.model_dump(), **json.loads(args.faults)})
    if args.no_faults:
        faults = Faults()
    server = make_server(spec, faults, port=args.port, host=args.host)
    print(f"specstress emulator on {server.url} (personas: {', '.join(p.name for p in em.personas)}); "
          f"stats at {server.url}/_emulator/stats", flush=True)
    server.serve_forever()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from specstress.paper_dataset import export_paper
    from specstress.warehouse.store import Warehouse

    n = export_paper(Warehouse(_warehouse_from(args)), args.out, args.run, args.subset)
    print(f"wrote {n} rows in the paper dataset's format to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from specstress.paper_dataset import import_paper

    res = import_paper(args.source, _warehouse_from(args), args.name, args.tree_csv, args.limit,
                       judge_evaluations=args.judge_evaluations)
    judged = f" and {res['judged']} judge verdicts" if res.get("judged") else ""
    print(f"imported {res['rows']} rows ({len(res['models'])} models){judged} as run {res['run_id']}; query it "
          f"with --run {args.name}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    _quiet_prefect()
    from specstress.errors import SpecError
    from specstress.validation import parse_sweep, run_sweep, run_validation, sweep_plot, sweep_table

    if args.sweep:
        try:
            key, values = parse_sweep(args.sweep)
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results = run_sweep(args.spec_path, key, values, _parse_sets(args.set) or None, quiet=args.quiet)
        print(sweep_table(key, results))
        out = Path(args.plot or f"validate-sweep-{key}.png").resolve()
        print(f"plot: {sweep_plot(key, results, str(out))}")
        return 0
    report = run_validation(args.spec_path, _parse_sets(args.set) or None, quiet=args.quiet)
    print(report.text())
    return 0 if report.passed else 1


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="specstress", description="Stress-test model specifications: generate value "
                                "trade-off scenarios, query a model panel, find where models disagree.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a whole stress test from a run spec")
    r.add_argument("spec_path")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (dotted key)")
    r.add_argument("--emulator-url", help="use an emulator that is already running instead of starting one")
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    r.add_argument("--resend-errors", action="store_true",
                   help="send again the calls that ended permanent_error or parse_error (after fixing their cause)")
    r.add_argument("--json", action="store_true", help="print the run summary as JSON")
    r.set_defaults(func=cmd_run)

    pl = sub.add_parser("plan", help="estimate calls, tokens and dollars of the remaining work; sends nothing")
    pl.add_argument("spec_path")
    pl.add_argument("--set", action="append", metavar="KEY=VALUE")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)

    c = sub.add_parser("check", help="validate a run spec and its files; sends nothing")
    c.add_argument("spec_path")
    c.add_argument("--set", action="append", metavar="KEY=VALUE")
    c.add_argument("--name", action="store_true", help="print only the run's name (the spec's name, plus a short "
                   "hash when the overrides change it)")
    c.set_defaults(func=cmd_check)

    q = sub.add_parser("sql", help="query the warehouse (read-only)")
    q.add_argument("query")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--run", help="run id or run name (default: the latest completed run)")
    q.add_argument("--warehouse", help=f"warehouse root (default: ${DEFAULT_WAREHOUSE_ENV} or .specstress/warehouse)")
    q.add_argument("--spec", help="take the warehouse root from this run spec")
    q.add_argument("--max-width", type=int, default=60, help="truncate table cells (table format)")
    q.set_defaults(func=cmd_sql)

    cp = sub.add_parser("compare", help="compare two runs on their shared scenarios (positions, bins, refusals, "
                        "compliance; spec_diff for two model-spec versions)")
    cp.add_argument("run_a", help="run id or name (the baseline, 'a')")
    cp.add_argument("run_b", help="run id or name (the other, 'b')")
    cp.add_argument("--view", choices=("comparison", "comparison_changes", "spec_diff"),
                    help="which comparison view to print (default: comparison)")
    cp.add_argument("--sql", help="read-only SQL over the views comparison, comparison_changes and spec_diff")
    cp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    cp.add_argument("--warehouse", help=f"warehouse root (default: ${DEFAULT_WAREHOUSE_ENV} or .specstress/warehouse)")
    cp.add_argument("--spec", help="take the warehouse root from this run spec")
    cp.add_argument("--max-width", type=int, default=60, help="truncate table cells (table format)")
    cp.set_defaults(func=cmd_compare)

    nq = sub.add_parser("query", help="run a canonical analysis query (warehouse/sql/queries/NAME.sql)")
    nq.add_argument("name", nargs="?")
    nq.add_argument("--list", action="store_true", help="list the named queries")
    nq.add_argument("--format", choices=("table", "csv", "json"), default="table")
    nq.add_argument("--run")
    nq.add_argument("--warehouse")
    nq.add_argument("--spec")
    nq.add_argument("--max-width", type=int, default=60)
    nq.set_defaults(func=cmd_query)

    v = sub.add_parser("views", help="list the views and their columns")
    v.add_argument("--run")
    v.add_argument("--warehouse")
    v.add_argument("--spec")
    v.set_defaults(func=cmd_views)

    rn = sub.add_parser("runs", help="list the warehouse's runs: name, overrides, status, calls, cost, wall time")
    rn.add_argument("--warehouse", help=f"warehouse root (default: ${DEFAULT_WAREHOUSE_ENV} or .specstress/warehouse)")
    rn.add_argument("--spec", help="take the warehouse root from this run spec")
    rn.add_argument("--format", choices=("table", "csv", "json"), default="table")
    rn.add_argument("--max-width", type=int, default=60, help="truncate table cells (table format)")
    rn.set_defaults(func=cmd_runs)

    sg = sub.add_parser("stages", help="list the registered stages in DAG order, with their inputs")
    sg.add_argument("spec_path", nargs="?", help="a run spec: show which stages it enables and their inputs")
    sg.set_defaults(func=cmd_stages)

    rp = sub.add_parser("report", help="write or refresh the latest run's HTML report and print its path")
    rp.add_argument("--run")
    rp.add_argument("--warehouse")
    rp.add_argument("--spec")
    rp.set_defaults(func=cmd_report)

    sv = sub.add_parser("serve", help="explore the results in a browser: a local, read-only web app")
    sv.add_argument("--warehouse", help=f"warehouse root (default: ${DEFAULT_WAREHOUSE_ENV} or .specstress/warehouse)")
    sv.add_argument("--spec", help="take the warehouse root from this run spec")
    sv.add_argument("--run", help="run id or name shown first (default: the latest completed run)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    sv.set_defaults(func=cmd_serve)

    e = sub.add_parser("emulator", help="serve the loopback provider emulator (OpenAI, Anthropic, Gemini)")
    e.add_argument("--port", type=int, default=8765)
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--spec", default=str(_project_root() / "specs" / "runs" / "demo.yaml"),
                   help="run spec whose personas, sim knobs and faults to serve (default: the demo)")
    e.add_argument("--faults", help="JSON object overriding fault knobs, e.g. '{\"rate_429\": 0.1}'")
    e.add_argument("--no-faults", action="store_true", help="serve without any injected faults")
    e.set_defaults(func=cmd_emulator)

    ex = sub.add_parser("export", help="write a run in the released paper dataset's wide Parquet format")
    ex.add_argument("out")
    ex.add_argument("--subset", default="all", help="rank scenarios by this subset's disagreement")
    ex.add_argument("--run")
    ex.add_argument("--warehouse")
    ex.add_argument("--spec")
    ex.set_defaults(func=cmd_export)

    im = sub.add_parser("import-paper", help="import the paper's released dataset (Parquet) as a warehouse run")
    im.add_argument("source", nargs="?", help="the default config's Parquet file or glob of "
                    "jifanz/stress_testing_model_spec, or an hf:// path")
    im.add_argument("--judge-evaluations", metavar="PARQUET",
                    help="the release's judge_evaluations config (Parquet file or glob): per-judge compliance verdicts")
    im.add_argument("--name", default="paper-release")
    im.add_argument("--tree-csv", help="values_tree.csv of Values in the Wild, to attach categories to values")
    im.add_argument("--limit", type=int)
    im.add_argument("--warehouse")
    im.add_argument("--spec")
    im.set_defaults(func=cmd_import)

    va = sub.add_parser("validate", help="run the sim panel with planted weights and check the method recovers them")
    va.add_argument("spec_path", nargs="?", default=str(_project_root() / "specs" / "runs" / "validate.yaml"))
    va.add_argument("--set", action="append", metavar="KEY=VALUE")
    va.add_argument("--quiet", action="store_true")
    va.add_argument("--sweep", metavar="KEY=V1,V2,...",
                    help="one validation per value, as a table and a plot: judge_accuracy, judge_error "
                         "(off_by_one, uniform, central, swap), noise (every persona), or any dotted run-spec key")
    va.add_argument("--plot", help="where the sweep's PNG goes (default: validate-sweep-KEY.png)")
    va.set_defaults(func=cmd_validate)
    return p


#: commands whose child processes a watchdog ends when the command dies
WATCHED = ("run", "validate")


def main(argv: list[str] | None = None) -> int:
    from specstress.errors import SpecstressError

    args = build_parser().parse_args(argv)
    if argv is None and args.command in WATCHED:
        # the console script: whatever this run starts (Prefect's temporary server, Dask workers) ends with it,
        # even when it is killed with SIGKILL (specstress/watchdog.py)
        from specstress.watchdog import start_watchdog

        start_watchdog()
    try:
        return int(args.func(args) or 0)
    except SpecstressError as exc:
        from specstress.secrets import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished calls are in the ledger; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
