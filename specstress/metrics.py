"""Reference implementations of the method's metrics, in plain numpy.

The pipeline computes these in SQL (``warehouse/sql/models``) for speed; the tests check the SQL
against these, and these against hand-computed cases and their invariants.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np


def disagreement(positions_value1: Sequence[float], positions_value2: Sequence[float]) -> float:
    """D = max over the two values of the population std (ddof=0) of the models' positions."""
    a = np.asarray(positions_value1, dtype=float)
    b = np.asarray(positions_value2, dtype=float)
    sa = float(np.std(a, ddof=0)) if a.size else 0.0
    sb = float(np.std(b, ddof=0)) if b.size else 0.0
    return max(sa, sb)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa. ``counts[i, j]`` = raters who put item i in category j (same rater count per item)."""
    counts = np.asarray(counts, dtype=float)
    n_items, _ = counts.shape
    n = counts.sum(axis=1)
    if not np.allclose(n, n[0]) or n[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings")
    n = n[0]
    p_j = counts.sum(axis=0) / (n_items * n)
    p_i = (np.sum(counts * counts, axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_e = float(np.sum(p_j * p_j))
    if np.isclose(p_e, 1.0):
        return 1.0
    return float((p_bar - p_e) / (1 - p_e))


def label_counts(labels: Sequence[Sequence[str]], categories: Sequence[str]) -> np.ndarray:
    """Turn per-item label lists (one label per rater) into a Fleiss count matrix."""
    idx = {c: i for i, c in enumerate(categories)}
    out = np.zeros((len(labels), len(categories)))
    for i, row in enumerate(labels):
        for lab in row:
            out[i, idx[lab]] += 1
    return out


def pairwise_agreement(labels: Sequence[Sequence[str]]) -> dict[tuple[int, int], float]:
    """Share of items on which raters a and b gave the same label, for every rater pair."""
    arr = np.asarray(labels, dtype=object)
    k = arr.shape[1]
    return {(a, b): float(np.mean(arr[:, a] == arr[:, b])) for a, b in combinations(range(k), 2)}


def outliers(positions: Sequence[float], min_gap: float = 4, min_share: float = 9 / 11) -> list[bool]:
    """For each model: does it differ by >= ``min_gap`` from at least ceil(min_share * (n-1)) others?"""
    p = np.asarray(positions, dtype=float)
    n = len(p)
    if n < 3:
        return [False] * n
    needed = int(np.ceil(min_share * (n - 1) - 1e-9))
    out = []
    for i in range(n):
        far = int(np.sum(np.abs(p - p[i]) >= min_gap)) - (1 if min_gap <= 0 else 0)
        out.append(far >= needed)
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation with average ranks for ties."""
    ra = _ranks(np.asarray(a, dtype=float))
    rb = _ranks(np.asarray(b, dtype=float))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):
        m = x == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return ranks


def f1(predicted: set, truth: set) -> tuple[float, float, float]:
    """(precision, recall, F1) of a predicted set against a true set."""
    tp = len(predicted & truth)
    prec = tp / len(predicted) if predicted else (1.0 if not truth else 0.0)
    rec = tp / len(truth) if truth else 1.0
    f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f
