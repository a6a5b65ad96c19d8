"""The demo end to end through Prefect: every view answers, the planted weights come back,
and a rerun sends nothing and builds nothing (proved with the emulator's own counters)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from specstress.warehouse import views
from specstress.warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"
pytestmark = pytest.mark.slow  # the whole demo through Prefect (about 2 min)
SKELETON_VIEWS = ["value_taxonomy", "value_pairs", "scenarios", "responses", "spectra", "classifications",
                  "disagreement", "value_priorities", "calls", "artefacts", "runs"]


def test_demo_completes(demo_run):
    s = demo_run["summary"]
    assert s["status"] == "completed"
    assert Path(s["report"]).exists()
    assert len(s["built"]) >= 11
    assert s["calls_sent"] > 1000


@pytest.mark.parametrize("view", SKELETON_VIEWS)
def test_every_view_answers_with_rows(demo_run, view):
    n = views.query(demo_run["warehouse"], f"select count(*) as n from {view}").to_pylist()[0]["n"]
    assert n > 0, view


def test_classifications_grain_and_statuses(demo_run):
    wh = demo_run["warehouse"]
    rows = views.query(wh, """select count(*) as n, count(distinct scenario_id || model_id || value_slot) as k,
        sum(case when status = 'ok' then 1 else 0 end) as ok,
        sum(case when status <> 'ok' and position is not null then 1 else 0 end) as bad
        from classifications""").to_pylist()[0]
    assert rows["n"] == rows["k"]          # one row per scenario x model x value slot
    assert rows["ok"] > 0.9 * rows["n"]
    assert rows["bad"] == 0                # a failed placement never carries a score
    kept = views.query(wh, "select count(*) as n from scenarios where kept").to_pylist()[0]["n"]
    panel = 6
    assert rows["n"] == kept * panel * 2


def test_planted_heaviest_category_ranks_first(demo_run):
    from specstress.emulator.config import emulator_config
    from specstress.runspec import load_run_spec

    spec = load_run_spec(DEMO)
    top = {r["model_id"]: r["category"] for r in views.query(
        demo_run["warehouse"], "select model_id, category from value_priorities where rank = 1").to_pylist()}
    for mid in spec.roles.panel:
        persona = emulator_config(spec).persona(spec.model(mid).model)
        weights = persona.category_weights()
        heaviest = max(weights, key=weights.get)
        assert top[mid] == heaviest, (mid, top[mid], heaviest)


def test_every_number_traces_to_calls(demo_run):
    wh = demo_run["warehouse"]
    orphan = views.query(wh, """select count(*) as n from responses r left join calls c on c.key = r.call_key
                                where c.key is null""").to_pylist()[0]["n"]
    assert orphan == 0
    served = views.query(wh, "select count(*) as n from calls where served_model like '%-emu%'").to_pylist()[0]["n"]
    assert served > 0  # the model id that actually served each call is recorded


def test_rerun_sends_nothing_and_builds_nothing(demo_run):
    from specstress.flows.stress_test import stress_test

    emu = demo_run["emulator"]
    wh = Warehouse(demo_run["warehouse"])
    before_requests = emu.stats()["requests"]
    lineage_before = wh.lineage().num_rows
    summary = stress_test(str(DEMO), {"warehouse": demo_run["warehouse"]}, emulator_url=emu.url, quiet=True)
    assert summary["status"] == "completed"
    assert summary["built"] == []
    assert summary["calls_sent"] == 0
    assert emu.stats()["requests"] == before_requests
    assert wh.lineage().num_rows == lineage_before
    assert emu.stats()["max_completions_per_key"] == 1  # nothing was ever paid twice


def test_sql_cli_formats(demo_run):
    base = [sys.executable, "-m", "specstress", "sql", "--warehouse", demo_run["warehouse"]]
    r = subprocess.run(base + ["select count(*) as n from scenarios"], capture_output=True, text=True, check=True)
    assert "| n" in r.stdout and "(1 row)" in r.stdout
    r = subprocess.run(base + ["select model_id from responses limit 2", "--format", "json"], capture_output=True,
                       text=True, check=True)
    assert len(json.loads(r.stdout)) == 2
    r = subprocess.run(base + ["select 1 as a, 2 as b", "--format", "csv"], capture_output=True, check=True)
    assert r.stdout == b"a,b\n1,2\n"  # plain \n line ends, as the DuckDB CLI writes them
    r = subprocess.run(base + ["create table x as select 1"], capture_output=True, text=True)
    assert r.returncode == 2 and "read-only" in r.stderr


def test_report_has_plots_and_top_scenarios(demo_run):
    page = Path(demo_run["summary"]["report"]).read_text()
    specs = json.loads(re.search(r"<script type='application/json' id='chart-specs'>(.*?)</script>", page, re.S).group(1))
    assert {"hist", "agreement", "heatmap", "figure2", "refusals", "lineage"} <= set(specs), set(specs)
    # the headline numbers carry their bootstrap intervals (the demo builds the uncertainty stage)
    assert "95% seeded bootstrap" in page and re.search(r"<td>\[1\.\d+, 1\.\d+\]</td>", page)
    assert "highest-disagreement scenarios" in page
    assert page.count("class='scenario'") == 10
    r = subprocess.run([sys.executable, "-m", "specstress", "report", "--warehouse", demo_run["warehouse"]],
                       capture_output=True, text=True, check=True)
    assert Path(r.stdout.strip()).exists()


NEW_VIEWS = ["high_disagreement", "topics", "refusals", "priority_freeform", "value_priorities_freeform",
             "compliance_judgments", "compliance", "judge_agreement", "outliers", "scenario_attempts", "call_log"]


@pytest.mark.parametrize("view", NEW_VIEWS)
def test_method_views_answer(demo_run, view):
    n = views.query(demo_run["warehouse"], f"select count(*) as n from {view}").to_pylist()[0]["n"]
    assert n > 0, view


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "warehouse" / "sql" / "queries").glob("*.sql")))
def test_canonical_queries_run(demo_run, name):
    sql = (ROOT / "warehouse" / "sql" / "queries" / f"{name}.sql").read_text()
    rows = views.query(demo_run["warehouse"], sql).to_pylist()
    assert rows, name


def test_judge_agreement_matches_reference(demo_run):
    from specstress import metrics

    wh = demo_run["warehouse"]
    got = {r["metric"]: r["value"] for r in views.query(wh, "select * from judge_agreement where judge_a is null").to_pylist()}
    rows = views.query(wh, """select scenario_id, model_id, list(verdict order by judge) as v from compliance_judgments
                             where status = 'ok' group by all having count(*) = 3""").to_pylist()
    labels = [r["v"] for r in rows]
    k3 = metrics.fleiss_kappa(metrics.label_counts(labels, ["compliant", "non_compliant", "ambiguous"]))
    flags = [["f" if v in ("non_compliant", "ambiguous") else "p" for v in r] for r in labels]
    k2 = metrics.fleiss_kappa(metrics.label_counts(flags, ["f", "p"]))
    assert got["fleiss_kappa_3label"] == pytest.approx(k3, abs=1e-9)
    assert got["fleiss_kappa_binary"] == pytest.approx(k2, abs=1e-9)


def test_scenario_generation_counts_filtered(demo_run):
    wh = demo_run["warehouse"]
    rows = views.query(wh, "select status, count(*) as n from scenario_attempts group by status").to_pylist()
    counts = {r["status"]: r["n"] for r in rows}
    assert counts["ok"] > 0 and sum(v for k, v in counts.items() if k != "ok") > 0  # refusals/truncations recorded
    lineage = Warehouse(wh).lineage().to_pylist()
    summary = json.loads(next(r for r in lineage if r["stage"] == "scenarios")["summary_json"])
    assert summary["filtered"] and sum(summary["filtered"].values()) == sum(v for k, v in counts.items() if k != "ok")


def test_matching_order_is_shuffled_and_recorded(demo_run):
    wh = demo_run["warehouse"]
    rows = views.query(wh, """select count(distinct list_string) as orders from (
        select scenario_id, string_agg(model_id, ',' order by presented_index) as list_string
        from classifications where value_slot = 1 group by scenario_id)""").to_pylist()
    assert rows[0]["orders"] > 10
