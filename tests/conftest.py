"""Shared fixtures: an isolated Prefect home and test server per session, the demo spec, an
emulator serving the demo's personas, and a finished demo run reused by read-only tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="specstress-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"


def shared_data() -> Path:
    env = os.environ.get("SPECSTRESS_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def stage_registry():
    """Every stage registered (as the CLI does before it opens the views), whatever test runs first: the views
    give a stage the run did not build an empty relation with that stage's columns."""
    from specstress.tasks.registry import discover

    discover()


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the session (about 10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def make_emulator(spec_path: Path = DEMO, faults=None, **overrides):
    from specstress.emulator.plugin import make_server
    from specstress.runspec import load_run_spec

    return make_server(load_run_spec(spec_path, overrides or None), faults)


@pytest.fixture(scope="session")
def demo_run(prefect_server, tmp_path_factory):
    """The full demo spec run once through Prefect against a test-owned emulator."""
    from specstress.flows.stress_test import stress_test

    wh = tmp_path_factory.mktemp("demo-warehouse")
    emu = make_emulator().start()
    try:
        summary = stress_test(str(DEMO), {"warehouse": str(wh)}, emulator_url=emu.url, quiet=True)
        stats = emu.stats()
        yield {"summary": summary, "warehouse": str(wh), "emulator": emu, "stats_after_first": stats}
    finally:
        emu.stop()


def pytest_collection_modifyitems(config, items):
    """A test that needs the demo run (about 90 s) is slow, whether or not it says so: the fast tier never
    starts the demo."""
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
