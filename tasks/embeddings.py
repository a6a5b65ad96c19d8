"""Stage 4: one embedding per usable scenario, from the offline hashing embedder or from a
provider's embedding model (OpenAI or Gemini), batched, through the ledger."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest
from specstress.embedding import hashed_embeddings
from specstress.providers.services import endpoint_identity
from specstress.runspec import RunSpec
from specstress.tasks.base import EstimateRow, Inputs, Sender, Stage, models_config
from specstress.tasks.registry import register_stage

EMBEDDINGS_SCHEMA = pa.schema([("scenario_id", pa.string()), ("vector", pa.list_(pa.float32()))])


@register_stage
class EmbeddingsStage(Stage):
    name = "embeddings"
    version = "1"
    inputs = ("scenarios",)
    schema = EMBEDDINGS_SCHEMA

    def __init__(self) -> None:
        self.kind = "compute"

    def uses_model(self, spec: RunSpec) -> bool:
        return spec.roles.embedder.kind == "model"

    def models_used(self, spec: RunSpec) -> list[str]:
        return [spec.roles.embedder.model] if spec.roles.embedder.model else []

    def config(self, spec: RunSpec) -> dict[str, Any]:
        e = spec.roles.embedder
        cfg: dict[str, Any] = {"kind": e.kind, "dimensions": e.dimensions}
        if e.kind == "model":
            cfg["model"] = models_config(spec, [e.model or ""])
            cfg["batch_size"] = e.batch_size
        return cfg

    def _scenarios(self, inputs: Inputs) -> tuple[list[str], list[str]]:
        t = inputs.table("scenarios", ["scenario_id", "query", "status"]).to_pylist()
        ok = [r for r in t if r["status"] == "ok"]
        return [r["scenario_id"] for r in ok], [r["query"] for r in ok]

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        ids, texts = self._scenarios(inputs)
        e = spec.roles.embedder
        if e.kind == "local":
            vecs = hashed_embeddings(texts, e.dimensions)
        else:
            vecs = self._embed_remote(ctx, texts)
        return pa.table({"scenario_id": ids,
                         "vector": pa.array([v.tolist() for v in vecs], type=pa.list_(pa.float32()))},
                        schema=EMBEDDINGS_SCHEMA)

    def requests(self, spec: RunSpec, texts: list[str]) -> list[CallRequest]:
        e = spec.roles.embedder
        entry = spec.model(e.model or "")
        out = []
        for i in range(0, len(texts), e.batch_size):
            batch = texts[i:i + e.batch_size]
            out.append(CallRequest(provider=entry.provider, model=entry.model, kind="embedding",
                                   messages=[{"role": "user", "content": t} for t in batch],
                                   params={"dimensions": e.dimensions}, endpoint=endpoint_identity(spec, entry.id),
                                   purpose=self.name, model_id=entry.id))
        return out

    def _embed_remote(self, ctx: RunContext, texts: list[str]) -> np.ndarray:
        from specstress.providers.engine import get_engine

        reqs = self.requests(ctx.spec, texts)
        results = Sender(get_engine(ctx), self.name)(reqs)
        rows: list[list[float]] = []
        for req, res in zip(reqs, results, strict=True):
            vectors = (res.parsed or {}).get("vectors") if res.parsed else ([res.vector] if res.vector else None)
            if not res.ok or not vectors or len(vectors) != len(req.messages):
                raise RuntimeError(f"embedding call {req.key[:12]} failed: {res.outcome} {res.error}")
            rows.extend(vectors)
        arr = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return arr / norms

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        if not self.uses_model(spec):
            return []
        n = counts.get("scenarios", spec.pairs.count * 3)
        calls = -(-n // spec.roles.embedder.batch_size)
        return [EstimateRow(self.name, spec.roles.embedder.model or "", calls, n * 90, 0)]
