"""Simulated responders with planted value weights.

A persona reads the user's request, recognises which taxonomy values it names and whether the
user pushes one of them, and answers in prose that states its stance on each value. Its stance
comes from its weights over level-2 categories, its susceptibility to the user's push, a topic-
dependent refusal propensity, and noise. Because the weights are known, the pipeline's recovered
value priorities and disagreements can be checked against them (``specstress validate``).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from specstress.emulator.config import Persona
from specstress.sim import lexicon
from specstress.taxonomy import ValueIndex

#: Scale of the preference -> position curve, and the push a nudge gives (times susceptibility).
PREF_SCALE = 1.5
NUDGE_PUSH = 2.0
_NUDGE_RE = re.compile(lexicon.NUDGE_PATTERN, re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    """What a simulated model understands of a request."""

    values: list[str]
    nudge_towards: str | None
    topics: list[str]


def read_request(text: str, index: ValueIndex) -> Reading:
    values = index.find(text)
    nudge = None
    m = _NUDGE_RE.search(text or "")
    if m:
        found = index.find(m.group(1))
        nudge = found[0] if found else None
    low = (text or "").lower()
    topics = [slug for slug, (_, words) in lexicon.TOPIC_WORDS.items() if any(w in low for w in words)]
    return Reading(values=values, nudge_towards=nudge, topics=topics)


def preference(persona: Persona, cat1: str | None, cat2: str | None, nudge_sign: float) -> float:
    """Noise-free preference for value 1 over value 2 (positive favours value 1)."""
    w = persona.category_weights()
    base = w.get(cat1 or "", 0.0) - w.get(cat2 or "", 0.0)
    return base + persona.nudge_susceptibility * NUDGE_PUSH * nudge_sign


def positions_from_preference(pref: float, mirror_noise: float = 0.0) -> tuple[int, int]:
    p1 = 3 + 3 * math.tanh(pref / PREF_SCALE)
    p2 = 3 - 3 * math.tanh(pref / PREF_SCALE) + mirror_noise
    return _clip(p1), _clip(p2)


def expected_positions(persona: Persona, cat1: str | None, cat2: str | None, nudge: str) -> tuple[int, int]:
    """The planted truth: positions with zero noise. ``nudge`` is neutral/value1/value2."""
    sign = {"value1": 1.0, "value2": -1.0}.get(nudge, 0.0)
    return positions_from_preference(preference(persona, cat1, cat2, sign))


def _clip(x: float) -> int:
    return int(min(6, max(0, round(x))))


def persona_reply(persona: Persona, text: str, index: ValueIndex, rng: random.Random) -> tuple[str, dict[str, int]]:
    """The persona's answer to ``text`` and the stance it took (for the emulator's own stats only)."""
    reading = read_request(text, index)
    refuse_p = persona.refusal.get("default", 0.0)
    for t in reading.topics:
        refuse_p = max(refuse_p, persona.refusal.get(t, 0.0))
    if rng.random() < refuse_p:
        level = rng.choice((4, 5, 5, 6))
        return rng.choice(lexicon.REFUSALS[level]), {"refusal_level": level}
    if len(reading.values) < 2:
        opening = rng.choice(lexicon.OPENINGS)
        return (f"{opening} I would weigh the considerations on both sides evenly and look for a compromise. "
                f"{rng.choice(lexicon.CLOSINGS)}"), {}
    v1, v2 = reading.values[0], reading.values[1]
    c1, c2 = index.category(v1), index.category(v2)
    sign = 0.0
    if reading.nudge_towards == v1:
        sign = 1.0
    elif reading.nudge_towards == v2:
        sign = -1.0
    pref = preference(persona, c1, c2, sign) + rng.gauss(0.0, persona.noise)
    p1, p2 = positions_from_preference(pref, rng.gauss(0.0, persona.noise * 0.5))
    parts = [rng.choice(lexicon.OPENINGS)]
    if reading.topics and rng.random() < 0.3:
        parts.insert(0, lexicon.CAVEAT)
    parts.append(_sentence(rng.choice(lexicon.STANCE[p1][1]).format(v=v1)))
    parts.append(_sentence(rng.choice(lexicon.STANCE[p2][1]).format(v=v2)))
    parts.append(rng.choice(lexicon.CLOSINGS))
    return " ".join(parts), {"p1": p1, "p2": p2}


def _sentence(s: str) -> str:
    s = s.strip()
    s = s[0].upper() + s[1:]
    return s if s.endswith(".") else s + "."
