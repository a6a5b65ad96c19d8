"""One Prefect flow per registered stage, generated from the stage registry.

Each can run on its own: its parameters are the run-spec path and overrides; it computes every
artefact id from the spec, checks that its inputs exist, and builds its own artefact unless it
already exists. The ``stage`` flow is the one deployment entrypoint for all of them (its ``stage``
parameter names the stage), so a new stage needs no new deployment; ``<stage>_flow`` names stay
importable for entrypoints that point at one stage.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from specstress.context import RunContext
from specstress.errors import SpecError
from specstress.flows import planning
from specstress.flows.runner import execute_stage, limit_share_for, task_runner_for
from specstress.providers.engine import close_engine
from specstress.providers.services import run_services
from specstress.runspec import load_run_spec
from specstress.tasks.registry import all_stages, artefact_ids, stage_by_name


def run_name_of(parameters: dict[str, Any]) -> str | None:
    """The run's name (``demo``, ``demo-3f2a1c``) from a flow run's ``spec_path`` and ``overrides``
    parameters; None when they do not make a valid spec (the flow itself then reports why)."""
    try:
        return load_run_spec(parameters["spec_path"], parameters.get("overrides") or None).run_name
    except Exception:  # noqa: BLE001 - a name is never worth failing for
        return None


def _current_parameters() -> dict[str, Any]:
    from prefect.runtime import flow_run

    return dict(flow_run.parameters or {})


def parent_run_name(**_: Any) -> str:
    """``flow_run_name`` of the parent flow: the run's name, the same in Prefect as in the warehouse
    (``specstress runs``, ``--run NAME``)."""
    return run_name_of(_current_parameters()) or "stress-test"


def _name_for(stage: str) -> Any:
    def name(**_: Any) -> str:
        return f"{run_name_of(_current_parameters()) or 'run'}-{stage}"

    return name


def overrides_source() -> str:
    """Where a flow's ``overrides`` came from, for the error that names a bad one."""
    try:
        from prefect.runtime import deployment

        if deployment.name:
            return f"the overrides parameter of deployment {deployment.name!r}"
    except Exception:  # noqa: BLE001
        pass
    return "the flow's overrides parameter"


def make_stage_flow(stage_name: str) -> Any:
    @flow(name=f"stage-{stage_name.replace('_', '-')}", flow_run_name=_name_for(stage_name),
          task_runner=ThreadPoolTaskRunner(max_workers=4))
    def stage_flow(spec_path: str, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                   emulator_url: str | None = None, spent_before: float = 0.0, quiet: bool = False,
                   dask_address: str | None = None, resend_errors: bool = False,
                   limit_share: int | None = None) -> dict[str, Any]:
        ctx = RunContext.create(spec_path, overrides, run_id=run_id, emulator_url=emulator_url, quiet=quiet,
                                resend_errors=resend_errors, overrides_from=overrides_source())
        ctx.spent_before = spent_before
        ctx.dask_address = dask_address
        ctx.limit_share = limit_share or limit_share_for(ctx)   # Dask workers split every model's limits
        standalone = run_id is None
        if standalone:  # a stage deployment run on its own: the same checks as a whole run, first
            planning.preflight(ctx.spec, ctx.emulator_url or "http://emulator.invalid")
            ctx.spent_before = planning.spent_before(ctx)
            planning.check_budget(ctx, [r for r in planning.plan(ctx) if r.stage == stage_name])
        with run_services(ctx.spec, ctx.emulator_url, quiet) as services:
            ctx.emulator_url = ctx.emulator_url or services.url
            try:
                return execute_stage(ctx, stage_by_name(stage_name), artefact_ids(ctx.spec))
            finally:
                if standalone:
                    close_engine(ctx.run_id)

    stage_flow.__doc__ = f"Build the {stage_name} artefact of a run spec (skipped when it already exists)."
    return stage_flow


_FLOWS: dict[str, Any] = {}


def stage_flows() -> dict[str, Any]:
    """Stage name -> its flow, for every registered stage (built once per stage, so a stage registered
    later, such as a plugin's, gets its flow too; an unregistered stage's flow is dropped)."""
    names = [s.name for s in all_stages()]
    for name in names:
        if name not in _FLOWS:
            _FLOWS[name] = make_stage_flow(name)
    return {name: _FLOWS[name] for name in names}


def __getattr__(name: str) -> Any:
    """``taxonomy_flow``, ``disagreement_flow``, ...: one module attribute per registered stage."""
    if name.endswith("_flow"):
        flows = stage_flows()
        if name[: -len("_flow")] in flows:
            return flows[name[: -len("_flow")]]
    raise AttributeError(name)


@flow(name="stage", flow_run_name=lambda **_: f"stage-{time.strftime('%H%M%S')}")
def stage(spec_path: str, stage: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build one stage's artefact of a run spec (its inputs must exist); ``stage`` names the stage."""
    flows = stage_flows()
    if stage not in flows:
        raise SpecError(f"unknown stage {stage!r}. Fix: use one of {', '.join(flows)}.")
    return flows[stage](spec_path, overrides)


def run_stage_subflow(stage_name: str, ctx: RunContext) -> dict[str, Any]:
    """Run a stage as a subflow of the current flow, with the run's task runner."""
    f = stage_flows()[stage_name].with_options(task_runner=task_runner_for(ctx))
    return f(ctx.spec_path, ctx.overrides or None, run_id=ctx.run_id, emulator_url=ctx.emulator_url,
             spent_before=ctx.spent_before, quiet=ctx.quiet, dask_address=ctx.dask_address,
             resend_errors=ctx.resend_errors, limit_share=limit_share_for(ctx))
