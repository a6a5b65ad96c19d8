"""Bad run specs fail before anything is sent, with one message naming the file, the field and
the fix; the CLI exits 2."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from specstress.errors import MissingKeyError, SpecError
from specstress.runspec import load_run_spec

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"


def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text())


def write(tmp_path: Path, data: dict | str, name: str = "bad.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    # relative paths in the demo point from specs/runs; keep them valid from tmp_path
    return p


def absolutise(d: dict) -> dict:
    d = copy.deepcopy(d)
    base = DEMO.parent
    d["taxonomy"]["path"] = str((base / d["taxonomy"]["path"]).resolve())
    d["prices"] = str((base / d.get("prices", "../prices.yaml")).resolve())
    d["compliance"]["model_spec"] = str((base / d["compliance"]["model_spec"]).resolve())
    return d


def test_demo_spec_is_valid():
    spec = load_run_spec(DEMO)
    assert spec.name == "demo"
    assert len(spec.roles.panel) == 6
    assert {spec.model(m).provider for m in spec.roles.panel} == {"openai", "anthropic", "google"}


def mutate(fn):
    d = absolutise(demo_data())
    fn(d)
    return d


BAD = {
    "unknown top-level key": (lambda d: d.update(modles=[]), ["modles", "models"]),
    "unknown nested key": (lambda d: d["pairs"].update(cuont=3), ["pairs.cuont", "count"]),
    "wrong type": (lambda d: d["pairs"].update(count="many"), ["pairs.count", "whole number"]),
    "missing required field": (lambda d: d.pop("budget_usd"), ["budget_usd", "add this field"]),
    "negative budget": (lambda d: d.update(budget_usd=-1), ["budget_usd", "larger value"]),
    "unknown provider": (lambda d: d["models"][0].update(provider="opnai"), ["models[0].provider", "openai"]),
    "duplicate model id": (lambda d: d["models"][1].update(id="guardian"), ["models[1].id", "duplicate"]),
    "unknown model in roles": (lambda d: d["roles"].update(matcher="judge-gtp"), ["roles.matcher", "judge-gpt"]),
    "subset member not in panel": (lambda d: d["subsets"].update(x=["guardian", "judge-gpt"]), ["subsets.x", "panel"]),
    "subset lists a model twice": (lambda d: d["subsets"].update(x=["guardian", "scholar", "guardian"]),
                                   ["subsets.x[2]", "twice", "once"]),
    "panel too small": (lambda d: d["roles"].update(panel=["guardian"]), ["roles.panel", "more entries"]),
    "missing taxonomy file": (lambda d: d["taxonomy"].update(path="/nope/taxonomy.yaml"), ["taxonomy.path", "not found"]),
    "missing model spec": (lambda d: d["compliance"].update(model_spec="/nope/spec.md"), ["compliance.model_spec"]),
    "emulator model while emulator off": (lambda d: d["emulator"].update(enabled=False), ["base_url", "emulator"]),
    "anthropic temperature": (lambda d: d["models"][2]["params"].update(temperature=0.5),
                              ["models[2].params.temperature", "remove"]),
    "bad base_url": (lambda d: d["models"][0].update(base_url="localhost:8000"), ["models[0].base_url", "http"]),
    "duplicate persona": (lambda d: d["emulator"]["personas"][1].update(name="sim-guardian"), ["personas", "duplicate"]),
    "redefined all subset": (lambda d: d["subsets"].update(all=["guardian", "scholar"]), ["subsets.all", "another name"]),
    # The emulator's section is validated by the emulator plugin's own schema, reported the same way.
    "persona noise out of range": (lambda d: d["emulator"]["personas"][0].update(noise=9),
                                   ["emulator.personas[0].noise", "smaller value"]),
    "unknown emulator key": (lambda d: d["emulator"].update(personass=[]), ["emulator.personass", "'personas'"]),
    "unknown fault knob": (lambda d: d["emulator"]["faults"].update(hang_rat=0.1),
                           ["emulator.faults.hang_rat", "'hang_rate'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_names_file_field_and_fix(tmp_path, case):
    fn, needles = BAD[case]
    path = write(tmp_path, mutate(fn))
    with pytest.raises(SpecError) as err:
        load_run_spec(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "Fix:" in msg
    for n in needles:
        assert n in msg, f"{n!r} not in: {msg}"


def test_bad_spec_line_number(tmp_path):
    d = mutate(lambda d: d["pairs"].update(count="many"))
    path = write(tmp_path, d)
    msg = str(pytest.raises(SpecError, load_run_spec, path).value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "count: many" in text)
    assert f"{path}:{line}:" in msg


def test_emulator_section_error_line_number(tmp_path):
    d = mutate(lambda d: d["emulator"]["personas"][2].update(noise=-1))
    path = write(tmp_path, d)
    msg = str(pytest.raises(SpecError, load_run_spec, path).value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "noise: -1" in text)
    assert f"{path}:{line}: field `emulator.personas[2].noise`" in msg


def test_emulator_section_error_from_set():
    msg = str(pytest.raises(SpecError, load_run_spec, DEMO, {"emulator.sim.judge_accuracy": 3}).value)
    assert msg.startswith("override 'emulator.sim.judge_accuracy' (from --set): field `emulator.sim.judge_accuracy`")
    assert "Fix:" in msg and "demo.yaml:" not in msg  # the override is blamed, not a line of the file


def test_core_spec_knows_no_personas():
    """The core schema keeps the emulator's section opaque (plus whether it is enabled and its URL);
    the emulator plugin owns the typed config, cached per spec."""
    from specstress.emulator.config import EmulatorConfig, emulator_config
    from specstress.runspec import RunSpec, ServiceSection

    assert RunSpec.model_fields["emulator"].annotation is ServiceSection
    assert set(ServiceSection.model_fields) == {"enabled", "url"}
    spec = load_run_spec(DEMO)
    em = emulator_config(spec)
    assert isinstance(em, EmulatorConfig) and emulator_config(spec) is em
    assert em.persona("sim-guardian") is not None and em.enabled == spec.emulator.enabled
    # A spec built without the loader is validated on first use.
    again = RunSpec.model_validate(spec.model_dump(mode="json"))
    assert emulator_config(again) == em


def test_plugin_section_without_entry_points():
    """Core finds the emulator's schema by importing the built-in plugin by name when no entry point
    is installed, and loading a spec loads neither the emulator server nor the sim."""
    code = ("import importlib.metadata as md; md.entry_points = lambda **kw: []\n"
            "import sys\n"
            "from specstress.runspec import load_run_spec\n"
            f"spec = load_run_spec({str(DEMO)!r})\n"
            "from specstress.emulator.config import emulator_config\n"
            "assert len(emulator_config(spec).personas) == 6\n"
            "loaded = [m for m in sys.modules if m.startswith(('specstress.sim', 'specstress.emulator.server'))]\n"
            "assert not loaded, loaded\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "name: demo\npairs: {count: 3\n")
    msg = str(pytest.raises(SpecError, load_run_spec, path).value)
    assert str(path) in msg and "not valid YAML" in msg


def test_missing_spec_file(tmp_path):
    msg = str(pytest.raises(SpecError, load_run_spec, tmp_path / "nope.yaml").value)
    assert "not found" in msg and "Fix:" in msg


def test_persona_unknown_category_fails_preflight(tmp_path):
    from specstress.flows.planning import preflight

    d = mutate(lambda d: d["emulator"]["personas"][0]["weights"].update({"Protecting vulnerable entitys": 1.0}))
    spec = load_run_spec(write(tmp_path, d))
    msg = str(pytest.raises(SpecError, preflight, spec).value)
    assert "personas[0]" in msg and "Protecting vulnerable entities" in msg


def test_missing_key_names_variable(tmp_path, monkeypatch):
    from specstress.flows.planning import preflight

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    d = mutate(lambda d: d["models"][0].pop("base_url"))
    spec = load_run_spec(write(tmp_path, d))
    msg = str(pytest.raises(MissingKeyError, preflight, spec).value)
    assert "OPENAI_API_KEY" in msg and "guardian" in msg


def test_cli_exit_code_2_and_nothing_sent(tmp_path):
    """The CLI refuses a bad spec with exit code 2 before touching any provider or emulator."""
    from tests.conftest import make_emulator

    emu = make_emulator().start()
    try:
        d = mutate(lambda d: d["models"][0].update(provider="opnai"))
        path = write(tmp_path, d)
        r = subprocess.run([sys.executable, "-m", "specstress", "run", str(path), "--emulator-url", emu.url],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "models[0].provider" in r.stderr and "Fix:" in r.stderr
        assert "Traceback" not in r.stderr
        assert emu.stats()["requests"] == 0
    finally:
        emu.stop()


def test_overrides_apply():
    from specstress.emulator.config import emulator_config

    spec = load_run_spec(DEMO, {"pairs.count": 7, "emulator.faults.rate_429": 0.5})
    assert spec.pairs.count == 7 and emulator_config(spec).faults.rate_429 == 0.5
