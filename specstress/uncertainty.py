"""Poisson-bootstrap sums: the arithmetic behind the ``uncertainty`` stage's confidence intervals.

Every headline number of a run is a ratio of sums over resampling units (scenarios, or value
pairs): mean D is the sum of D over the scenarios that have one, divided by their count; a refusal
rate is refusals over responses; a category score is the sum of (position - 3) / 3 over the
placements on the category's values, divided by their count. A bootstrap resample gives each unit
a weight, how often it was drawn; with Poisson(1) weights (the "Poisson bootstrap", which differs
from drawing exactly n units with replacement only by the random total) every resample of every
sum is one product ``W @ X``: ``W`` is resamples x units of weights and ``X`` is units x sums. So
1,000 resamples of hundreds of sums over 300,000 units are a few matrix products on float32, not
1,000 Python loops over the data.

Level-2 category scores need a sum per model x category; most of those are 0 for any one unit
(a value pair touches two categories). The units are therefore given in blocks that share their
two categories (``Block``): each block's product yields the per-model sums of its two categories
only, which are added into a resamples x models x categories array.

The weights come from one seeded generator, drawn block by block in unit order, so a run with the
same units and seed gets the same intervals. A Poisson(1) draw is a table lookup of a 16-bit
uniform (``POISSON_TABLE``): exact to 1 / 65,536 in each outcome's probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: units per weight matrix: resamples x CHUNK float32 (80 MB at 1,000 resamples)
CHUNK = 20_000


def _poisson_table() -> np.ndarray:
    """For each 16-bit integer u: the Poisson(1) quantile of (u + 1/2) / 65536."""
    cdf, k, p = [], 0, math.exp(-1.0)
    total = 0.0
    while total < 1 - 1e-12 and k < 30:
        total += p
        cdf.append(total)
        k += 1
        p /= k
    u = (np.arange(65536, dtype=np.float64) + 0.5) / 65536
    return np.searchsorted(np.array(cdf), u, side="right").astype(np.float32)


POISSON_TABLE = _poisson_table()


def poisson_weights(rng: np.random.Generator, resamples: int, units: int) -> np.ndarray:
    """A resamples x units float32 matrix of Poisson(1) weights."""
    return POISSON_TABLE[rng.integers(0, 65536, size=(resamples, units), dtype=np.uint16)]


@dataclass(frozen=True)
class Block:
    """Units ``start`` .. ``end - 1`` (in unit order), whose value pairs are of categories ``c1`` and
    ``c2`` (-1: unknown)."""

    start: int
    end: int
    c1: int
    c2: int


@dataclass
class BootstrapSums:
    common: np.ndarray          # resamples x common sums
    category_sum: np.ndarray    # resamples x models x categories: sum of scores
    category_count: np.ndarray  # resamples x models x categories: placements


def bootstrap_sums(common: np.ndarray, value1: np.ndarray, value2: np.ndarray, blocks: list[Block],
                   n_categories: int, resamples: int, seed: int, sparse: np.ndarray | None = None) -> BootstrapSums:
    """Resampled sums.

    ``common`` is units x k (sums that every unit adds to the same column); ``value1`` and
    ``value2`` are units x (2 * models): for each model, the sum of its scores on that value and its
    placements (score sums in the first half, counts in the second). A unit adds its value1 columns
    to its block's category ``c1`` and its value2 columns to ``c2``. ``sparse`` (units x j) holds
    columns that few units touch (a compliance sample): only those units' weights are multiplied;
    its resampled sums follow ``common``'s in the result.
    """
    units, k = common.shape
    sparse = np.zeros((units, 0), dtype=np.float32) if sparse is None else sparse
    j = sparse.shape[1]
    models = value1.shape[1] // 2
    covered = 0
    for b in blocks:
        if b.start != covered:
            raise ValueError("blocks must cover the units in order")
        covered = b.end
    if covered != units:
        raise ValueError("blocks must cover every unit")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    out = np.zeros((resamples, k + j), dtype=np.float64)
    cat_sum = np.zeros((resamples, models, max(n_categories, 1)), dtype=np.float64)
    cat_count = np.zeros_like(cat_sum)
    dense = np.ascontiguousarray(common, dtype=np.float32)
    per_value = np.hstack([value1, value2]).astype(np.float32, copy=False)
    touched = np.flatnonzero(np.any(sparse != 0, axis=1)) if j else np.zeros(0, dtype=np.int64)
    x_sparse = np.asarray(sparse[touched], dtype=np.float32)
    bi = 0
    for lo in range(0, units, CHUNK):   # the weights are drawn chunk by chunk, in unit order
        hi = min(lo + CHUNK, units)
        w = poisson_weights(rng, resamples, hi - lo)
        out[:, :k] += w @ dense[lo:hi]
        sel = (touched >= lo) & (touched < hi)
        if sel.any():
            out[:, k:] += w[:, touched[sel] - lo] @ x_sparse[sel]
        while bi < len(blocks) and blocks[bi].end <= lo:
            bi += 1
        for b in blocks[bi:]:
            if b.start >= hi:
                break
            a, e = max(b.start, lo), min(b.end, hi)
            if a >= e:
                continue
            t = w[:, a - lo:e - lo] @ per_value[a:e]      # resamples x (4 * models)
            for c, part in ((b.c1, t[:, :2 * models]), (b.c2, t[:, 2 * models:])):
                if c >= 0:
                    cat_sum[:, :, c] += part[:, :models]
                    cat_count[:, :, c] += part[:, models:]
    return BootstrapSums(out, cat_sum, cat_count)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a resample that drew no unit of the group)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def interval(samples: np.ndarray, confidence: float, integer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval over axis 0 (resamples x groups), ignoring NaN resamples (NaN when all
    are NaN). ``integer``: the bounds are observed values (the lower and higher order statistics)."""
    a = (1 - confidence) / 2
    s = np.asarray(samples, dtype=float)
    lo = np.full(s.shape[1:], np.nan)
    hi = lo.copy()
    if s.shape[0] == 0:
        return lo, hi
    kw = {"method": "lower"}, {"method": "higher"}
    if not integer:
        kw = {}, {}
    gaps = np.isnan(s).any(axis=0)
    if (~gaps).any():   # the common case, vectorised: no resample without data
        lo[~gaps] = np.quantile(s[:, ~gaps], a, axis=0, **kw[0])
        hi[~gaps] = np.quantile(s[:, ~gaps], 1 - a, axis=0, **kw[1])
    if gaps.any():
        with np.errstate(all="ignore"), _quiet():
            lo[gaps] = np.nanquantile(s[:, gaps], a, axis=0, **kw[0])
            hi[gaps] = np.nanquantile(s[:, gaps], 1 - a, axis=0, **kw[1])
    return lo, hi


def competition_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank along the last axis, 1 = highest score, ties share the best rank; NaN scores (a category
    with no placement in that resample) rank after every scored one."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    # rank = 1 + how many categories score strictly higher
    return 1 + (s[..., None, :] > s[..., :, None]).sum(axis=-1)


class _quiet:
    """Silence numpy's 'All-NaN slice' warning: such groups get NaN bounds on purpose."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
