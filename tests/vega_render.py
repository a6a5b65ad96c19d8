"""Render Vega-Lite specs to SVG under node with the very bundles the explorer and the report ship
(``specstress/charts/vendor``): no browser is needed to prove every plot compiles and draws."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parents[1] / "specstress" / "charts" / "vendor"


def render_with_node(specs: dict[str, Any], tmp_path: Path) -> dict[str, int]:
    """Spec name -> length of its rendered SVG. Fails with node's stderr when a spec does not render."""
    (tmp_path / "node_modules" / "vega").mkdir(parents=True, exist_ok=True)
    (tmp_path / "node_modules" / "vega" / "index.js").write_text(f"module.exports = require({str(VENDOR / 'vega.min.js')!r});")
    (tmp_path / "specs.json").write_text(json.dumps(specs))
    (tmp_path / "render.js").write_text(f"""
global.vega = require("vega");
const vl = require({str(VENDOR / 'vega-lite.min.js')!r});
const specs = JSON.parse(require("fs").readFileSync("specs.json"));
(async () => {{
  const out = {{}};
  for (const [name, spec] of Object.entries(specs)) {{
    const view = new vega.View(vega.parse(vl.compile(spec).spec), {{renderer: "none"}});
    out[name] = (await view.toSVG()).length;
  }}
  console.log(JSON.stringify(out));
}})().catch(e => {{ console.error(e); process.exit(1); }});
""")
    env = {**os.environ, "NODE_PATH": str(tmp_path / "node_modules")}  # vega-lite's require("vega")
    res = subprocess.run(["node", "render.js"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
