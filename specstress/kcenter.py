"""Greedy k-center with a distance threshold: the diversity filter of the method.

Two algorithms with the same guarantee at stop (every point lies within ``r`` of its centre, and
centres are more than ``r`` apart):

* :func:`farthest_first` is the textbook greedy k-center (Gonzalez): repeatedly add the point
  farthest from the current centres (``weight x distance`` in the vertex-weighted variant) until
  every point is within ``r``. It costs O(n * k * d): fine up to a few thousand points.
* :func:`rnet` scales to paper size (300K x 768). It finds every pair within ``r`` exactly
  (:func:`neighbour_pairs`), then keeps points greedily in priority order (weight, descending,
  ties by index; a seeded shuffle when unweighted), dropping each kept point's neighbours.

:func:`neighbour_pairs` is a blocked all-pairs search in float32 GEMM tiles. To cut the cost of
each tile it works on ``z = [P x, |x - P P^T x|]``: the projection of ``x`` onto the top ``p``
principal directions of a sample plus the (slightly inflated) norm of the residual. By
Cauchy-Schwarz ``z_i . z_j >= x_i . x_j``, so the projected scores are an upper bound on the dot
product and no true neighbour is ever pruned; every candidate is then checked exactly.
``p`` is picked by a cost model (GEMM width against the candidate rate measured on a sample);
with few points, or when the bound would be too loose, it falls back to the full dimension.
Row blocks are scanned on one Python thread per core (up to 8), each with single-threaded GEMMs.

"Within ``r``" is decided on the float32 unit vectors with the squared distance computed in
float64, the same value the returned ``distance`` reports. ``farthest_first`` picks centres with
float32 distances, so its guarantees hold up to float32 rounding (about 1e-6).

Vectors are L2-normalised first (all-zero vectors stay zero); distances are Euclidean.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

# Cost model for choosing the projection width (nanoseconds; only the ratios matter).
_GEMM_NS_PER_DIM = 0.022  # float32 GEMM, per tile entry and dimension
_SCAN_NS = 0.7  # threshold + candidate extraction, per tile entry
_VERIFY_NS_PER_DIM = 3.5  # gather + exact check of one candidate pair, per dimension
_PROJECT_GRID = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_RESID_PAD = 1e-4  # added under the residual square root, covers rounding of |x|^2 - |Px|^2
_SLACK = 1e-3  # float32 slack on the candidate threshold (GEMM rounding, basis, norm deviation)
_UNIT_TOL = 1e-4  # rows with | |x|^2 - 1 | above this are matched by brute force instead
_AUTO_MIN_NS = 1e9  # below this estimated cost the full-width pass is used without sampling
# OpenBLAS runs a GEMM on the calling thread when m * n * k <= 65536 * 4. Threaded GEMMs of small
# tiles stall badly when the cores are shared, so narrow tiles stay under this size and the row
# blocks are spread over Python threads instead (numpy releases the GIL in matmul and ufuncs).
_SMALL_GEMM = 262_144


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
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    n2 = _sq_norms(x)
    if np.all(np.abs(n2 - 1.0) <= 1e-6):
        return x  # already unit rows (to float32 rounding): no copy
    norms = np.sqrt(n2).astype(np.float32)
    norms[norms == 0] = 1.0
    return x / norms[:, None]


def _empty(method: str) -> KCenterResult:
    return KCenterResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), method)


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != n:
        raise ValueError(f"got {len(w)} weights for {n} points")
    return w


def _sq_norms(x: np.ndarray, chunk: int = 16384) -> np.ndarray:
    out = np.empty(len(x))
    for s in range(0, len(x), chunk):
        xc = x[s:s + chunk].astype(np.float64)
        out[s:s + chunk] = np.einsum("ij,ij->i", xc, xc)
    return out


def _pair_sqdist(x: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Squared Euclidean distance between rows ``x[a]`` and ``x[b]``, in float64."""
    out = np.empty(len(a))
    for s in range(0, len(a), chunk):
        diff = x[a[s:s + chunk]].astype(np.float64) - x[b[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", diff, diff)
    return out


def _dist_to(x: np.ndarray, n2: np.ndarray, i: int) -> np.ndarray:
    """Distances from every row to row ``i`` (float32 dot products, float64 norms)."""
    return np.sqrt(np.maximum(0.0, n2 + n2[i] - 2.0 * (x @ x[i]).astype(np.float64)))


def farthest_first(x: np.ndarray, r: float, weights: np.ndarray | None = None) -> KCenterResult:
    """Greedy (vertex-weighted) k-center, stopping once every point is within ``r`` of a centre.

    The first centre is the highest-weight point; each next one maximises ``weight x distance``
    among the points still farther than ``r`` from every centre.
    """
    x = normalise(x)
    n = len(x)
    if n == 0:
        return _empty("farthest_first")
    w = _weights(weights, n)
    if w is None:
        w = np.ones(n)
    n2 = _sq_norms(x)
    first = int(np.argmax(w))
    centers = [first]
    mind = _dist_to(x, n2, first)
    mind[first] = 0.0
    assign = np.full(n, first, dtype=np.int64)
    while True:
        score = np.where(mind > r, w * mind, -np.inf)
        i = int(np.argmax(score))
        if not mind[i] > r:
            break
        centers.append(i)
        d = _dist_to(x, n2, i)
        upd = d < mind
        mind[upd] = d[upd]
        assign[upd] = i
        mind[i] = 0.0
        assign[i] = i
    dist = np.sqrt(_pair_sqdist(x, np.arange(n), assign))
    return KCenterResult(np.asarray(centers, dtype=np.int64), assign, dist, "farthest_first")


def _matmul1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` as a batch of row slices small enough for OpenBLAS to run each on this thread."""
    m, k = a.shape
    rb = _SMALL_GEMM // max(1, k * b.shape[1])
    if rb == 0 or rb >= m:
        return a @ b
    mm = m // rb * rb
    out = np.empty((m, b.shape[1]), dtype=np.result_type(a, b))
    np.matmul(a[:mm].reshape(-1, rb, k), b, out=out[:mm].reshape(-1, rb, b.shape[1]))
    out[mm:] = a[mm:] @ b
    return out


def _orthonormalise(a: np.ndarray, against: np.ndarray) -> np.ndarray:
    """Columns of ``a`` made orthonormal and orthogonal to ``against``: projection plus Cholesky QR,
    each twice. Only small factorisations and GEMMs, which stay fast when the cores are shared."""
    for _ in range(2):
        if against.shape[1]:
            a = a - _matmul1(against, _matmul1(np.ascontiguousarray(against.T), a))
        at = np.ascontiguousarray(a.T)
        g = _matmul1(at, a)
        a = np.linalg.solve(np.linalg.cholesky(g + 1e-12 * np.trace(g) * np.eye(len(g))), at).T
    return a


def _pca_basis(x: np.ndarray, k: int, rng: np.random.Generator, sample: int = 10_000,
               block: int = 64) -> np.ndarray:
    """About the top-``k`` principal directions (no centring) of a row sample, as ``d x k`` orthonormal
    float32 columns in roughly decreasing variance. Any orthonormal basis keeps the bound valid; a
    good one only makes it tighter. Blocked subspace iteration with Rayleigh-Ritz on ``64 x 64``
    blocks: a full ``d x d`` eigendecomposition can take seconds when the cores are shared."""
    d = x.shape[1]
    k = min(k, d)
    idx = np.sort(rng.choice(len(x), size=min(len(x), sample), replace=False))
    s = x[idx]
    cov = (s.T @ s).astype(np.float64)
    cov /= max(float(np.trace(cov)), 1e-300)
    cov += 1e-4 / d * np.eye(d)  # positive definite: every iterate keeps full column rank
    basis = np.zeros((d, 0))
    while basis.shape[1] < k:
        b = min(block, k - basis.shape[1])
        q = _orthonormalise(rng.standard_normal((d, b)), basis)
        for _ in range(4):
            q = _orthonormalise(_matmul1(cov, q), basis)
        _, vecs = np.linalg.eigh(_matmul1(np.ascontiguousarray(q.T), _matmul1(cov, q)))
        basis = np.hstack([basis, _matmul1(q, vecs[:, ::-1])])
    if np.abs(basis.T @ basis - np.eye(k)).max() > 1e-8:  # never expected; exact fallback
        basis = np.linalg.eigh(cov)[1][:, ::-1][:, :k]
    return np.ascontiguousarray(basis.astype(np.float32))


def _bound_vectors(x: np.ndarray, basis: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """``[x @ basis, residual norm]``: for unit rows, ``z_i . z_j >= x_i . x_j`` up to float32 rounding."""
    y = x @ basis
    ny2 = np.einsum("ij,ij->i", y.astype(np.float64), y.astype(np.float64)) if len(y) else np.zeros(0)
    resid = np.sqrt(np.maximum(n2 - ny2, 0.0) + _RESID_PAD)
    return np.ascontiguousarray(np.hstack([y, resid[:, None].astype(np.float32)]))


def _choose_projection(x: np.ndarray, unit: np.ndarray, tc: float,
                       rng: np.random.Generator) -> np.ndarray | None:
    """PCA basis minimising the estimated cost of the all-pairs pass, or ``None`` for full width.

    The candidate rate of each width is measured on a sample of row pairs (1,000 x 10,000)."""
    n, d = x.shape
    pairs = n * (n - 1) / 2.0
    full_cost = pairs * (_GEMM_NS_PER_DIM * d + _SCAN_NS)
    grid = [p for p in _PROJECT_GRID if (p + 1) * 1.25 <= d]
    pool = np.flatnonzero(unit)
    m = min(len(pool), 10_000)
    q = min(m, 1_000)
    if not grid or full_cost < _AUTO_MIN_NS or q < 500:  # under a second anyway, or too few rows to sample
        return None
    basis = _pca_basis(x[pool], grid[-1], rng)
    ref = x[np.sort(rng.choice(pool, size=m, replace=False))]
    y = ref @ basis
    n2 = _sq_norms(ref)
    ny2 = np.cumsum(y.astype(np.float64) ** 2, axis=1)
    acc = np.zeros((q, m), dtype=np.float32)
    best_cost, best_p, prev, worse = full_cost, None, 0, 0
    for p in grid:
        acc += y[:q, prev:p] @ y[:, prev:p].T
        prev = p
        res = np.sqrt(np.maximum(n2 - ny2[:, p - 1], 0.0) + _RESID_PAD).astype(np.float32)
        hits = np.count_nonzero(acc + res[:q, None] * res[None, :] >= tc) - q  # minus the self pairs
        rate = max(hits, 0) / (q * (m - 1))
        cost = pairs * (_GEMM_NS_PER_DIM * (p + 1) + _SCAN_NS + rate * _VERIFY_NS_PER_DIM * d)
        if cost < best_cost:
            best_cost, best_p, worse = cost, p, 0
        else:
            worse += 1
            if worse == 2:  # the GEMM width now costs more than the pruning saves
                break
    return None if best_p is None else basis[:, :best_p]


def _verify(x: np.ndarray, n2: np.ndarray, gi: np.ndarray, gj: np.ndarray, r2: float) -> np.ndarray:
    """Mask of candidate pairs with float64 squared distance ``<= r2``: float32 dot products first,
    float64 differences for the pairs near the edge."""
    d = x.shape[1]
    tol = 4.0 * d * 6e-8 + 1e-6  # float32 dot-product rounding, doubled, for near-unit rows
    out = np.empty(len(gi), dtype=bool)
    for s in range(0, len(gi), 16384):
        a, b = gi[s:s + 16384], gj[s:s + 16384]
        dot = np.einsum("ij,ij->i", x[a], x[b]).astype(np.float64)
        est = n2[a] + n2[b] - 2.0 * dot
        ok = est <= r2 - tol
        edge = np.flatnonzero(np.abs(est - r2) < tol)
        if edge.size:
            ok[edge] = _pair_sqdist(x, a[edge], b[edge]) <= r2
        out[s:s + 16384] = ok
    return out


def _flat_hits(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` for a sparse bool vector: find the non-zero 8-byte words first."""
    if mask.size % 8:
        return np.flatnonzero(mask)
    words = np.flatnonzero(mask.view(np.uint64) != 0)
    if words.size == 0:
        return words
    r, c = np.nonzero(mask.reshape(-1, 8)[words])
    return words[r] * 8 + c


def _scan_rows(z: np.ndarray, i0: int, rows: int, cols: int, nc: int, tc: float,
               local: threading.local) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(i, j)``, ``i0 <= i < i0 + rows``, ``j > i``, with ``z_i . z_j >= tc``.

    With ``nc > 0`` each slab of columns is one batched matmul of ``rows x nc`` products, small
    enough for the BLAS to run each on the calling thread; otherwise one plain (threaded) GEMM."""
    m, k = z.shape
    i1 = min(m, i0 + rows)
    rr = i1 - i0
    if getattr(local, "size", 0) < rr * cols:
        local.buf = np.empty(rr * cols, dtype=np.float32)
        local.mask = np.empty(rr * cols, dtype=bool)
        local.size = rr * cols
    zi = z[i0:i1]
    ci: list[np.ndarray] = []
    cj: list[np.ndarray] = []
    j0 = i0
    while j0 < m:
        b = min(cols // nc, (m - j0) // nc) if nc else 0
        w = b * nc if b else min(cols, m - j0)
        s = local.buf[:rr * w]
        if b:
            np.matmul(zi[None], z[j0:j0 + w].reshape(b, nc, k).transpose(0, 2, 1), out=s.reshape(b, rr, nc))
        else:
            np.matmul(zi, z[j0:j0 + w].T, out=s.reshape(rr, w))
        hit = local.mask[:s.size]
        np.greater_equal(s, tc, out=hit)
        flat = _flat_hits(hit)
        if flat.size:
            if b:
                bb, rem = np.divmod(flat, rr * nc)
                ii, jj = np.divmod(rem, nc)
                jj += bb * nc
            else:
                ii, jj = np.divmod(flat, w)
            ii += i0
            jj += j0
            keep = jj > ii
            ci.append(ii[keep])
            cj.append(jj[keep])
        j0 += w
    if not ci:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ci), np.concatenate(cj)


def neighbour_pairs(x: np.ndarray, r: float, block_rows: int = 128, block_cols: int = 4096,
                    project_dims: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``|x_i - x_j| <= r`` (exact), for unit vectors ``x``.

    ``project_dims`` fixes the width of the PCA bound (``>= d`` for none); ``None`` lets the cost
    model choose. Returns ``(i, j)`` sorted by ``i`` then ``j``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    empty = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n < 2:
        return empty
    r2 = float(r) * float(r)
    tc = 1.0 - r2 / 2.0 - _SLACK  # candidate threshold on (bounded) dot products of unit rows
    n2 = _sq_norms(x)
    unit = np.abs(n2 - 1.0) <= _UNIT_TOL
    rng = np.random.default_rng(seed)
    if project_dims is None:
        basis = _choose_projection(x, unit, tc, rng)
    elif project_dims < d and unit.any():
        basis = _pca_basis(x[unit], int(project_dims), rng)
    else:
        basis = None
    ids = np.flatnonzero(unit)  # fast path over the unit rows, in the index space of ``ids``
    xu = x[ids] if len(ids) < n else x
    z = _bound_vectors(xu, basis, n2[ids]) if basis is not None else xu
    m, k = z.shape
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    nc = _SMALL_GEMM // (block_rows * k)
    if nc >= 16:  # narrow rows: single-threaded batched GEMMs, one Python thread per core
        rows, threads = block_rows, min(os.cpu_count() or 1, 8)
    else:  # wide rows (no projection): big tiles, threaded inside the BLAS
        rows, threads, nc = block_rows * 8, 1, 0
    local = threading.local()

    def task(i0: int) -> tuple[np.ndarray, np.ndarray]:
        ci, cj = _scan_rows(z, i0, rows, block_cols, nc, tc, local)
        gi, gj = ids[ci], ids[cj]
        ok = _verify(x, n2, gi, gj, r2)
        return gi[ok], gj[ok]

    starts = range(0, m, rows)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(task, starts))
    else:
        found = [task(i0) for i0 in starts]
    for gi, gj in found:
        out_i.append(gi)
        out_j.append(gj)
    odd = np.flatnonzero(~unit)  # zero or far-from-unit rows: exact check against every row
    for s in range(0, len(odd), 256):
        sel = odd[s:s + 256]
        xs = x[sel].astype(np.float64)
        for j0 in range(0, n, 16384):
            d2 = n2[sel, None] + n2[None, j0:j0 + 16384] - 2.0 * (xs @ x[j0:j0 + 16384].T.astype(np.float64))
            ii, jj = np.nonzero(d2 <= r2 + 1e-6)
            gi, gj = sel[ii], jj + j0
            keep = (gi != gj) & (unit[gj] | (gi < gj))  # each odd-unit pair once, odd-odd once
            gi, gj = gi[keep], gj[keep]
            if gi.size:
                ok = _pair_sqdist(x, gi, gj) <= r2
                out_i.append(np.minimum(gi, gj)[ok])
                out_j.append(np.maximum(gi, gj)[ok])
    if not out_i:
        return empty
    pi = np.concatenate(out_i).astype(np.int64)
    pj = np.concatenate(out_j).astype(np.int64)
    order = np.lexsort((pj, pi))
    return pi[order], pj[order]


def rnet(x: np.ndarray, r: float, weights: np.ndarray | None = None, seed: int = 0) -> KCenterResult:
    """Scalable threshold k-center: exact r-neighbour graph, then a greedy cover in priority order."""
    x = normalise(x)
    n = len(x)
    if n == 0:
        return _empty("rnet")
    w = _weights(weights, n)
    gi, gj = neighbour_pairs(x, r, seed=seed)
    src = np.concatenate([gi, gj])
    dst = np.concatenate([gj, gi])[np.argsort(src, kind="stable")]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    order = np.random.default_rng(seed).permutation(n) if w is None else np.lexsort((np.arange(n), -w))
    covered = np.zeros(n, dtype=bool)
    assign = np.arange(n, dtype=np.int64)  # isolated points are their own centres
    kept = np.ones(n, dtype=bool)
    has_nb = np.diff(indptr) > 0
    for idx in order[has_nb[order]].tolist():
        if covered[idx]:
            kept[idx] = False
            continue
        covered[idx] = True
        nb = dst[indptr[idx]:indptr[idx + 1]]
        fresh = nb[~covered[nb]]
        covered[fresh] = True
        assign[fresh] = idx
    centers = order[kept[order]].astype(np.int64)
    return KCenterResult(centers, assign, np.sqrt(_pair_sqdist(x, np.arange(n), assign)), "rnet")


def kcenter(x: np.ndarray, r: float, weights: np.ndarray | None = None, method: str = "auto",
            seed: int = 0) -> KCenterResult:
    """Dispatch: ``farthest_first`` up to 5,000 points under ``auto`` (the textbook greedy), ``rnet`` above."""
    if method == "auto":
        method = "farthest_first" if len(x) <= 5_000 else "rnet"
    if method == "farthest_first":
        return farthest_first(x, r, weights)
    if method == "rnet":
        return rnet(x, r, weights, seed)
    raise ValueError(f"unknown k-center method {method!r}")
