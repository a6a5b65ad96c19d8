"""``specstress serve``: the read-only results explorer, driven with starlette's TestClient over a small
warehouse imported from the paper release's format (in-process, a few seconds)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from specstress.explorer.app import create_app
from specstress.paper_dataset import PAPER_MODELS, import_paper
from tests.test_taxonomy import write_tree
from tests.vega_render import render_with_node

XSS = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
VALUE_XSS = "<script>alert(4)</script>"   # a value name is model text too
N = 12
PAGES = ["/", "/disagreement", "/values", "/refusals", "/compliance", "/outliers", "/scenarios", "/compare"]


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def planted_warehouse(tmp: Path) -> Path:
    """12 scenarios imported from the paper release's format, with markup planted in a query, an answer and a
    value name."""
    rows = []
    for i in range(N):
        value1 = "accuracy" if i % 2 else "transparency" if i else VALUE_XSS
        r = {"rank": i, "query_generator": "o3", "value1": value1,
             "value2": "filial piety", "nudge_direction": "neutral", "chunk_index": 0, "entry_idx": i,
             "query": f"question {i} about tea" + (f" {XSS}" if i == 0 else "")}
        for j, m in enumerate(PAPER_MODELS):
            r[f"response_{m}"] = f"answer {m} {i}" + (f" {XSS}" if i == 0 and m == "o3" else "")
            # scenario i: the two camps sit i % 7 apart on value1, so D spreads over several bins
            r[f"{m}_value1_position"] = (i % 7) if j < 6 else 0
            r[f"{m}_value2_position"] = 3 if j % 2 else 2
        rows.append(r)
    return import_release(tmp, rows)


def import_release(tmp: Path, rows: list[dict]) -> Path:
    """Rows in the paper release's format, imported as run ``release`` of a warehouse at ``tmp/wh``."""
    src = tmp / "release.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    tree = tmp / "values_tree.csv"
    write_tree(tree)
    wh = tmp / "wh"
    import_paper(str(src), str(wh), name="release", tree_csv=str(tree))
    return wh


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    wh = planted_warehouse(tmp_path_factory.mktemp("explorer"))
    before = _files(wh)
    client = TestClient(create_app(str(wh)))
    yield client, wh
    assert _files(wh) == before, "the explorer wrote to the warehouse"


def _scenario_ids(html: str) -> list[str]:
    return re.findall(r'href="/scenario/([^"?]+)', html)


def test_every_page_loads(explorer):
    client, _ = explorer
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "specstress explorer" in r.text and "this warehouse cannot answer" not in r.text, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    # plots are Vega-Lite specs in JSON blocks, rendered by the vendored scripts (no network)
    html = client.get("/disagreement").text
    assert 'id="spec-hist"' in html and 'id="spec-agreement"' in html
    assert '<script src="/static/vendor/vega-embed.min.js"' in html and "cdn" not in html.lower()
    for js in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        assert client.get(f"/static/vendor/{js}").status_code == 200
    sid = _scenario_ids(client.get("/scenarios").text)[0]
    r = client.get(f"/scenario/{sid}")
    assert r.status_code == 200 and 'id="spec-strip"' in r.text
    assert all(f'id="m-{m}"' in r.text for m in PAPER_MODELS)   # every model's answer
    assert client.get("/scenario/no-such-scenario").status_code == 404
    assert client.get("/call/no-such-key").status_code == 404


def test_model_text_is_escaped(explorer):
    client, _ = explorer
    r = client.get("/scenarios", params={"q": "alert(1)"})
    ids = _scenario_ids(r.text)
    assert len(set(ids)) == 1
    pages = [r.text, client.get(f"/scenario/{ids[0]}").text,
             client.get("/compare", params={"a": "o3", "b": "gpt_4o"}).text]
    for html in pages:
        assert "<script>alert(1)" not in html and "<script>alert(4)" not in html and "<img src=x" not in html and 'href="javascript:' not in html
    scenario = pages[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in scenario
    assert "&lt;img src=x onerror=" in scenario
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in scenario          # the value name, as text
    assert "\\u003cscript\\u003ealert(4)" in scenario                   # and inside the plot's JSON spec
    # every <script> on the page is one of ours: a vendored file or a JSON plot spec
    for tag in re.findall(r"<script[^>]*>", scenario):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag


def test_csv_and_parquet_downloads(explorer):
    client, _ = explorer
    r = client.get("/scenarios", params={"format": "csv", "per_page": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == N and {"scenario_id", "d", "bin", "value1", "query"} <= set(rows[0])  # not one page: all
    assert "\r\n" not in r.text
    d = [float(x["d"]) for x in rows]
    assert d == sorted(d, reverse=True)
    r = client.get("/values", params={"format": "parquet", "table": "priorities"})
    t = pq.read_table(io.BytesIO(r.content))
    assert t.num_rows > 0 and "score" in t.column_names
    filtered = client.get("/scenarios", params={"format": "csv", "value": "accuracy"}).text
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == N // 2
    assert client.get("/disagreement", params={"format": "csv", "table": "nope"}).status_code == 404
    assert client.get("/disagreement", params={"format": "xlsx"}).status_code == 400
    for path in PAGES:  # every table on every page downloads
        html = client.get(path).text
        for href in set(re.findall(r'href="([^"]*format=csv[^"]*)"', html)):
            assert client.get(href.replace("&amp;", "&")).status_code == 200, href


def test_pagination_and_filters_are_deep_links(explorer):
    client, _ = explorer
    first = client.get("/scenarios", params={"per_page": 5})
    assert "page 1 of 3" in first.text and len(set(_scenario_ids(first.text))) == 5
    nxt = re.search(r'rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    assert "page=2" in nxt and "per_page=5" in nxt
    second = client.get(nxt)
    assert "page 2 of 3" in second.text
    assert not set(_scenario_ids(first.text)) & set(_scenario_ids(second.text))
    # a filtered deep link narrows the list and restores the form
    r = client.get("/scenarios", params={"value": "accuracy", "q": "tea", "model": "o3", "per_page": 5, "page": 2})
    assert f"{N // 2} scenarios match" in r.text and "page 2 of 2" in r.text
    assert 'name="value" value="accuracy"' in r.text and 'name="q" value="tea"' in r.text
    assert "<option selected>o3</option>" in r.text
    prev = re.search(r'rel="prev" href="([^"]+)"', r.text).group(1)
    assert "value=accuracy" in prev and "q=tea" in prev
    bins = re.findall(r"<option(?: selected)?>(\[[^<]+)</option>", r.text)
    assert bins
    total = 0
    for b in set(bins):
        m = re.search(r"(\d+) scenarios match", client.get("/scenarios", params={"bin": b}).text)
        total += int(m.group(1))
    assert total == N
    assert "0 scenarios match" in client.get("/scenarios", params={"q": "no such words anywhere"}).text
    assert "0 scenarios match" in client.get("/scenarios", params={"q": "%"}).text       # a literal %, no wildcard
    assert f"{N} scenarios match" in client.get("/scenarios", params={"q": "TEA"}).text   # case-insensitive
    # the run is a parameter too, kept by the links
    r = client.get("/scenarios", params={"run": "release"})
    assert r.status_code == 200 and re.search(r'href="/scenario/[^"?]+\?run=release"', r.text)
    assert 'href="/values?run=release"' in r.text   # the navigation keeps it
    assert client.get("/", params={"run": "no-such-run"}).status_code == 404


def test_read_only(explorer):
    client, wh = explorer
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/scenarios").status_code == 405
    # no endpoint takes SQL: a query parameter named sql is ignored, text filters are bound parameters
    r = client.get("/scenarios", params={"sql": "COPY scenarios TO 'x.csv'", "q": "'; DROP VIEW scenarios; --"})
    assert r.status_code == 200 and "0 scenarios match" in r.text
    assert client.get("/scenarios").text.count('href="/scenario/') >= N
    assert client.get("/sql", params={"q": "select 1"}).status_code == 404
    # and the one door to DuckDB refuses anything but SELECT
    from specstress.warehouse.views import ReadOnlyError

    data = client.app.state.data
    with pytest.raises(ReadOnlyError):
        data.sql(None, f"COPY (SELECT 1) TO '{wh}/x.csv'")
    with pytest.raises(ReadOnlyError):
        data.sql(None, "CREATE TABLE t AS SELECT 1")
    assert not (wh / "x.csv").exists()


def test_serve_command_parses_and_refuses_a_missing_warehouse(tmp_path, capsys):
    from specstress.cli import build_parser, cmd_serve

    args = build_parser().parse_args(["serve", "--warehouse", str(tmp_path / "none"), "--port", "8123"])
    assert args.func is cmd_serve and args.port == 8123 and args.host == "127.0.0.1"
    assert cmd_serve(args) == 2 and "no warehouse" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the vendored Vega")
def test_every_plot_renders_with_the_vendored_vega(explorer, tmp_path):
    """No browser here: the pages' Vega-Lite specs are compiled and rendered to SVG by the very scripts the
    pages load (specstress/charts/vendor), under node."""
    client, _ = explorer
    specs = {}
    sid = _scenario_ids(client.get("/scenarios").text)[0]
    for path in [*PAGES, f"/scenario/{sid}"]:
        for name, body in re.findall(r'<script type="application/json" id="spec-(\w+)">(.*?)</script>',
                                     client.get(path).text, re.S):
            specs[f"{path}#{name}"] = json.loads(body)
    assert {"/#lineage", "/disagreement#hist", "/disagreement#agreement", "/values#heatmap",
            f"/scenario/{sid}#strip"} <= set(specs)
    sizes = render_with_node(specs, tmp_path)
    assert set(sizes) == set(specs) and all(n > 1000 for n in sizes.values()), sizes
