"""Paired-comparison strengths (Bradley–Terry) of value categories, with Poisson-bootstrap intervals.

Each scenario is a duel between two values, so between their level-2 categories: a model that places
value 1 higher than value 2 gives category 1 a win over category 2 (equal positions are a tie, half a
win each). Bradley–Terry gives each category a strength ``p`` with ``P(i beats j) = p_i / (p_i + p_j)``;
it uses who beat whom, not how near the ceiling the positions sit, so it separates categories that a
mean-position score compresses at the top.

The fit is Hunter's (2004) MM iteration, with a weak prior: each category plays ``prior`` virtual duels
against a virtual opponent of strength 1, won half the time. That keeps every strength finite when a
category won (or lost) every duel, and shrinks categories with few duels towards the middle.

Intervals resample duels with Poisson(1) weights. A cell's resampled count of a given outcome is then
Poisson(count), independently per cell, so one resample costs one draw per cell of a 26 x 26 table
however many duels there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def bradley_terry(wins: np.ndarray, prior: float = 1.0, tol: float = 1e-10, max_iter: int = 10_000) -> np.ndarray:
    """Log-strengths (mean 0) from ``wins[i, j]``: how often i beat j (a tie adds 1/2 to both cells).
    A stack of tables (shape ``(B, k, k)``) is fitted at once and gives shape ``(B, k)``."""
    w = np.asarray(wins, dtype=float)
    single = w.ndim == 2
    if single:
        w = w[None]
    b, k, k2 = w.shape
    if k != k2:
        raise ValueError("wins must be square matrices")
    if k == 0:
        return np.zeros((0,) if single else (b, 0))
    n = w + np.swapaxes(w, 1, 2)     # duels between i and j
    won = w.sum(axis=2) + prior / 2  # wins, plus half the virtual duels
    p = np.ones((b, k))
    for _ in range(max_iter):
        denom = (n / (p[:, :, None] + p[:, None, :])).sum(axis=2) + prior / (p + 1.0)
        new = won / denom
        new /= np.exp(np.mean(np.log(new), axis=1, keepdims=True))  # fix the scale: geometric mean 1
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    out = np.log(p)
    return out[0] if single else out


@dataclass
class StrengthFit:
    strength: np.ndarray   # log-strengths, mean 0
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank: np.ndarray       # 1 = strongest
    rank_low: np.ndarray   # best rank inside the interval
    rank_high: np.ndarray  # worst rank inside the interval
    duels: np.ndarray      # duels each category took part in (ties included)


def rank_of(values: np.ndarray) -> np.ndarray:
    """1 = the largest; ties broken by position (stable)."""
    order = np.argsort(-values, kind="mergesort")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def fit_with_intervals(wins: np.ndarray, ties: np.ndarray, resamples: int = 200, confidence: float = 0.95,
                       seed: int = 0, prior: float = 1.0) -> StrengthFit:
    """Strengths from decisive ``wins[i, j]`` and symmetric ``ties[i, j]`` counts, with percentile intervals
    over ``resamples`` Poisson-bootstrap resamples of the duels (seeded)."""
    wins = np.asarray(wins, dtype=float)
    ties = np.asarray(ties, dtype=float)
    upper = np.triu(ties, 1)  # each tie once

    def table(w: np.ndarray, t_upper: np.ndarray) -> np.ndarray:
        t = t_upper + t_upper.T
        return w + t / 2

    est = bradley_terry(table(wins, upper), prior)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(est)))
    for start in range(0, resamples, 100):  # resamples fitted together, 100 at a time
        m = min(100, resamples - start)
        tables = np.stack([table(rng.poisson(wins), rng.poisson(upper)) for _ in range(m)])
        draws[start:start + m] = bradley_terry(tables, prior, tol=1e-7)
    ranks = np.array([rank_of(d) for d in draws], dtype=int).reshape(resamples, len(est))
    alpha = (1 - confidence) / 2
    lo, hi = (np.quantile(draws, [alpha, 1 - alpha], axis=0) if resamples else (est, est))
    r_lo, r_hi = (np.quantile(ranks, [alpha, 1 - alpha], axis=0) if resamples else (rank_of(est),) * 2)
    duels = wins.sum(axis=1) + wins.sum(axis=0) + (ties + ties.T).sum(axis=1) / 2
    return StrengthFit(est, lo, hi, rank_of(est), np.floor(r_lo).astype(int), np.ceil(r_hi).astype(int), duels)
