"""Optional analyses that cover every kept scenario or only the high-disagreement set, each run by one
role of the run spec (topics, refusals, free-form priorities)."""

from __future__ import annotations

from typing import Any

from specstress.runspec import AnalysisScope, RunSpec
from specstress.tasks.base import Inputs, Stage, models_config
from specstress.tasks.responses import kept_scenarios


class ScopedStage(Stage):
    """A call stage switched on by ``spec.<section>.enabled``, whose model is ``spec.roles.<role>``,
    and which reads the high-disagreement set when ``spec.<section>.scope`` says so."""

    section = ""  # topics | refusals | priorities
    role = ""  # topic_tagger | refusal_classifier | priority_describer
    kind = "calls"
    optional_inputs = ("high_disagreement",)

    def settings(self, spec: RunSpec) -> AnalysisScope:
        return getattr(spec, self.section)

    def model_id(self, spec: RunSpec) -> str:
        return getattr(spec.roles, self.role) or ""

    def enabled(self, spec: RunSpec) -> bool:
        return self.settings(spec).enabled and getattr(spec.roles, self.role) is not None

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        extra = ("high_disagreement",) if self.settings(spec).scope == "high_disagreement" else ()
        return self.inputs + extra

    def models_used(self, spec: RunSpec) -> list[str]:
        return [self.model_id(spec)]

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {self.role: models_config(spec, [self.model_id(spec)]), "scope": self.settings(spec).scope}

    def scenarios(self, inputs: Inputs, spec: RunSpec) -> list[dict[str, Any]]:
        return scenarios_in_scope(inputs, self.settings(spec).scope)


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
