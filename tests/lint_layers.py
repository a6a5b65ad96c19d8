"""Check the import contracts (``.importlinter``) and that first-party imports have no cycles.

Installed, ``flows/``, ``tasks/`` and ``warehouse/`` are ``specstress.flows``, ``specstress.tasks``
and ``specstress.warehouse`` (a setuptools package-dir mapping), which import-linter cannot follow
in an editable install. So this lays the package out as it installs, in a temporary folder, and
checks that copy. Run by ``make lint``; ``tests/test_architecture.py`` runs it too.

    python tests/lint_layers.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"flows": "flows", "tasks": "tasks", "warehouse": "warehouse"}


def lay_out(dest: Path) -> Path:
    """Copy the package as it installs into ``dest``; returns the package folder."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    pkg = dest / "specstress"
    shutil.copytree(ROOT / "specstress", pkg, ignore=ignore)
    for sub, folder in MAPPED.items():
        shutil.copytree(ROOT / folder, pkg / sub, ignore=ignore)
    return pkg


def import_graph(dest: Path) -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (function-level imports included), via grimp."""
    sys.path.insert(0, str(dest))
    try:
        import grimp

        graph = grimp.build_graph("specstress", cache_dir=None)
        return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    finally:
        sys.path.remove(str(dest))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), ignoring a module's import of
    its own parent package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def succ(v: str) -> list[str]:
        return [w for w in edges.get(v, ()) if w in edges and not v.startswith(w + ".")]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="specstress-lint-") as tmp:
        dest = Path(tmp)
        lay_out(dest)
        found = cycles(import_graph(dest))
        for c in found:
            print("import cycle: " + " <-> ".join(c))
        print(f"{len(found)} import cycles among first-party modules")
        env = {**os.environ, "PYTHONPATH": str(dest)}
        lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
        rc = subprocess.call([lint, str(ROOT / ".importlinter"), "--no-cache"], cwd=tmp, env=env)
        return 1 if found or rc else 0


if __name__ == "__main__":
    sys.exit(main())
