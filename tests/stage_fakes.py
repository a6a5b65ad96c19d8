"""Fakes for unit-testing stages without Prefect, HTTP or the engine: a run context on a temporary
warehouse, input tables built from the stages' own schemas, a loader that also serves Parquet
paths (for SQL stages), and a scripted ``send`` that answers each CallRequest with the outcome a
test chooses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from specstress.context import RunContext
from specstress.domain import POSITION_LABELS, CallRequest, CallResult, Outcome, Usage
from specstress.tasks.base import Inputs

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "runs" / "demo.yaml"


def make_ctx(tmp: Path, **overrides: Any) -> RunContext:
    """A RunContext of the demo spec on a warehouse in ``tmp`` (dotted overrides as keyword pairs:
    pass a dict through ``**{"pairs.count": 3}``). No Prefect, no emulator."""
    return RunContext.create(DEMO, {"warehouse": str(tmp / "warehouse"), **overrides}, run_id="unit-test")


# ---------------------------------------------------------------------- inputs


class FakeLoader:
    """Loads the tables a test built; ``paths`` writes them as Parquet (what a SQL stage reads)."""

    def __init__(self, tables: dict[str, pa.Table], tmp: Path | None = None) -> None:
        self.tables = tables
        self.tmp = tmp
        self.loaded: list[str] = []

    def __call__(self, stage: str, artefact_id: str) -> pa.Table:
        self.loaded.append(stage)
        return self.tables[stage]

    def paths(self, stage: str, artefact_id: str) -> list[str]:
        assert self.tmp is not None, "a SQL stage needs FakeLoader(tables, tmp) to write Parquet"
        folder = self.tmp / "parts" / stage / artefact_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "part-00000.parquet"
        pq.write_table(self.tables[stage], path)
        return [str(path)]


def make_inputs(tables: dict[str, pa.Table], tmp: Path | None = None) -> Inputs:
    return Inputs({name: f"{name[:4]}-unit" for name in tables}, FakeLoader(tables, tmp))


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows -> a table of exactly ``schema`` (a missing column is null)."""
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def pair_row(pair_id: str, v1: str, v2: str, cat1: str = "Cat A", cat2: str = "Cat B") -> dict[str, Any]:
    return {"pair_id": pair_id, "value1": v1, "value2": v2, "value1_id": "v_" + v1[:6], "value2_id": "v_" + v2[:6],
            "value1_description": f"about {v1}", "value2_description": f"about {v2}",
            "category1": cat1, "category2": cat2, "top_category1": "Top " + cat1, "top_category2": "Top " + cat2}


def scenario_row(sid: str, pair_id: str, query: str | None, nudge: str = "neutral", status: str = "ok",
                 v1: str = "honesty", v2: str = "kindness") -> dict[str, Any]:
    return {"scenario_id": sid, "pair_id": pair_id, "nudge": nudge, "value1": v1, "value2": v2, "query": query,
            "generator": "writer-gpt", "status": status, "error": None if status == "ok" else status,
            "call_key": "k-" + sid}


def response_row(sid: str, model_id: str, outcome: str = "ok", response: str | None = "an answer") -> dict[str, Any]:
    return {"scenario_id": sid, "model_id": model_id, "provider": "openai", "model": "sim", "served_model": "sim",
            "outcome": outcome, "response": response if outcome in ("ok", "refusal") else None, "error": None,
            "input_tokens": 10, "output_tokens": 20, "cost_usd": 0.001, "call_key": f"k-{sid}-{model_id}"}


def spectrum(v1: str, v2: str) -> dict[str, Any]:
    """A valid parsed spectrum output (seven labelled strategies per value)."""
    def strategies(v: str) -> list[dict[str, Any]]:
        return [{"position": i, "label": POSITION_LABELS[i], "strategy": f"{v} strategy {i}"} for i in range(7)]

    return {"value1": {"value": v1, "strategies": strategies(v1)}, "value2": {"value": v2, "strategies": strategies(v2)}}


def spectra_rows(pair_id: str, v1: str, v2: str, status: str = "ok") -> list[dict[str, Any]]:
    if status != "ok":
        return [{"pair_id": pair_id, "value_slot": s, "value": v, "position": None, "label": None, "strategy": None,
                 "status": status, "attempts": 3, "call_key": "k"} for s, v in ((1, v1), (2, v2))]
    return [{"pair_id": pair_id, "value_slot": s, "value": v, "position": i, "label": POSITION_LABELS[i],
             "strategy": f"{v} strategy {i}", "status": "ok", "attempts": 1, "call_key": "k"}
            for s, v in ((1, v1), (2, v2)) for i in range(7)]


# ---------------------------------------------------------------------- results


def ok(req: CallRequest, parsed: Any = None, text: str | None = None) -> CallResult:
    return CallResult(key=req.key, outcome=Outcome.OK, text=text if text is not None else str(parsed), parsed=parsed,
                      usage=Usage(input_tokens=100, output_tokens=50), cost_usd=0.002, attempts=1,
                      served_model=req.model + "-served")


def failed(req: CallRequest, outcome: str, text: str | None = None) -> CallResult:
    """A final non-ok outcome: refusal, content_filter, truncated, parse_error or permanent_error."""
    return CallResult(key=req.key, outcome=outcome, text=text, error=f"{outcome} (scripted)", attempts=1,
                      served_model=req.model)


class ScriptedSend:
    """A ``send`` (list[CallRequest] -> list[CallResult]) answering each request with
    ``respond(request, batch_number)``. It records every batch it got."""

    def __init__(self, respond: Callable[[CallRequest, int], CallResult]) -> None:
        self.respond = respond
        self.batches: list[list[CallRequest]] = []

    def __call__(self, requests: list[CallRequest]) -> list[CallResult]:
        self.batches.append(list(requests))
        return [self.respond(r, len(self.batches) - 1) for r in requests]

    @property
    def requests(self) -> list[CallRequest]:
        return [r for b in self.batches for r in b]


class FakeEngine:
    """Stands in for the engine behind :class:`specstress.tasks.base.Sender` (stages that call
    ``get_engine`` themselves: taxonomy expansion, remote embeddings)."""

    def __init__(self, send: ScriptedSend) -> None:
        self.send = send
        self.stages: list[str] = []

    def run_calls(self, requests: list[CallRequest], stage: str) -> list[CallResult]:
        self.stages.append(stage)
        return self.send(requests)

    def flush(self) -> None:
        pass


def user_text(req: CallRequest) -> str:
    return "\n".join(m["content"] for m in req.messages)


def assert_schema(t: pa.Table, schema: pa.Schema) -> None:
    assert t.schema.equals(schema), f"{t.schema} != {schema}"
    t.cast(schema)  # and it casts


def statuses(t: pa.Table, column: str = "status") -> list[str]:
    vals = t.column(column).to_pylist()
    assert all(v for v in vals), f"a row without a {column}: {vals}"
    return vals


def by(rows: Iterable[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for r in rows:
        k = tuple(r[x] for x in keys) if len(keys) > 1 else r[keys[0]]
        assert k not in out, f"duplicate row for {k}"
        out[k] = r
    return out
