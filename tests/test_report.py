"""``specstress report``: one self-contained HTML file with the explorer's plots (the same Vega-Lite specs from
``specstress.charts``, the same canned queries), the top-N scenarios, and every model text escaped. Built over a
small warehouse imported from the paper release's format with planted markup (a few seconds)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from specstress import charts
from specstress.paper_dataset import PAPER_MODELS
from specstress.tasks.report import render_report, write_report_for
from specstress.warehouse.store import Warehouse
from tests.test_explorer import XSS, import_release
from tests.vega_render import render_with_node

N = 14


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    rows = []
    for i in range(N):
        r = {"rank": i, "query_generator": "o3", "value1": "accuracy" if i % 2 else "transparency",
             "value2": "filial piety", "nudge_direction": "neutral", "chunk_index": 0, "entry_idx": i,
             "query": f"question {i} about tea {XSS}"}
        for j, m in enumerate(PAPER_MODELS):
            r[f"response_{m}"] = f"answer {m} {i} {XSS} </script><script>alert(9)</script>"
            r[f"{m}_value1_position"] = (i % 7) if j < 6 else 0
            r[f"{m}_value2_position"] = 3 if j % 2 else 2
        rows.append(r)
    wh = import_release(tmp, rows)
    return wh, render_report(Warehouse(str(wh)), "release", top_n=10)


def _specs(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='chart-specs'>(.*?)</script>", page, re.S)
    assert m, "no chart specs in the report"
    return json.loads(m.group(1))


def test_the_report_is_one_self_contained_file(report):
    _, page = report
    # nothing loaded from anywhere: no external script, stylesheet, image or frame in the markup (the inline
    # bundles' own code is left out of the search)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", page, flags=re.S)
    assert markup.count("<script></script>") == 3
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", markup, re.I)
    assert charts.vendor_js()[:200] in page                          # the vendored bundles are inline
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page


def test_the_report_draws_the_explorers_plots_and_the_top_scenarios(report):
    _, page = report
    specs = _specs(page)
    assert {"hist", "agreement", "heatmap", "lineage"} <= set(specs), set(specs)   # (no refusals in the release)
    for name in specs:
        assert f"id='chart-{name}'" in page
    assert specs["hist"]["encoding"]["x"]["field"] == "d"            # the explorer's own spec builders
    assert specs["heatmap"] == charts.heatmap(specs["heatmap"]["data"]["values"], "model_id", "category", "score",
                                              "score")
    assert page.count("class='scenario'") == 10
    assert "highest-disagreement scenarios" in page


def test_every_model_text_is_escaped(report):
    _, page = report
    assert "<script>alert" not in page and "onerror=\"alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page            # shown as text, not run
    # inside the charts' inline JSON no '<' survives, so model text cannot close the script element
    body = re.search(r"<script type='application/json' id='chart-specs'>(.*?)</script>", page, re.S).group(1)
    assert "<" not in body


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the vendored Vega")
def test_every_report_plot_renders_with_the_vendored_vega(report, tmp_path):
    _, page = report
    specs = _specs(page)
    sizes = render_with_node(specs, tmp_path)
    assert set(sizes) == set(specs) and all(n > 1000 for n in sizes.values()), sizes


def test_specstress_report_writes_it_from_the_command_line(report):
    wh, _ = report
    r = subprocess.run([sys.executable, "-m", "specstress", "report", "--warehouse", str(wh), "--run", "release"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip().splitlines()[-1]
    assert path.endswith("report.html") and "chart-specs" in open(path, encoding="utf-8").read()
    assert write_report_for(Warehouse(str(wh)), "release").endswith("report.html")
