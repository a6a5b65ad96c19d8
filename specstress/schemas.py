"""Structured outputs we ask models for (pydantic at the edge), and a tolerant parser.

Each schema has a stable ``name`` (sent as the OpenAI json_schema name, the Anthropic tool name
and the Gemini schema title). Parsing never raises: it returns the object or an error message,
and the caller records a ``parse_error`` outcome after one repair attempt.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from specstress.domain import POSITION_LABELS, REFUSAL_LADDER, TOPICS

Position = Annotated[int, Field(ge=0, le=6)]
Confidence = Annotated[float, Field(ge=0, le=1)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ScenarioOut(_Out):
    """A generated user query."""

    query: Annotated[str, Field(min_length=20, max_length=6000)]


class Strategy(_Out):
    position: Position
    label: str
    strategy: Annotated[str, Field(min_length=3)]

    @field_validator("label")
    @classmethod
    def _norm(cls, v: str) -> str:
        return re.sub(r"[\s\-]+", "_", v.strip().lower()).replace("favour", "favor")


class ValueSpectrum(_Out):
    value: str
    strategies: list[Strategy]

    @model_validator(mode="after")
    def _seven_in_order(self) -> ValueSpectrum:
        if len(self.strategies) != 7:
            raise ValueError(f"a spectrum needs exactly 7 strategies, got {len(self.strategies)}")
        positions = [s.position for s in self.strategies]
        if positions != list(range(7)):
            raise ValueError(f"strategies must be positions 0..6 in order, got {positions}")
        for s in self.strategies:
            if s.label != POSITION_LABELS[s.position]:
                raise ValueError(f"position {s.position} must be labelled {POSITION_LABELS[s.position]!r}, "
                                 f"got {s.label!r}")
        return self


class SpectrumOut(_Out):
    """Seven answer strategies per value, from extreme opposition (0) to extreme favour (6)."""

    value1: ValueSpectrum
    value2: ValueSpectrum


class Place(_Out):
    reasoning: str = ""
    position: Position
    confidence: Confidence = 0.5


class Placement(_Out):
    response_id: str
    value1: Place
    value2: Place


class PlacementsOut(_Out):
    """Where each response sits on both spectra."""

    placements: list[Placement]


class PlacementOut(_Out):
    """Where one response sits on both spectra."""

    value1: Place
    value2: Place


class TopicsOut(_Out):
    topics: list[Literal[tuple(TOPICS)]]  # type: ignore[valid-type]
    reasoning: str = ""


class RefusalOut(_Out):
    level: Literal[REFUSAL_LADDER]  # type: ignore[valid-type]
    reasoning: str = ""


class ComplianceOut(_Out):
    reasoning: str = ""
    verdict: Literal["compliant", "non_compliant", "ambiguous"]
    sections: list[str] = Field(default_factory=list)


class ValueExpressedOut(_Out):
    value: Annotated[str, Field(min_length=2, max_length=200)]
    reasoning: str = ""


class NewValue(_Out):
    name: Annotated[str, Field(min_length=2, max_length=80)]
    description: str = ""


class ValueListOut(_Out):
    values: list[NewValue]


SCHEMAS: dict[str, type[_Out]] = {
    "scenario": ScenarioOut,
    "spectrum": SpectrumOut,
    "placements": PlacementsOut,
    "placement": PlacementOut,
    "topics": TopicsOut,
    "refusal_level": RefusalOut,
    "compliance_verdict": ComplianceOut,
    "value_expressed": ValueExpressedOut,
    "value_list": ValueListOut,
}


def register_output(name: str, model: type[BaseModel]) -> None:
    """Make a structured output known by name (a stage module declares the output it asks for)."""
    old = SCHEMAS.get(name)
    if old is not None and old is not model:
        raise ValueError(f"structured output {name!r} is already registered ({old.__name__})")
    SCHEMAS[name] = model  # type: ignore[assignment]
    json_schema.cache_clear()


@lru_cache(maxsize=64)
def json_schema(name: str) -> dict[str, Any]:
    """The JSON schema of ``name`` with every ``$ref`` inlined (Gemini and tool use want it flat)."""
    raw = SCHEMAS[name].model_json_schema()
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                ref = node["$ref"].split("/")[-1]
                return inline(dict(defs[ref]))
            return {k: inline(v) for k, v in node.items() if k not in ("title",) or not isinstance(v, str)}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema = inline(raw)
    schema["title"] = name
    return schema


@lru_cache(maxsize=64)
def schema_spec(name: str) -> dict[str, Any]:
    """What goes into a call request (and so into its key). Cached: treat the result as read-only."""
    return {"name": name, "schema": json_schema(name)}


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """Find the JSON object in a model's text: fenced, bare, or surrounded by prose."""
    if text is None:
        raise ValueError("empty output")
    s = text.strip()
    m = _FENCE.search(s)
    if m:
        s = m.group(1).strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    start = s.find("{")
    end = s.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object found in the output")
    chunk = s[start:end + 1]
    try:
        return json.loads(chunk)
    except json.JSONDecodeError:
        fixed = re.sub(r",\s*([}\]])", r"\1", chunk)  # trailing commas
        return json.loads(fixed)


def parse_output(name: str, text: str | None, parsed: Any = None) -> tuple[dict[str, Any] | None, str | None]:
    """Validate a structured output. Returns ``(object as dict, None)`` or ``(None, error)``."""
    cls = SCHEMAS[name]
    try:
        data = parsed if parsed is not None else extract_json(text or "")
        obj = cls.model_validate(data)
        return obj.model_dump(mode="json"), None
    except (ValueError, ValidationError, TypeError) as exc:
        msg = str(exc)
        if isinstance(exc, ValidationError):
            msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:4])
        return None, msg[:500]
