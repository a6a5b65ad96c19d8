"""`specstress validate` as a test: the method recovers the planted truth of the simulated panel."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a full validation run (about 1 min)

ROOT = Path(__file__).resolve().parents[1]


def test_validate_recovers_planted_truth(prefect_server, tmp_path):
    from specstress.validation import run_validation

    report = run_validation(str(ROOT / "specs" / "runs" / "validate.yaml"), {"warehouse": str(tmp_path)}, quiet=True)
    print(report.text())
    assert len(report.spearman) == 6
    assert min(report.spearman.values()) >= 0.9, report.spearman
    assert report.f1 >= 0.9, (report.precision, report.recall)
    assert report.planted > 50 and report.scenarios > 500
    assert report.passed
