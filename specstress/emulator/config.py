"""The emulator's section of the run spec (``emulator:``): fault knobs, sim knobs and personas.

The emulator owns this schema; the core run spec only keeps the section (and reads whether the
emulator is ``enabled`` and its ``url``). Importing this module registers the schema with the
spec loader, which validates the section when a spec is loaded, so a bad persona is reported like
any other field: one SpecError naming ``file:line``, the field and the fix, before anything is sent.
Plugin and sim code read it typed through :func:`emulator_config`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from specstress.runspec import FieldError, RunSpec, register_section, section_config

SECTION = "emulator"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Outage(_Strict):
    model: str = "*"
    status: Literal[401, 404, 429, 500, 502, 503, 529] = 503
    seconds: Annotated[float, Field(ge=0)] | None = None
    requests: Annotated[int, Field(ge=0)] | None = None


class Faults(_Strict):
    """Fault knobs of the emulator. Rates are probabilities per request.

    Batch APIs (OpenAI Batch, Anthropic Message Batches, Gemini batches; see specstress/emulator/batches.py):

    * ``batch_delay_s``: a batch is pending for this long after it is created, then ends (its answers are
      computed when it ends, and do not depend on when that is).
    * ``batch_item_failure_rate``: the share of a batch's items that end errored (a server error), picked from
      the item's key and that key's submission number, so that a resubmitted key may succeed.
    * ``batch_expiry_rate``: the share of batches (picked from the batch id) that expire: the first half of
      their items is answered, the rest ends expired.
    * ``batch_poll_error_rate``: the share of batch status, result and list requests answered with a 503.
    * ``batch_outage_s``: for this many seconds after the faults are set, every batch endpoint (file upload,
      create, status, results, cancel, list) answers 503.

    Prompt caching (in the usage the providers report): ``cache_min_tokens`` is the shortest cacheable prefix.
    Anthropic caches the system prompt through its last ``cache_control`` block (``cache_creation_input_tokens``
    the first time, ``cache_read_input_tokens`` afterwards; ``input_tokens`` counts the rest); OpenAI (per
    model and ``prompt_cache_key``) and Gemini (per model) cache a system prompt seen before, reported as
    ``cached_tokens`` (a multiple of 128) and ``cachedContentTokenCount``.
    """

    rate_429: Annotated[float, Field(ge=0, le=1)] = 0.0
    retry_after_s: Annotated[float, Field(ge=0)] = 0.2
    rate_500: Annotated[float, Field(ge=0, le=1)] = 0.0
    rate_503: Annotated[float, Field(ge=0, le=1)] = 0.0
    rate_529: Annotated[float, Field(ge=0, le=1)] = 0.0
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    latency_jitter_ms: Annotated[float, Field(ge=0)] = 0.0
    hang_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    hang_s: Annotated[float, Field(ge=0)] = 30.0
    malformed_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    refusal_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    truncation_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    rpm: dict[str, float] = Field(default_factory=dict)
    tpm: dict[str, float] = Field(default_factory=dict)
    outages: list[Outage] = Field(default_factory=list)
    usage_multiplier: Annotated[float, Field(gt=0)] = 1.0  # report more tokens than produced: costlier than planned
    echo_auth_rate: Annotated[float, Field(ge=0, le=1)] = 0.0  # a 400 whose body echoes the credential sent
    #: judges' structured outputs made hostile (injected instructions, forged ids, huge or control-character
    #: text; see specstress/emulator/hostile.py), picked by call key
    hostile_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    batch_delay_s: Annotated[float, Field(ge=0)] = 1.0
    batch_item_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    batch_expiry_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    batch_poll_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    batch_outage_s: Annotated[float, Field(ge=0)] = 0.0
    cache_min_tokens: Annotated[int, Field(ge=0)] = 1024


class Persona(_Strict):
    """A simulated responder. Weights are per level-2 category (unlisted categories weigh 0)."""

    name: str
    weights: dict[str, float] = Field(default_factory=dict)
    priority_order: list[str] | None = None
    nudge_susceptibility: Annotated[float, Field(ge=0, le=1)] = 0.3
    refusal: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    noise: Annotated[float, Field(ge=0, le=5)] = 0.3

    def category_weights(self) -> dict[str, float]:
        w = dict(self.weights)
        if self.priority_order:
            n = len(self.priority_order)
            for i, cat in enumerate(self.priority_order):
                w.setdefault(cat, 2.0 - 4.0 * i / max(1, n - 1))
        return w


class SimSpec(_Strict):
    """Knobs of the simulated generator and judges (never an answer key)."""

    judge_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.95
    #: how the matcher errs when it errs: off_by_one | uniform | central | swap (see specstress.sim.judges)
    judge_error: Literal["off_by_one", "uniform", "central", "swap"] = "off_by_one"
    #: the matcher's order bias: the answer shown at slot k of n (0 = first) is placed b * (n-1-k) / (n-1)
    #: positions higher on both spectra (rounded stochastically, clipped to 0..6); 0 = none, < 0 favours the
    #: last-shown answers (see specstress.sim.judges.order_shift)
    judge_order_bias: Annotated[float, Field(ge=-6, le=6)] = 0.0
    generator_refusal_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    generator_truncation_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    rubric_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    topic_rate: Annotated[float, Field(ge=0, le=1)] = 0.35
    strictness: dict[str, float] = Field(default_factory=dict)

    #: Knobs added after call keys were first published: left out of the model identity while at their
    #: default, so that adding a knob changes no existing call key (a new knob must be listed here).
    IDENTITY_OPTIONAL: ClassVar[tuple[str, ...]] = ("judge_error", "judge_order_bias")

    def identity(self) -> dict[str, Any]:
        """What of the sim knobs shapes the emulated models' answers (enters their model identity)."""
        data = self.model_dump(mode="json")
        for name in self.IDENTITY_OPTIONAL:
            if data.get(name) == type(self).model_fields[name].default:
                data.pop(name, None)
        return data


class EmulatorConfig(_Strict):
    """The whole ``emulator:`` section. ``enabled`` and ``url`` are the two facts core reads too."""

    enabled: bool = False
    url: str | None = None
    seed: int = 0
    faults: Faults = Field(default_factory=Faults)
    sim: SimSpec = Field(default_factory=SimSpec)
    personas: list[Persona] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_personas(self) -> EmulatorConfig:
        names = [p.name for p in self.personas]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise FieldError(("personas",), f"duplicate persona name {dup!r}", "name each persona once")
        return self

    def persona(self, name: str) -> Persona | None:
        """The persona answering as model ``name`` (None: the sim's default responder)."""
        for p in self.personas:
            if p.name == name:
                return p
        return None


def emulator_config(spec: RunSpec) -> EmulatorConfig:
    """``spec``'s ``emulator:`` section, validated (once) by this schema."""
    config = section_config(spec, SECTION)
    if not isinstance(config, EmulatorConfig):  # another plugin claimed the section
        raise TypeError(f"the {SECTION!r} section is not an EmulatorConfig but {type(config).__name__}")
    return config


register_section(SECTION, EmulatorConfig)
