"""Greedy k-center with a distance threshold: the diversity filter of the method.

Two algorithms with the same guarantee at stop (every point lies within ``r`` of a centre, and
centres are more than ``r`` apart):

* :func:`farthest_first` is the textbook greedy k-center (Gonzalez): repeatedly add the point
  farthest from the current centres (``weight x distance`` in the vertex-weighted variant) until
  every point is within ``r``. It costs O(n * k * d), fine up to a few tens of thousands of points.
* :func:`rnet` scales to paper size (300K x 768). It finds every pair within ``r`` exactly, with
  a blocked matrix product over a PCA projection plus the residual norm as an upper bound on the
  dot product (so no true neighbour is ever pruned), then keeps points greedily in priority order
  (weight, descending; a seeded shuffle when unweighted), dropping each kept point's neighbours.

Vectors are L2-normalised first; distances are Euclidean on the unit sphere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KCenterResult:
    centers: np.ndarray  # indices of the kept points, in selection order
    assign: np.ndarray  # for every point, the index of the centre covering it
    distance: np.ndarray  # distance of every point to that centre
    method: str

    @property
    def kept(self) -> np.ndarray:
        mask = np.zeros(len(self.assign), dtype=bool)
        mask[self.centers] = True
        return mask


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def _dist_to(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * (x @ v).astype(np.float64)))


def farthest_first(x: np.ndarray, r: float, weights: np.ndarray | None = None) -> KCenterResult:
    """Greedy (vertex-weighted) k-center, stopping once every point is within ``r`` of a centre."""
    x = normalise(x)
    n = len(x)
    if n == 0:
        return KCenterResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), "farthest_first")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    first = int(np.argmax(w))
    centers = [first]
    mind = _dist_to(x, x[first])
    assign = np.full(n, first, dtype=np.int64)
    while True:
        score = np.where(mind > r, w * mind, -1.0)
        i = int(np.argmax(score))
        if score[i] < 0:
            break
        centers.append(i)
        d = _dist_to(x, x[i])
        upd = d < mind
        mind[upd] = d[upd]
        assign[upd] = i
        mind[i] = 0.0
        assign[i] = i
    return KCenterResult(np.asarray(centers, dtype=np.int64), assign, mind, "farthest_first")


def neighbour_pairs(x: np.ndarray, r: float, block_rows: int = 2048, block_cols: int = 16384,
                    project_dims: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``|x_i - x_j| <= r`` (exact), for unit vectors ``x``."""
    n, d = x.shape
    t = 1.0 - r * r / 2.0  # dot-product threshold on the unit sphere
    if d > int(project_dims * 1.5) and n > 4 * project_dims:
        sample = x[np.random.default_rng(0).choice(n, size=min(n, 50_000), replace=False)].astype(np.float64)
        cov = sample.T @ sample
        _, vecs = np.linalg.eigh(cov)
        basis = vecs[:, -project_dims:].astype(np.float32)
        y = x @ basis
        resid = np.sqrt(np.maximum(0.0, 1.0 - np.sum(y.astype(np.float64) ** 2, axis=1))).astype(np.float32)
        z = np.ascontiguousarray(np.hstack([y, resid[:, None]]))
        bound_extra = 2e-3  # float32 slack on the bound
    else:
        z = np.ascontiguousarray(x)
        bound_extra = 1e-4
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    zt_cache: dict[int, np.ndarray] = {}
    for i0 in range(0, n, block_rows):
        i1 = min(n, i0 + block_rows)
        zi = z[i0:i1]
        for j0 in range((i0 // block_cols) * block_cols, n, block_cols):
            j1 = min(n, j0 + block_cols)
            if j1 <= i0:
                continue
            zt = zt_cache.get(j0)
            if zt is None:
                zt = np.ascontiguousarray(z[j0:j1].T)
                if len(zt_cache) > 64:
                    zt_cache.clear()
                zt_cache[j0] = zt
            s = zi @ zt
            ii, jj = np.nonzero(s >= t - bound_extra)
            if ii.size == 0:
                continue
            gi = ii + i0
            gj = jj + j0
            keep = gj > gi
            gi, gj = gi[keep], gj[keep]
            if gi.size == 0:
                continue
            exact = np.einsum("ij,ij->i", x[gi].astype(np.float64), x[gj].astype(np.float64))
            ok = exact >= t - 1e-9
            out_i.append(gi[ok])
            out_j.append(gj[ok])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def rnet(x: np.ndarray, r: float, weights: np.ndarray | None = None, seed: int = 0) -> KCenterResult:
    """Scalable threshold k-center: exact r-neighbour graph, then a greedy cover in priority order."""
    x = normalise(x)
    n = len(x)
    if n == 0:
        return KCenterResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), "rnet")
    gi, gj = neighbour_pairs(x, r)
    src = np.concatenate([gi, gj])
    dst = np.concatenate([gj, gi])
    order_e = np.argsort(src, kind="stable")
    src, dst = src[order_e], dst[order_e]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, src + 1, 1)
    indptr = np.cumsum(indptr)
    if weights is None:
        order = np.random.default_rng(seed).permutation(n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        order = np.lexsort((np.arange(n), -w))
    covered = np.zeros(n, dtype=bool)
    assign = np.full(n, -1, dtype=np.int64)
    centers = []
    for idx in order.tolist():
        if covered[idx]:
            continue
        centers.append(idx)
        covered[idx] = True
        assign[idx] = idx
        nb = dst[indptr[idx]:indptr[idx + 1]]
        fresh = nb[~covered[nb]]
        covered[fresh] = True
        assign[fresh] = idx
    dist = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * np.einsum("ij,ij->i", x.astype(np.float64),
                                                          x[assign].astype(np.float64))))
    return KCenterResult(np.asarray(centers, dtype=np.int64), assign, dist, "rnet")


def kcenter(x: np.ndarray, r: float, weights: np.ndarray | None = None, method: str = "auto",
            seed: int = 0) -> KCenterResult:
    """Dispatch: ``farthest_first`` up to 20,000 points under ``auto``, ``rnet`` above."""
    if method == "auto":
        method = "farthest_first" if len(x) <= 20_000 else "rnet"
    if method == "farthest_first":
        return farthest_first(x, r, weights)
    return rnet(x, r, weights, seed)
