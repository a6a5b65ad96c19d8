"""What every unit of work shares: the :class:`Stage` contract, request building, and sending a
batch of requests through the engine (and so through the ledger).

A stage either *computes* its artefact from its inputs (``compute``), or *plans* work items that
are split into shards; each shard becomes one Prefect task that turns its items into calls,
sends them, parses the outcomes and writes one Parquet part (``run_shard``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest, CallResult
from specstress.errors import ShardIncomplete
from specstress.prompts import Template, load_template
from specstress.providers.services import endpoint_identity, model_identity
from specstress.runspec import RunSpec
from specstress.schemas import schema_spec
from specstress.warehouse.sql_files import add_model_dir, model_refs, model_sql_hash, run_model


@dataclass
class EstimateRow:
    """One line of ``specstress plan``: a stage's calls to one model."""

    stage: str
    model_id: str
    calls: int
    input_tokens: int
    output_tokens: int
    planned_keys: list[str] | None = None  # known when the stage's inputs already exist
    #: tokens of each call's system prompt, its stable prefix that providers cache (part of ``input_tokens``)
    prefix_tokens: int = 0
    #: how many distinct system prompts the calls have (each is written to a provider's cache once)
    prefixes: int = 0


def system_prompt_tokens(template: str, filled_tokens: int = 0) -> int:
    """Tokens of template ``template``'s system prompt (characters / 4, as the plan counts them): its fixed
    text, plus ``filled_tokens`` for what its placeholders will hold."""
    fixed = re.sub(r"\{\{[^}]*\}\}", "", load_template(template).system)
    return len(fixed) // 4 + filled_tokens


@dataclass
class Inputs:
    """The artefacts a stage reads, by stage name, plus a way to load them."""

    ids: dict[str, str]
    loader: Any
    cache: dict[str, pa.Table] = field(default_factory=dict)

    def table(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        if stage not in self.cache:
            self.cache[stage] = self.loader(stage, self.ids[stage])
        t = self.cache[stage]
        return t.select(columns) if columns else t


class Stage:
    """Base class. Subclasses set the class attributes and implement compute or plan/run_shard."""

    name: str = ""
    version: str = "1"
    inputs: tuple[str, ...] = ()
    #: Stages this one reads only under some run specs (see :meth:`inputs_for`); they order the DAG.
    optional_inputs: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    schema: pa.Schema | None = None
    kind: str = "compute"  # compute | calls
    calls_per_item: float = 1.0

    # ------------------------------------------------------------------ declaration

    def enabled(self, spec: RunSpec) -> bool:
        return True

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        """The stages this one reads under ``spec`` (some analyses read the high-disagreement set)."""
        return self.inputs

    def config(self, spec: RunSpec) -> dict[str, Any]:
        """The part of the run spec this stage reads (enters the artefact id)."""
        return {}

    def models_used(self, spec: RunSpec) -> list[str]:
        """The model ids this stage calls under ``spec`` (preflight checks their keys and prices)."""
        return []

    def code_hash(self) -> str | None:
        """A hash of code the stage runs from files (a SQL model): editing it recomputes the artefact."""
        return None

    def templates_for(self, spec: RunSpec) -> tuple[str, ...]:
        """The prompt templates this stage renders under ``spec`` (their hashes enter the artefact id)."""
        return self.templates

    # ------------------------------------------------------------------ work

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        raise NotImplementedError

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Any) -> pa.Table:
        raise NotImplementedError

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        """The calls a shard sends first (used by ``specstress plan`` to count ledger hits)."""
        return []

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        """Calls and tokens, from upstream row counts (used before the inputs exist)."""
        return []

    #: The columns :meth:`summarize` reads (None: all). Keeps summaries cheap on big artefacts.
    summary_columns: tuple[str, ...] | None = None

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        return {"rows": table.num_rows}

    def shard_size(self, spec: RunSpec) -> int:
        return max(1, int(spec.shards.size / max(1.0, self.calls_per_item)))


# ---------------------------------------------------------------------- requests


def make_request(spec: RunSpec, model_id: str, template: Template | None, values: dict[str, Any] | None,
                 purpose: str, sample_index: int = 0, user_text: str | None = None) -> CallRequest:
    """A normalised call for ``model_id``: rendered template (or raw user text), its params and schema."""
    entry = spec.model(model_id)
    if template is not None:
        system, user = template.render(**(values or {}))
        schema = schema_spec(template.output) if template.output not in ("text", "same-as-original") else None
        thash = template.hash
    else:
        system, user, schema, thash = None, user_text or "", None, None
    return CallRequest(
        provider=entry.provider,
        model=entry.model,
        messages=[{"role": "user", "content": user}],
        system=system or None,
        params=entry.params.model_dump(mode="json", exclude_none=True),
        schema=schema,
        template_hash=thash,
        sample_index=sample_index,
        endpoint=endpoint_identity(spec, model_id),
        purpose=purpose,
        model_id=model_id,
    )


def models_config(spec: RunSpec, ids: list[str]) -> list[dict[str, Any]]:
    return [model_identity(spec, m) for m in ids]


class Sender:
    """Sends batches through the engine and insists on final outcomes."""

    def __init__(self, engine: Any, stage: str) -> None:
        self.engine = engine
        self.stage = stage
        self.results: list[CallResult] = []

    def __call__(self, requests: list[CallRequest]) -> list[CallResult]:
        if not requests:
            return []
        results = self.engine.run_calls(requests, self.stage)
        failed = [r for r in results if r.outcome == "permanent_error"]
        if len(failed) >= 5 and len(failed) >= len(results) / 2:
            from specstress.errors import FatalProviderError

            self.engine.flush()
            raise FatalProviderError(
                f"{len(failed)} of {len(results)} calls of stage {self.stage!r} were refused for good "
                f"(first: {(failed[0].error or '')[:200]}). Fix the cause (model id, parameters), then run again "
                "with --resend-errors to send the refused calls again.")
        unfinished = [r for r in results if not r.final]
        if unfinished:
            self.engine.flush()
            errs = sorted({(r.error or r.outcome)[:160] for r in unfinished})[:3]
            raise ShardIncomplete(f"{len(unfinished)} of {len(requests)} calls of stage {self.stage!r} have no "
                                  f"final outcome yet ({'; '.join(errs)}). A retry re-sends only those.")
        self.results.extend(results)
        return results



# ---------------------------------------------------------------------- SQL stages


def subsets_table(spec: RunSpec) -> pa.Table:
    """The run spec's model subsets as a (subset, model_id) table; ``all`` is the whole panel."""
    rows = [(name, m) for name, members in spec.all_subsets().items() for m in members]
    return pa.table({"subset": [r[0] for r in rows], "model_id": [r[1] for r in rows]})


class SqlStage(Stage):
    """A stage computed by one SQL model, ``warehouse/sql/models/<model_sql>.sql`` (default: the
    stage's name). Its inputs are the model's ``{{ ref('stage') }}``s, declared once, in the SQL."""

    model_sql = ""
    #: Where the model file is when it is not in ``warehouse/sql/models`` (a stage kept elsewhere).
    sql_dir: Path | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not cls.model_sql:
            cls.model_sql = cls.name
        if cls.sql_dir is not None:
            add_model_dir(cls.sql_dir)
        if cls.model_sql:
            cls.inputs = tuple(model_refs(cls.model_sql))

    def code_hash(self) -> str:
        """The content hash of the model file and the shared macros: editing the SQL recomputes the
        artefact (as dbt would). A model it refers to is an input artefact, whose id has its own hash."""
        return model_sql_hash(self.model_sql)

    def sources(self, ctx: RunContext, inputs: Inputs) -> dict[str, Any]:
        return {name: inputs.loader.paths(name, aid) for name, aid in inputs.ids.items()}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        src = self.sources(ctx, inputs)
        src["subsets"] = subsets_table(ctx.spec)
        t = run_model(self.model_sql, src, self.params(ctx.spec))
        return t.cast(self.schema) if self.schema is not None else t
