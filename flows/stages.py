"""One Prefect flow per stage. Each can be deployed and run on its own: its parameters are the
run-spec path and overrides; it computes every artefact id from the spec, checks that its inputs
exist, and builds its own artefact unless it already exists."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.dag import all_stages, artefact_ids, stage_by_name
from flows.runner import execute_stage, task_runner_for
from specstress.context import RunContext


def _name_for(stage: str) -> Any:
    def name(**_: Any) -> str:
        try:
            from prefect.runtime import flow_run

            params = flow_run.parameters
            from specstress.runspec import load_run_spec

            run = load_run_spec(params["spec_path"], params.get("overrides")).name
        except Exception:  # noqa: BLE001
            run = "run"
        return f"{run}-{stage}-{time.strftime('%H%M%S')}"

    return name


def make_stage_flow(stage_name: str) -> Any:
    @flow(name=f"stage-{stage_name.replace('_', '-')}", flow_run_name=_name_for(stage_name),
          task_runner=ThreadPoolTaskRunner(max_workers=4))
    def stage_flow(spec_path: str, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                   emulator_url: str | None = None, spent_before: float = 0.0, quiet: bool = False,
                   dask_address: str | None = None, resend_errors: bool = False) -> dict[str, Any]:
        from flows.stress_test import emulator_for
        from specstress.providers.engine import close_engine

        ctx = RunContext.create(spec_path, overrides, run_id=run_id, emulator_url=emulator_url, quiet=quiet,
                                resend_errors=resend_errors)
        ctx.spent_before = spent_before
        ctx.dask_address = dask_address
        standalone = run_id is None
        if standalone:  # a stage deployment run on its own: the same checks as a whole run, first
            from specstress import planning

            planning.preflight(ctx.spec, ctx.emulator_url or "http://emulator.invalid")
            ctx.spent_before = planning.spent_before(ctx)
            planning.check_budget(ctx, [r for r in planning.plan(ctx) if r.stage == stage_name])
        with emulator_for(ctx):
            try:
                return execute_stage(ctx, stage_by_name(stage_name), artefact_ids(ctx.spec))
            finally:
                if standalone:
                    close_engine(ctx.run_id)

    stage_flow.__doc__ = f"Build the {stage_name} artefact of a run spec (skipped when it already exists)."
    return stage_flow


STAGE_FLOWS: dict[str, Any] = {s.name: make_stage_flow(s.name) for s in all_stages()}

# Module-level names, so that prefect.yaml entrypoints can point at each stage flow.
taxonomy_flow = STAGE_FLOWS["taxonomy"]
pairs_flow = STAGE_FLOWS["pairs"]
scenarios_flow = STAGE_FLOWS["scenarios"]
embeddings_flow = STAGE_FLOWS["embeddings"]
diversity_flow = STAGE_FLOWS["diversity"]
responses_flow = STAGE_FLOWS["responses"]
spectra_flow = STAGE_FLOWS["spectra"]
classifications_flow = STAGE_FLOWS["classifications"]
position_grid_flow = STAGE_FLOWS["position_grid"]
disagreement_flow = STAGE_FLOWS["disagreement"]
value_priorities_flow = STAGE_FLOWS["value_priorities"]
outliers_flow = STAGE_FLOWS["outliers"]
high_disagreement_flow = STAGE_FLOWS["high_disagreement"]
topics_flow = STAGE_FLOWS["topics"]
refusals_flow = STAGE_FLOWS["refusals"]
priority_freeform_flow = STAGE_FLOWS["priority_freeform"]
compliance_flow = STAGE_FLOWS["compliance"]


def run_stage_subflow(stage_name: str, ctx: RunContext) -> dict[str, Any]:
    """Run a stage as a subflow of the current flow, with the run's task runner."""
    f = STAGE_FLOWS[stage_name].with_options(task_runner=task_runner_for(ctx))
    return f(ctx.spec_path, ctx.overrides or None, run_id=ctx.run_id, emulator_url=ctx.emulator_url,
             spent_before=ctx.spent_before, quiet=ctx.quiet, dask_address=ctx.dask_address,
             resend_errors=ctx.resend_errors)
