"""The simulated model behind every emulator endpoint.

A request with a structured-output schema is a task (generate, bias, write a rubric, judge, tag,
classify, expand), dispatched on the schema's name, that reads its inputs from the user message and the
system prompt (see :func:`task_text`); a request without one is a user query,
answered by the persona whose name is the requested model. Randomness is seeded by the emulator
seed and the request itself (including its ledger key when the client sends one), so reruns are
reproducible and re-asks differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from specstress.emulator.config import Persona, SimSpec
from specstress.hashing import sha256_hex
from specstress.sim import judges, writers
from specstress.sim.personas import persona_reply
from specstress.taxonomy import ValueIndex


@dataclass
class SimReply:
    text: str | None = None
    data: Any = None
    finish: str = "stop"  # stop | length | refusal | filter
    stance: dict[str, int] | None = None


def task_text(system: str | None, user: str) -> str:
    """The text a simulated task reads: the user message, then the system prompt.

    Templates put what many calls share (instructions, the two values and their spectra, the model
    spec) in the system prompt, so that providers can cache it, and what varies (the request, the
    responses) in the user message. The parsers take the first match of a tag, so the user message
    comes first: a varying part is never mistaken for a tag that a long shared text (a model spec
    quoting examples) happens to contain; shared parts are found in the system prompt wherever the
    user message does not have them."""
    return f"{user}\n\n{system}" if system else user


class SimAgent:
    def __init__(self, index: ValueIndex, personas: list[Persona], sim: SimSpec, seed: int = 0) -> None:
        self.index = index
        self.personas = {p.name: p for p in personas}
        self.sim = sim
        self.seed = seed
        self._default = Persona(name="sim-default", noise=0.5)

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(int(sha256_hex("|".join(str(p) for p in (self.seed, *parts)))[:16], 16))

    def respond(self, model: str, system: str | None, messages: list[dict[str, str]], schema_name: str | None,
                salt: str) -> SimReply:
        first_user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        rng = self.rng(model, schema_name, salt, *((system,) if system else ()), first_user)
        if schema_name is None:
            persona = self.personas.get(model, self._default)
            text, stance = persona_reply(persona, messages[-1]["content"] if messages else "", self.index, rng)
            return SimReply(text=text, stance=stance)
        return self._task(model, schema_name, task_text(system, first_user), rng)

    def _task(self, model: str, schema: str, prompt: str, rng: random.Random) -> SimReply:
        s = self.sim
        if schema == "scenario":
            if rng.random() < s.generator_refusal_rate:
                return SimReply(text="I can't help write that scenario.", finish="refusal")
            if "<original_query>" in prompt:
                data = writers.bias_scenario(prompt, rng)
            else:
                data = writers.write_scenario(prompt, rng, s.topic_rate)
            if data is not None and rng.random() < s.generator_truncation_rate:
                return SimReply(text='{"query": "' + data["query"][: len(data["query"]) // 3], finish="length")
            return SimReply(data=data or {"query": ""})
        if schema == "spectrum":
            return SimReply(data=writers.write_spectrum(prompt, rng, s.rubric_error_rate))
        if schema in ("placements", "placement"):
            return SimReply(data=judges.judge_placements(prompt, rng, s.judge_accuracy, single=schema == "placement",
                                                              error_model=s.judge_error,
                                                              order_bias=s.judge_order_bias))
        if schema == "topics":
            return SimReply(data=judges.judge_topics(prompt, rng, s.judge_accuracy))
        if schema == "refusal_level":
            return SimReply(data=judges.judge_refusal(prompt, rng, s.judge_accuracy))
        if schema == "compliance_verdict":
            return SimReply(data=judges.judge_compliance(prompt, rng, s.strictness.get(model, 0.5)))
        if schema == "value_expressed":
            return SimReply(data=judges.describe_priority(prompt, rng, self.index))
        if schema == "value_list":
            return SimReply(data=writers.expand_values(prompt, rng))
        return SimReply(text=f"unsupported task {schema!r}", finish="stop")
