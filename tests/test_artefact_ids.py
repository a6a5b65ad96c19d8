"""Artefact ids are content hashes of what a stage reads: stable across runs and processes,
and changing one role recomputes only the stages downstream of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from specstress.runspec import load_run_spec
from specstress.tasks.registry import artefact_ids

DEMO = Path(__file__).resolve().parents[1] / "specs" / "runs" / "demo.yaml"


def ids(**overrides):
    return artefact_ids(load_run_spec(DEMO, overrides or None))


def test_ids_are_stable_across_processes():
    here = ids()
    code = ("from specstress.tasks.registry import artefact_ids; from specstress.runspec import load_run_spec; "
            f"print(sorted(artefact_ids(load_run_spec({str(DEMO)!r})).items()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(here.items()))


def test_changing_the_judge_recomputes_only_downstream():
    a = ids()
    b = ids(**{"roles.matcher": "judge-claude"})
    same = [s for s in a if a[s] == b[s]]
    changed = [s for s in a if a[s] != b[s]]
    assert {"taxonomy", "pairs", "scenarios", "embeddings", "diversity", "responses", "spectra"} <= set(same)
    assert "classifications" in changed and "disagreement" in changed and "value_priorities" in changed


def test_changing_the_panel_keeps_generation():
    a = ids()
    spec = load_run_spec(DEMO)
    data = spec.model_dump(mode="json")
    data["roles"]["panel"] = data["roles"]["panel"][:4]
    data["subsets"] = {}
    data["compliance"]["group"] = data["roles"]["panel"][:2]
    data["compliance"]["subset"] = None
    from specstress.runspec import RunSpec

    spec2 = RunSpec.model_validate(data)
    spec2._source = DEMO.resolve()
    b = artefact_ids(spec2)
    assert a["scenarios"] == b["scenarios"] and a["spectra"] == b["spectra"]
    assert a["responses"] != b["responses"]


def test_seed_and_pairs_change_everything_from_pairs_on():
    a, b = ids(), ids(seed=1)
    assert a["taxonomy"] == b["taxonomy"]
    assert all(a[s] != b[s] for s in a if s != "taxonomy")


def test_faults_budget_and_port_do_not_change_ids():
    a = ids()
    b = ids(**{"emulator.faults.rate_429": 0.3, "budget_usd": 99, "emulator.url": "http://127.0.0.1:1",
               "shards.size": 7, "task_runner.max_workers": 2})
    assert a == b


def test_persona_change_recomputes_responses():
    a = ids()
    b = ids(**{"emulator.personas": [
        {"name": "sim-guardian", "weights": {"Protecting vulnerable entities": 1.0}}]})
    assert a["scenarios"] != b["scenarios"] or a["responses"] != b["responses"]


def test_base_url_enters_call_keys_without_credentials():
    from specstress.providers.services import endpoint_identity, public_url

    spec = load_run_spec(DEMO, {"models": [
        {"id": "a", "provider": "openai", "model": "gpt-x", "base_url": "https://user:pw@proxy.example/v1/?key=1"},
        {"id": "b", "provider": "openai", "model": "gpt-x"}],
        "roles": {"generators": [{"model": "a"}], "panel": ["a", "b"], "rubric": "a", "matcher": "a"},
        "subsets": {}, "compliance": {"enabled": False}, "emulator": {"enabled": False}})
    assert endpoint_identity(spec, "a") == "https://proxy.example/v1"
    assert endpoint_identity(spec, "b") == "default"
    assert public_url("http://h:8000/v1/") == "http://h:8000/v1"
