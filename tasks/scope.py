"""Which scenarios an optional analysis covers: every kept scenario, or the high-disagreement set."""

from __future__ import annotations

from typing import Any

from tasks.base import Inputs
from tasks.responses import kept_scenarios


def high_set(inputs: Inputs, subset: str = "all") -> set[str]:
    if "high_disagreement" not in inputs.ids:
        return set()
    rows = inputs.table("high_disagreement", ["subset", "scenario_id", "kept"]).to_pylist()
    return {r["scenario_id"] for r in rows if r["kept"] and r["subset"] == subset}


def scenarios_in_scope(inputs: Inputs, scope: str) -> list[dict[str, Any]]:
    kept = kept_scenarios(inputs)
    if scope == "high_disagreement":
        wanted = high_set(inputs)
        return [s for s in kept if s["scenario_id"] in wanted]
    return kept
