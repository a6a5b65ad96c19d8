"""``specstress validate``: run the simulated panel, whose value weights are planted, through the
whole pipeline, and check that the method recovers what was planted.

* Priorities: for every persona, the Spearman correlation between its planted category weights
  and the recovered ``value_priorities.score`` (goal >= 0.9).
* Disagreement: the planted divergent scenarios are those whose noise-free persona positions
  (the personas' own model, without noise, given the scenario's values and nudge) have D >= the
  threshold; the pipeline's high-disagreement flags over the whole panel must recover them with
  F1 >= 0.9. The set after the weighted dedup is also scored (precision).

The judges never see the planted weights; the truth is computed here, outside the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specstress import metrics


@dataclass
class ValidationReport:
    run_id: str
    warehouse: str
    spearman: dict[str, float] = field(default_factory=dict)
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    dedup_precision: float = 0.0
    planted: int = 0
    recovered: int = 0
    scenarios: int = 0
    spearman_goal: float = 0.9
    f1_goal: float = 0.9
    judge_accuracy: float = 0.0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.spearman) and min(self.spearman.values()) >= self.spearman_goal and self.f1 >= self.f1_goal

    def text(self) -> str:
        lines = [f"validate run {self.run_id} ({self.seconds:.0f}s, warehouse {self.warehouse})",
                 f"judge accuracy knob {self.judge_accuracy:.2f}; {self.scenarios} scenarios placed", "",
                 f"planted priority order recovered (Spearman, goal >= {self.spearman_goal:.2f}):"]
        for name, rho in sorted(self.spearman.items()):
            lines.append(f"  {name:<14} {rho:.3f}  {'ok' if rho >= self.spearman_goal else 'FAIL'}")
        lines += ["", f"planted divergent scenarios (noise-free D >= threshold): {self.planted}",
                  f"flagged high-disagreement by the pipeline: {self.recovered}",
                  f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
                  f"{'ok' if self.f1 >= self.f1_goal else 'FAIL'} (goal >= {self.f1_goal:.2f})",
                  f"after the disagreement-weighted dedup: precision {self.dedup_precision:.3f}",
                  "", "PASS" if self.passed else "FAIL"]
        return "\n".join(lines)


def run_validation(spec_path: str, overrides: dict[str, Any] | None = None, quiet: bool = False,
                   emulator_url: str | None = None) -> ValidationReport:
    import time

    from specstress.flows.stress_test import stress_test

    t0 = time.monotonic()
    summary = stress_test(spec_path, overrides, emulator_url=emulator_url, quiet=quiet)
    report = score(spec_path, overrides, summary["warehouse"], summary["run_id"])
    report.seconds = time.monotonic() - t0
    return report


def score(spec_path: str, overrides: dict[str, Any] | None, warehouse: str, run_id: str) -> ValidationReport:
    from specstress.emulator.config import emulator_config
    from specstress.runspec import load_run_spec
    from specstress.sim.personas import expected_positions
    from specstress.warehouse.views import connect

    spec = load_run_spec(spec_path, overrides)
    em = emulator_config(spec)
    con, sel = connect(warehouse, run_id)
    try:
        pri = con.sql("SELECT model_id, category, score FROM value_priorities").to_arrow_table().to_pylist()
        scen = con.sql("""SELECT s.scenario_id, s.nudge, p.category1, p.category2 FROM scenarios s
                          JOIN value_pairs p USING (pair_id) WHERE s.kept""").to_arrow_table().to_pylist()
        dis = con.sql("SELECT scenario_id, high FROM disagreement WHERE subset = 'all'").to_arrow_table().to_pylist()
        hd = con.sql("SELECT scenario_id FROM high_disagreement WHERE subset = 'all'").to_arrow_table().to_pylist()
    finally:
        con.close()
    report = ValidationReport(run_id=sel.run_id or run_id, warehouse=warehouse,
                              judge_accuracy=em.sim.judge_accuracy)
    for mid in spec.roles.panel:
        persona = em.persona(spec.model(mid).model)
        if persona is None:
            continue
        weights = persona.category_weights()
        rows = [r for r in pri if r["model_id"] == mid]
        planted = [weights.get(r["category"], 0.0) for r in rows]
        report.spearman[mid] = metrics.spearman(planted, [r["score"] for r in rows])
    personas = [em.persona(spec.model(m).model) for m in spec.roles.panel]
    placed = {r["scenario_id"] for r in dis}
    truth: set[str] = set()
    for s in scen:
        if s["scenario_id"] not in placed:
            continue
        pos = [expected_positions(p, s["category1"], s["category2"], s["nudge"]) for p in personas if p]
        d = metrics.disagreement([a for a, _ in pos], [b for _, b in pos])
        if d >= spec.disagreement.high:
            truth.add(s["scenario_id"])
    flagged = {r["scenario_id"] for r in dis if r["high"]}
    report.precision, report.recall, report.f1 = metrics.f1(flagged, truth)
    kept = {r["scenario_id"] for r in hd}
    report.dedup_precision = metrics.f1(kept, truth)[0] if kept else 0.0
    report.planted, report.recovered, report.scenarios = len(truth), len(flagged), len(placed)
    return report
