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
    #: estimator ("score": value_priorities' mean-position score, "bradley_terry": value_strengths) ->
    #: persona -> {"top1": planted top ranked first, "top3": share of the planted top 3 in the recovered
    #: top 3, "top_in_interval": the planted top's rank interval reaches 1 (Bradley–Terry only)}
    recovery: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def recovery_summary(self) -> dict[str, dict[str, float]]:
        """Per estimator: the share of personas whose planted top came first, and the mean top-3 recall."""
        out = {}
        for est, per in self.recovery.items():
            if per:
                vals = list(per.values())
                out[est] = {"top1": sum(v["top1"] for v in vals) / len(vals),
                            "top3": sum(v["top3"] for v in vals) / len(vals)}
                for extra in ("top_in_interval", "coverage"):
                    if all(extra in v for v in vals):
                        out[est][extra] = sum(v[extra] for v in vals) / len(vals)
        return out

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
                  f"after the disagreement-weighted dedup: precision {self.dedup_precision:.3f}"]
        summary = self.recovery_summary()
        if summary:
            lines += ["", "planted top categories recovered (share of personas; top-3: mean recall):"]
            for est, v in summary.items():
                extra = (f"  planted top inside its rank interval {v['top_in_interval']:.2f}"
                         if "top_in_interval" in v else "")
                extra += (f"  planted ranks inside the 95% rank intervals {v['coverage']:.2f}"
                          if "coverage" in v else "")
                lines.append(f"  {est:<14} top-1 {v['top1']:.2f}  top-3 {v['top3']:.2f}{extra}")
        lines += ["", "PASS" if self.passed else "FAIL"]
        return "\n".join(lines)


def top_recovery(weights: dict[str, float], estimate: dict[str, float]) -> dict[str, float]:
    """Did the estimate rank the planted top category first, and how much of the planted top 3 is in its
    top 3? Only categories the estimate covers count (a category never duelled cannot be ranked)."""
    cats = sorted(estimate)
    if not cats:
        return {"top1": 0.0, "top3": 0.0}
    planted = sorted(cats, key=lambda c: (-weights.get(c, 0.0), c))
    found = sorted(cats, key=lambda c: (-estimate[c], c))
    return {"top1": float(found[0] == planted[0]), "top3": len(set(found[:3]) & set(planted[:3])) / min(3, len(cats))}


def rank_coverage(weights: dict[str, float], bt: dict[str, dict[str, Any]]) -> float:
    """The share of categories whose planted rank lies inside the Bradley–Terry rank interval. Categories
    planted with equal weights share a rank range (any rank of the tied group counts)."""
    cats = sorted(bt)
    if not cats:
        return 0.0
    w = [weights.get(c, 0.0) for c in cats]
    inside = 0
    for c, wc in zip(cats, w, strict=True):
        best = 1 + sum(1 for x in w if x > wc)
        worst = sum(1 for x in w if x >= wc)
        inside += bt[c]["rank_low"] <= worst and best <= bt[c]["rank_high"]
    return inside / len(cats)


#: ``--sweep`` shortcuts: a name -> the run-spec key it sets (``noise`` sets every persona's noise).
SWEEP_KEYS = {"judge_accuracy": "emulator.sim.judge_accuracy", "judge_error": "emulator.sim.judge_error",
              "noise": "emulator.personas.*.noise"}


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``judge_accuracy=0.6,0.8,1.0`` -> (key, values); numbers become floats."""
    from specstress.errors import SpecError

    if "=" not in text:
        raise SpecError(f"--sweep {text!r}: expected KEY=V1,V2,... Fix: e.g. --sweep judge_accuracy=0.6,0.8,1.0 "
                        f"(keys: {', '.join(SWEEP_KEYS)} or any dotted run-spec key)")
    key, raw = text.split("=", 1)
    values: list[Any] = []
    for v in raw.split(","):
        v = v.strip()
        try:
            values.append(float(v))
        except ValueError:
            values.append(v)
    if not values or values == [""]:
        raise SpecError(f"--sweep {text!r}: no values. Fix: list them after '=', separated by commas")
    return key.strip(), values


def sweep_overrides(spec_path: str, key: str, value: Any, base: dict[str, Any] | None) -> dict[str, Any]:
    """The overrides of one sweep point."""
    from specstress.emulator.config import emulator_config
    from specstress.runspec import load_run_spec

    dotted = SWEEP_KEYS.get(key, key)
    out = dict(base or {})
    if "*" in dotted:
        n = len(emulator_config(load_run_spec(spec_path, base)).personas)
        for i in range(n):
            out[dotted.replace("*", str(i))] = value
    else:
        out[dotted] = value
    return out


def run_sweep(spec_path: str, key: str, values: list[Any], overrides: dict[str, Any] | None = None,
              quiet: bool = False) -> list[tuple[Any, ValidationReport]]:
    """One validation run per value (each through the ledger, so shared calls are paid once)."""
    return [(v, run_validation(spec_path, sweep_overrides(spec_path, key, v, overrides), quiet=quiet))
            for v in values]


def sweep_table(key: str, results: list[tuple[Any, ValidationReport]]) -> str:
    head = (f"{key:>14} | Spearman min | Spearman mean | F1    | score top-1 | score top-3 | BT top-1 | BT top-3 "
            f"| BT coverage")
    lines = [head, "-" * len(head)]
    for v, r in results:
        rec = r.recovery_summary()
        sc, bt = rec.get("score", {}), rec.get("bradley_terry", {})
        rho = list(r.spearman.values()) or [0.0]
        lines.append(f"{v!s:>14} | {min(rho):12.3f} | {sum(rho) / len(rho):13.3f} | {r.f1:.3f} | "
                     f"{sc.get('top1', 0):11.2f} | {sc.get('top3', 0):11.2f} | {bt.get('top1', 0):8.2f} | "
                     f"{bt.get('top3', 0):8.2f} | {bt.get('coverage', 0):11.2f}")
    return "\n".join(lines)


def sweep_plot(key: str, results: list[tuple[Any, ValidationReport]], path: str) -> str:
    """Spearman (min and mean), F1 and top-3 recall against the swept value, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(results)))
    fig, ax = plt.subplots(figsize=(7, 4))
    rho = [list(r.spearman.values()) or [0.0] for _, r in results]
    ax.plot(xs, [min(x) for x in rho], "o-", label="Spearman (min over personas)")
    ax.plot(xs, [sum(x) / len(x) for x in rho], "o--", label="Spearman (mean)")
    ax.plot(xs, [r.f1 for _, r in results], "s-", label="high-disagreement F1")
    ax.plot(xs, [r.recovery_summary().get("bradley_terry", {}).get("top3", 0) for _, r in results], "^-",
            label="Bradley–Terry top-3 recall")
    ax.set_xticks(xs, [str(v) for v, _ in results])
    ax.set_xlabel(key)
    ax.set_ylim(0, 1.05)
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"specstress validate: recovery across {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
        strengths = con.sql("SELECT model_id, category, strength, rank, rank_low, rank_high FROM value_strengths") \
            .to_arrow_table().to_pylist()
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
        report.recovery.setdefault("score", {})[mid] = top_recovery(weights, {r["category"]: r["score"] for r in rows})
        bt = {r["category"]: r for r in strengths if r["model_id"] == mid}
        if bt:
            rec = top_recovery(weights, {c: r["strength"] for c, r in bt.items()})
            top = max((c for c in bt), key=lambda c: weights.get(c, 0.0))
            rec["top_in_interval"] = float(bt[top]["rank_low"] == 1)
            rec["coverage"] = rank_coverage(weights, bt)
            report.recovery.setdefault("bradley_terry", {})[mid] = rec
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
