"""Position bias of a matcher: does where an answer stood in the shuffled order shown to the judge move where
the judge placed it?

The matcher shows each scenario's panel answers in a seeded random order (``presented_index`` 0 = shown
first). Under no bias, the mean placed position is the same at every presented slot. The test statistic is
the between-slot variance of the mean position, weighted by the placements per slot::

    statistic = sum_k n_k (mean_k - mean)^2 / N

Its null distribution comes from the randomisation itself: the presented slots are permuted among the
answers of the same scenario (so scenario difficulty and each scenario's set of slots stay fixed), a
response carrying all of its placements (both values) with it. ``p_value = (1 + #{permuted >= observed}) /
(1 + permutations)``, which is never 0 and is exact for the permutation test.

Pure numpy: the ``position_bias`` stage (``tasks/position_bias.py``) feeds it a run's placements. 1,000
permutations of 20,000 scenarios x 6 answers x 2 values take about 7 s on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Work per chunk of permutations (permutations x answers), to bound memory on large runs.
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class SlotTest:
    """One scope's result: per presented slot (``slots[i]``) its placements and mean position, then the test."""

    slots: np.ndarray          # the presented slots with at least one placement, ascending
    n: np.ndarray              # placements per slot
    mean: np.ndarray           # mean placed position per slot
    grand_mean: float
    spread: float              # max(mean) - min(mean)
    statistic: float           # n-weighted between-slot variance of the mean position
    p_value: float
    permutations: int
    scenarios: int             # scenarios with at least two placed answers (the ones the permutations move)


def between_slot_variance(slot: np.ndarray, position: np.ndarray, n_slots: int) -> np.ndarray:
    """``sum_k n_k (mean_k - mean)^2 / N`` for each row of ``slot`` (shape ``(B, R)`` or ``(R,)``)."""
    s = np.atleast_2d(slot)
    b, r = s.shape
    pos = np.asarray(position, dtype=float)
    flat = (np.arange(b)[:, None] * n_slots + s).ravel()
    sums = np.bincount(flat, weights=np.broadcast_to(pos, (b, r)).ravel(), minlength=b * n_slots).reshape(b, n_slots)
    counts = np.bincount(flat, minlength=b * n_slots).reshape(b, n_slots).astype(float)
    grand = pos.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), grand)
    return (counts * (means - grand) ** 2).sum(axis=1) / r


def _between(slot: np.ndarray, sums: np.ndarray, counts: np.ndarray, n_slots: int) -> np.ndarray:
    """:func:`between_slot_variance` from per-answer position sums and counts, for each row of ``slot``."""
    b, n = slot.shape
    flat = (np.arange(b)[:, None] * n_slots + slot).ravel()
    s = np.bincount(flat, weights=np.broadcast_to(sums, (b, n)).ravel(), minlength=b * n_slots).reshape(b, n_slots)
    c = np.bincount(flat, weights=np.broadcast_to(counts, (b, n)).ravel(), minlength=b * n_slots).reshape(b, n_slots)
    total = counts.sum()
    if not total:
        return np.zeros(b)
    grand = sums.sum() / total
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(c > 0, (s - c * grand) ** 2 / np.maximum(c, 1), 0.0)
    return dev.sum(axis=1) / total


def slot_tests(scenario: np.ndarray, answer: np.ndarray, slot: np.ndarray, position: np.ndarray,
               scopes: dict[str, np.ndarray], permutations: int = 1000, seed: int = 0) -> dict[str, SlotTest]:
    """Permutation tests of position bias, one per scope, all from the same permutations.

    Placements are rows: ``scenario`` and ``answer`` (any hashable codes; an answer is one response, the unit
    permuted), ``slot`` (its presented index, the same on every row of an answer) and ``position`` (0-6).
    ``scopes`` maps a name to a boolean mask over the rows (e.g. value 1, value 2, all). Deterministic in
    ``seed``.
    """
    scenario, answer = np.asarray(scenario), np.asarray(answer)
    slot, position = np.asarray(slot, dtype=np.int64), np.asarray(position, dtype=float)
    if len(slot) and slot.min() < 0:
        raise ValueError("presented slots must be >= 0")
    # answers (the units permuted): one entry each, sorted by scenario, so a scenario's answers are contiguous
    scen_code: dict[object, int] = {}
    ans_code: dict[tuple[int, object], int] = {}
    row_answer = np.empty(len(slot), dtype=np.int64)
    for i, (sc, an) in enumerate(zip(scenario.tolist(), answer.tolist(), strict=True)):
        c = scen_code.setdefault(sc, len(scen_code))
        row_answer[i] = ans_code.setdefault((c, an), len(ans_code))
    n_ans = len(ans_code)
    ans_scen = np.array([c for c, _ in ans_code], dtype=np.int64)
    ans_slot = np.full(n_ans, -1, dtype=np.int64)
    ans_slot[row_answer] = slot
    if n_ans and (ans_slot[row_answer] != slot).any():
        raise ValueError("every placement of one answer must carry the same presented slot")
    order = np.argsort(ans_scen, kind="stable")
    rank = np.empty(n_ans, dtype=np.int64)
    rank[order] = np.arange(n_ans)
    ans_scen, ans_slot, row_answer = ans_scen[order], ans_slot[order], rank[row_answer]
    n_slots = int(slot.max()) + 1 if len(slot) else 1

    masks = {name: np.asarray(m, dtype=bool) for name, m in scopes.items()}
    # each answer's placements summed per scope: a permutation moves answers, so slot sums are sums of these
    ans_sum = {name: np.bincount(row_answer[m], weights=position[m], minlength=n_ans) for name, m in masks.items()}
    ans_cnt = {name: np.bincount(row_answer[m], minlength=n_ans).astype(float) for name, m in masks.items()}
    observed = {name: float(_between(ans_slot[None, :], ans_sum[name], ans_cnt[name], n_slots)[0])
                for name in masks}
    # the scenarios' answers as (scenarios x answers) blocks, one per answer count: permuting within a scenario
    # is an argsort of a short row of uniforms
    starts = np.flatnonzero(np.r_[True, ans_scen[1:] != ans_scen[:-1]]) if n_ans else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, n_ans])
    blocks = [starts[counts == c][:, None] + np.arange(c) for c in np.unique(counts) if c > 1]
    exceed = dict.fromkeys(masks, 0)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(1, n_ans))
    done = 0
    while done < permutations:
        b = min(chunk, permutations - done)
        perm_slot = np.broadcast_to(ans_slot, (b, n_ans)).copy()
        for idx in blocks:
            shuffled = np.take_along_axis(np.broadcast_to(idx, (b, *idx.shape)),
                                          np.argsort(rng.random((b, *idx.shape)), axis=2), axis=2)
            perm_slot[:, idx] = ans_slot[shuffled]      # answer idx[g, j] takes the slot of another of scenario g
        for name in masks:
            if ans_cnt[name].any():
                stats = _between(perm_slot, ans_sum[name], ans_cnt[name], n_slots)
                exceed[name] += int((stats >= observed[name] - 1e-12 * max(1.0, observed[name])).sum())
        done += b

    out = {}
    for name, m in masks.items():
        s, pos = slot[m], position[m]
        slots = np.unique(s)
        n = np.array([(s == k).sum() for k in slots], dtype=np.int64)
        mean = np.array([pos[s == k].mean() for k in slots]) if len(slots) else np.zeros(0)
        answers_per_scen = np.bincount(ans_scen[np.unique(row_answer[m])]) if m.any() else np.zeros(0)
        out[name] = SlotTest(
            slots=slots, n=n, mean=mean, grand_mean=float(pos.mean()) if len(pos) else float("nan"),
            spread=float(mean.max() - mean.min()) if len(mean) else 0.0, statistic=observed[name],
            p_value=(1 + exceed[name]) / (1 + permutations) if m.any() else 1.0, permutations=permutations,
            scenarios=int((answers_per_scen >= 2).sum()))
    return out
