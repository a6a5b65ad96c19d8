"""The shape of the code: layers and cycles, the stage registry and its DAG, a toy stage added with two
files, deployments that agree with the registry, and one import name when installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from specstress.tasks import registry
from specstress.tasks.base import Stage

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"


def test_import_contracts_and_no_cycles():
    """`make lint`'s layer check: import-linter contracts kept and 0 import cycles."""
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "lint_layers.py")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 import cycles" in out.stdout
    assert "0 broken" in out.stdout


def test_every_stage_module_registers_and_the_dag_is_ordered():
    stages = registry.all_stages()
    names = [s.name for s in stages]
    assert len(names) == len(set(names)) >= 17
    seen: set[str] = set()
    for s in stages:
        assert set(s.inputs) | set(s.optional_inputs) <= seen, (s.name, s.inputs)
        seen.add(s.name)
    # SQL stages read their inputs from their models' refs
    assert registry.stage_by_name("disagreement").inputs == ("position_grid",)
    assert set(registry.stage_by_name("value_priorities").inputs) == {"pairs", "position_grid"}


class _Fake(Stage):
    def __init__(self, name: str, inputs: tuple[str, ...]) -> None:
        self.name, self.inputs = name, inputs


def test_a_cycle_is_a_clear_error():
    graph = {"a": _Fake("a", ()), "b": _Fake("b", ("a", "c")), "c": _Fake("c", ("b",))}
    with pytest.raises(registry.StageGraphError, match=r"cycle: b -> c -> b"):
        registry.dag_order(graph)
    with pytest.raises(registry.StageGraphError, match=r"reads 'nope', which no registered stage makes"):
        registry.dag_order({"a": _Fake("a", ("nope",))})
    assert [s.name for s in registry.dag_order({"b": _Fake("b", ("a",)), "a": _Fake("a", ())})] == ["a", "b"]


TOY_MODULE = '''
"""A toy analysis: mean D per subset (one module and one .sql file, nothing else)."""
from pathlib import Path

import pyarrow as pa

from specstress.tasks.base import SqlStage
from specstress.tasks.registry import register_stage


@register_stage
class ToyMeanD(SqlStage):
    name = "toy_mean_d"
    sql_dir = Path(__file__).parent
    schema = pa.schema([("subset", pa.string()), ("scenarios", pa.int64()), ("mean_d", pa.float64())])
'''

TOY_SQL = """-- model: toy_mean_d. Mean disagreement per subset.
SELECT subset, count(*) AS scenarios, avg(d) AS mean_d
FROM {{ ref('disagreement') }}
GROUP BY subset
"""


@pytest.fixture
def toy_stage(tmp_path):
    """Register the toy stage from a temporary module (its two files only); unregister after."""
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy_mean_d.py").write_text(textwrap.dedent(TOY_MODULE))
    (folder / "toy_mean_d.sql").write_text(TOY_SQL)
    spec = importlib.util.spec_from_file_location("toy_mean_d", folder / "toy_mean_d.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield registry.stage_by_name("toy_mean_d")
    finally:
        registry.unregister_stage("toy_mean_d")


def test_toy_stage_joins_the_dag(toy_stage):
    from specstress.runspec import load_run_spec
    from specstress.warehouse.sql_files import run_model

    assert toy_stage.inputs == ("disagreement",)
    names = [s.name for s in registry.all_stages()]
    assert names.index("toy_mean_d") > names.index("disagreement")
    ids = registry.artefact_ids(load_run_spec(DEMO))
    assert ids["toy_mean_d"].startswith("toy_-")
    d = pa.table({"subset": ["all", "all", "x"], "d": [1.0, 2.0, 0.5]})
    out = run_model("toy_mean_d", {"disagreement": d}).sort_by("subset").to_pylist()
    assert out == [{"subset": "all", "scenarios": 2, "mean_d": 1.5}, {"subset": "x", "scenarios": 1, "mean_d": 0.5}]


@pytest.mark.slow
def test_toy_stage_runs_in_the_pipeline(toy_stage, demo_run):
    """The whole flow again over the finished demo: every other stage is reused, the toy stage is built, and
    its view (named after the stage) answers."""
    from specstress.flows.stress_test import stress_test
    from specstress.warehouse import views

    summary = stress_test(str(DEMO), {"warehouse": demo_run["warehouse"]}, emulator_url=demo_run["emulator"].url,
                          quiet=True)
    assert summary["status"] == "completed"
    assert summary["built"] == ["toy_mean_d"], summary["built"]
    rows = views.query(demo_run["warehouse"], "select * from toy_mean_d order by subset", summary["run_id"]).to_pylist()
    assert rows and rows[0]["subset"] == "all" and rows[0]["scenarios"] > 0


def test_deployments_agree_with_the_registry():
    """prefect.yaml's entrypoints load, and the one stage deployment can build any registered stage."""
    from prefect.flows import Flow, load_flow_from_entrypoint

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = [d["name"] for d in doc["deployments"]]
    assert len(names) == len(set(names))
    for d in doc["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).exists(), d["entrypoint"]
        flow = load_flow_from_entrypoint(str(ROOT / path) + ":" + func)
        assert isinstance(flow, Flow)
        params = set(flow.parameters.properties)
        assert set(d.get("parameters") or {}) <= params, (d["name"], params)
        if "stage" in params:
            assert d["parameters"]["stage"] in {s.name for s in registry.all_stages()}
    from specstress.flows import stages

    assert set(stages.stage_flows()) == {s.name for s in registry.all_stages()}
    assert stages.disagreement_flow.name == "stage-disagreement"


@pytest.mark.slow
def test_installed_the_project_has_one_import_name(tmp_path):
    """A wheel installs specstress.flows / .tasks / .warehouse, and no top-level `tasks`, `flows` or `warehouse`."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, timeout=600, capture_output=True)
    wheel = next(wheels.glob("specstress-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=600, capture_output=True)
    assert (target / "specstress" / "tasks" / "registry.py").exists()
    assert (target / "specstress" / "warehouse" / "sql" / "macros.sql").exists()
    for name in ("tasks", "flows", "warehouse"):
        assert not (target / name).exists(), name
        probe = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = [{str(target)!r}]; "
                                f"import {name}"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert probe.returncode != 0 and "No module named" in probe.stderr, (name, probe.stderr)
