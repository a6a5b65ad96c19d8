"""Runs a user can name and find again: a run's name says what its overrides changed, `specstress
runs` lists them, a bad override is blamed on the override, the parent run's summary and the reused
stages' notes say what happened, and the terminal progress shows one bar per stage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from specstress.cli import main
from specstress.errors import SpecError
from specstress.hashing import content_hash
from specstress.runspec import EXECUTION_FIELDS, load_run_spec
from specstress.warehouse import views
from specstress.warehouse.run_list import format_overrides, list_runs
from specstress.warehouse.store import Warehouse, utcnow

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"


# ---------------------------------------------------------------------- names


def test_plain_spec_keeps_its_name():
    spec = load_run_spec(DEMO)
    assert spec.run_name == spec.name == "demo"
    assert spec.effective_overrides() == {}


def test_overrides_that_change_the_spec_add_a_short_hash():
    spec = load_run_spec(DEMO, {"pairs.count": 20})
    assert spec.run_name == f"demo-{content_hash({'pairs.count': 20})[:6]}"  # a hash of what changed
    assert spec.effective_overrides() == {"pairs.count": 20}
    again = load_run_spec(DEMO, {"pairs.count": 20})
    other = load_run_spec(DEMO, {"pairs.count": 21})
    assert again.run_name == spec.run_name  # the same overrides find the same run again
    assert other.run_name != spec.run_name and other.run_name.startswith("demo-")
    nested = load_run_spec(DEMO, {"pairs": {**load_run_spec(DEMO).pairs.model_dump(), "count": 20}})
    assert nested.run_name == spec.run_name  # the name follows the effective spec, not how it was written


def test_overrides_that_change_nothing_computed_keep_the_name(tmp_path):
    plain = load_run_spec(DEMO)
    same = load_run_spec(DEMO, {"pairs.count": plain.pairs.count})
    assert same.run_name == "demo" and same.effective_overrides() == {}
    where = load_run_spec(DEMO, {"warehouse": str(tmp_path), "budget_usd": 99, "shards.size": 7})
    assert {"warehouse", "budget_usd", "shards"} <= set(EXECUTION_FIELDS)
    assert where.run_name == "demo"  # where and how it runs, and its budget, are not what it computes
    assert set(where.effective_overrides()) == {"warehouse", "budget_usd", "shards.size"}


def test_a_named_override_is_the_name():
    spec = load_run_spec(DEMO, {"name": "wide", "pairs.count": 30})
    assert spec.run_name == "wide"


def test_list_index_overrides():
    spec = load_run_spec(DEMO, {"models.0.limits.rpm": 50})
    assert spec.models[0].limits.rpm == 50
    assert spec.effective_overrides() == {"models.0.limits.rpm": 50.0}
    assert spec.run_name.startswith("demo-")


# ---------------------------------------------------------------------- errors blame the override


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"pair.count": 20}, "override 'pair.count' (from --set): unknown field 'pair'; did you mean 'pairs'? "
                         "Fix: use 'pairs.count'."),
    ({"pairs.cuont": 20}, "override 'pairs.cuont' (from --set): unknown field 'pairs.cuont'; did you mean "
                          "'pairs.count'?"),
    ({"emulator.fautls.rate_429": 0.1}, "override 'emulator.fautls.rate_429' (from --set): unknown field "
                                        "'emulator.fautls'; did you mean 'emulator.faults'?"),
    ({"pairs.count": "many"}, "override 'pairs.count' (from --set): field `pairs.count`:"),
    ({"taxonomy.path": "nope.yaml"}, "override 'taxonomy.path' (from --set): field `taxonomy.path`: taxonomy file"),
    ({"models.99.id": "x"}, "override 'models.99.id' (from --set): 'models' has"),
    ({"zzz": 1}, "override 'zzz' (from --set): unknown field 'zzz'. Fix: use one of the fields here: name,"),
])
def test_bad_override_is_blamed_on_the_override(overrides, expected):
    msg = str(pytest.raises(SpecError, load_run_spec, DEMO, overrides).value)
    assert msg.startswith(expected), msg
    assert "demo.yaml:" not in msg  # never a line of the file the override did not come from


def test_override_source_is_named():
    src = "the overrides parameter of deployment 'demo'"
    msg = str(pytest.raises(SpecError, load_run_spec, DEMO, {"pair.count": 20}, src).value)
    assert msg.startswith(f"override 'pair.count' (from {src}): unknown field 'pair'")


def test_cli_names_the_override(capsys):
    assert main(["check", str(DEMO), "--set", "pair.count=20"]) == 2
    err = capsys.readouterr().err
    assert "override 'pair.count' (from --set): unknown field 'pair'; did you mean 'pairs'?" in err
    assert main(["check", str(DEMO), "--set", "pairs.count=20"]) == 0
    name = load_run_spec(DEMO, {"pairs.count": 20}).run_name
    assert f"run name {name}" in capsys.readouterr().out
    assert main(["check", str(DEMO), "--set", "pairs.count=20", "--name"]) == 0
    assert capsys.readouterr().out == f"{name}\n"  # for `prefect deployment run --flow-run-name`


# ---------------------------------------------------------------------- runs listing and --run NAME


def _record(wh: Warehouse, run_id: str, name: str, overrides: dict | None, minutes: int, **extra) -> None:
    import datetime as dt

    start = utcnow() - dt.timedelta(minutes=minutes)
    wh.record_run({"run_id": run_id, "name": name, "status": "completed", "seq": 1, "started_at": start,
                   "finished_at": start + dt.timedelta(seconds=75), "artefacts_json": "{}", "calls_sent": 100,
                   "cache_hits": 5, "spent_usd": 0.25,
                   "overrides_json": None if overrides is None else json.dumps(overrides), **extra})


@pytest.fixture
def three_runs(tmp_path) -> Warehouse:
    wh = Warehouse(str(tmp_path / "wh"))
    _record(wh, "demo-1", "demo", {}, minutes=30)
    _record(wh, "demo-2", "demo-3f2a1c", {"pairs.count": 20}, minutes=20)
    _record(wh, "demo-3", "demo-9b0e11", {"pairs.count": 40, "emulator.faults.rate_429": 0.1}, minutes=10,
            calls_sent=None, spent_usd=None)
    return wh


def test_run_name_finds_the_plain_demo_again(three_runs):
    assert views.select_run(three_runs, "demo").run_id == "demo-1"
    assert views.select_run(three_runs, "demo-3f2a1c").run_id == "demo-2"
    assert views.select_run(three_runs).run_id == "demo-3"  # the latest, without --run


def test_runs_listing(three_runs):
    rows = list_runs(three_runs).to_pylist()
    assert [r["name"] for r in rows] == ["demo-9b0e11", "demo-3f2a1c", "demo"]  # newest first
    assert rows[0]["overrides"] == "pairs.count=40, emulator.faults.rate_429=0.1"
    assert rows[2]["overrides"] == "(none)"
    assert rows[1]["sent"] == 100 and rows[1]["cost_usd"] == 0.25 and rows[1]["wall_s"] == 75.0
    assert rows[0]["sent"] == 0 and rows[0]["cost_usd"] == 0  # no closing numbers and no ledger rows
    assert all(r["status"] == "completed" for r in rows)


def test_runs_cli(three_runs, capsys):
    assert main(["runs", "--warehouse", three_runs.root]) == 0
    out = capsys.readouterr().out
    for text in ("demo-3f2a1c", "pairs.count=20", "completed", "wall_s", "(3 rows)"):
        assert text in out
    assert main(["runs", "--warehouse", three_runs.root, "--format", "json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} == {"demo", "demo-3f2a1c", "demo-9b0e11"}


def test_format_overrides():
    assert format_overrides(None) == ""
    assert format_overrides("{}") == "(none)"
    assert format_overrides('{"roles.panel": ["a", "b"]}') == 'roles.panel=["a","b"]'


# ---------------------------------------------------------------------- Prefect artifacts (text)


def test_summary_and_reused_markdown(tmp_path, monkeypatch):
    import datetime as dt

    from specstress.context import RunContext
    from specstress.flows.runner import reused_markdown
    from specstress.flows.stress_test import summary_markdown

    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "test-do-not-print-" + "9" * 10)   # assembled: no key-shaped literal
    ctx = RunContext.create(DEMO, {"pairs.count": 5, "warehouse": str(tmp_path)})
    results = [{"stage": "taxonomy", "status": "reused", "rows": 40, "artefact_id": "a1"},
               {"stage": "responses", "status": "built", "rows": 30, "artefact_id": "a2",
                "calls": {"calls": 30, "cache_hits": 4, "cost_usd": 0.0123}}]
    md = summary_markdown(ctx, results, "completed", 26, 4, 0.0123, "/r/report.html", 12.3)
    assert md.startswith(f"## {ctx.spec.run_name}: completed")
    for text in (ctx.run_id, str(tmp_path), "1 built, 1 reused", "calls sent: 26", "$0.0123", "`pairs.count=5`",
                 "| responses | built | 30 | 30 | 4 | $0.0123 |"):
        assert text in md, text
    assert "sk-test" not in md
    note = reused_markdown("taxonomy", results[0], {"run_id": "demo-1", "created_at": dt.datetime(2026, 1, 2, 3, 4, 5)})
    assert note.startswith("### taxonomy: reused")
    assert "`a1` (40 rows)" in note and "run `demo-1` at 2026-01-02 03:04:05 UTC" in note


# ---------------------------------------------------------------------- terminal progress


def _feed(observers, stage: str = "responses") -> None:
    from specstress.providers.observers import EngineEvent

    events = [EngineEvent("expected", stage, n=10), EngineEvent("planned", stage, n=10),
              EngineEvent("cache_hit", stage, n=3)]
    for i in range(4):
        events += [EngineEvent("call_started", stage, key=f"k{i}"), EngineEvent("cost", stage, cost_usd=0.0625),
                   EngineEvent("call_ended", stage, key=f"k{i}", outcome="ok")]
    events += [EngineEvent("retry", stage, delay_s=0.5), EngineEvent("rate_limited", stage, error_kind="rate_limit")]
    for e in events:
        for o in observers:
            o.on_event(e)


def test_rich_progress_bars_on_a_fake_terminal():
    from rich.console import Console

    from specstress.providers.observers import Counters, RichProgress

    buf = io.StringIO()
    counters = Counters()
    bars = RichProgress(counters, 10.0, Console(file=buf, force_terminal=True, width=160, color_system=None))
    _feed([counters, bars])
    _feed([counters, bars], stage="topics")
    bars.print()
    bars.close()
    out = buf.getvalue()
    for text in ("responses", "topics", "7/10", "3 cached", "1 retries", "1 429s", "$0.2500", "ETA"):
        assert text in out, (text, out[-2000:])
    assert bars.tasks.keys() == {"responses", "topics"}
    bars.print()  # closed: nothing more is drawn
    assert buf.getvalue() == out


def test_progress_choice():
    from specstress.providers.observers import Counters, ProgressLine, RichProgress, make_progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    c = Counters()
    assert make_progress(c, 1.0, quiet=True, stream=Tty()) is None
    assert isinstance(make_progress(c, 1.0, quiet=False, stream=io.StringIO()), ProgressLine)  # CI, logs
    assert isinstance(make_progress(c, 1.0, quiet=False, stream=Tty()), RichProgress)


def test_plain_line_unchanged_off_a_terminal():
    from specstress.providers.observers import Counters, make_progress

    buf = io.StringIO()
    c = Counters()
    line = make_progress(c, 10.0, quiet=False, stream=buf)
    _feed([c, line])
    line.print(force=True)
    assert buf.getvalue().startswith("[responses] 7/10 calls · 3 cached · 1 retries")


# ---------------------------------------------------------------------- through Prefect


@pytest.mark.slow
def test_prefect_run_names_and_artifacts(demo_run):
    """The finished demo run again with an override that changes only the report: every stage is
    reused, and says so in its artifact; the parent flow run carries the run's name (the demo's
    plus a hash), and publishes a summary artifact; `specstress runs` lists it with its override."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
    )

    from specstress.flows.stress_test import stress_test

    wh = demo_run["warehouse"]
    over = {"warehouse": wh, "report.top_n": 7}
    name = load_run_spec(DEMO, over).run_name
    assert name == f"demo-{content_hash({'report.top_n': 7})[:6]}"
    again = stress_test(str(DEMO), over, emulator_url=demo_run["emulator"].url, quiet=True)
    assert again["name"] == name and again["built"] == []
    with get_client(sync_client=True) as client:
        parents = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        keys = [f"{name}-summary", f"{name}-responses", "demo-summary"]
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert len(parents) == 1 and parents[0].parameters["overrides"] == over
    by_key: dict[str, list] = {}
    for a in sorted(arts, key=lambda a: a.created):
        by_key.setdefault(a.key, []).append(a.data)
    summary = by_key[f"{name}-summary"][-1]
    assert summary.startswith(f"## {name}: completed")
    assert again["run_id"] in summary and wh in summary and "`report.top_n=7`" in summary
    assert f"0 built, {len(again['stages'])} reused" in summary
    first = next(t for t in by_key["demo-summary"] if demo_run["summary"]["run_id"] in t)
    assert f"{len(demo_run['summary']['built'])} built" in first  # the demo's own run built its stages
    reused = by_key[f"{name}-responses"][-1]
    assert reused.startswith("### responses: reused") and demo_run["summary"]["run_id"] in reused
    rows = {r["run_id"]: r for r in list_runs(wh).to_pylist()}
    assert rows[again["run_id"]]["name"] == name
    assert rows[again["run_id"]]["overrides"] == f"report.top_n=7, warehouse={json.dumps(wh)}"
    assert rows[demo_run["summary"]["run_id"]]["name"] == "demo"
