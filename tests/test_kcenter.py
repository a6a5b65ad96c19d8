"""Property tests of the diversity filter (greedy threshold k-center), checked against brute force.

Both methods (``farthest_first``, ``rnet``), weighted and unweighted, must stop with every point
within ``r`` of its centre and centres pairwise more than ``r`` apart; ``rnet``'s neighbour graph
must equal a brute-force computation exactly, including on the PCA-bound path (d > 192).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import specstress.kcenter as kc
from specstress.kcenter import farthest_first, kcenter, neighbour_pairs, normalise, rnet

METHODS = {"farthest_first": farthest_first, "rnet": rnet}
# rnet decides "within r" with float64 distances, exactly what brute force computes; farthest_first
# picks centres on float32 dot products, so its guarantees hold up to float32 rounding.
TOL = {"farthest_first": 1e-4, "rnet": 1e-9}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sqdist(x: np.ndarray) -> np.ndarray:
    """Brute-force float64 squared distances between the (normalised, float32) rows, from differences."""
    x64 = normalise(x).astype(np.float64)
    n, d = x64.shape
    out = np.empty((n, n))
    step = max(1, 2_000_000 // max(1, n * d))
    for i0 in range(0, n, step):
        diff = x64[i0:i0 + step, None, :] - x64[None, :, :]
        out[i0:i0 + step] = np.einsum("ijk,ijk->ij", diff, diff)
    return out


def brute_pairs(x: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """All ``i < j`` with float64 ``|x_i - x_j|^2 <= r^2``, for float32 rows: a float32 Gram with a wide
    margin picks the candidates, float64 differences decide."""
    x = np.asarray(x, dtype=np.float32)
    n2 = np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64))
    g = n2[:, None] + n2[None, :] - 2.0 * (x @ x.T)
    ii, jj = np.nonzero(np.triu(g <= r * r + 1e-3, 1))
    diff = x[ii].astype(np.float64) - x[jj]
    ok = np.einsum("ij,ij->i", diff, diff) <= r * r
    return ii[ok], jj[ok]


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(rng: np.random.Generator, base: np.ndarray, chord: np.ndarray) -> np.ndarray:
    """Unit vectors at the given chord distance from each (unit) row of ``base``."""
    u = rng.standard_normal(base.shape)
    u -= np.sum(u * base, axis=1, keepdims=True) * base
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    theta = 2.0 * np.arcsin(np.clip(chord, 0.0, 2.0) / 2.0)
    return np.cos(theta)[:, None] * base + np.sin(theta)[:, None] * u


def clustered(seed: int, n: int, d: int, r: float, rank: int = 24, dup_frac: float = 0.4) -> np.ndarray:
    """Low-rank unit vectors plus near-duplicates, many of them right at the threshold, and exact copies."""
    rng = np.random.default_rng(seed)
    n_dup = int(n * dup_frac)
    n_base = n - n_dup
    basis = rng.standard_normal((rank, d)) / np.sqrt(d)  # near-orthonormal rows
    spectrum = np.arange(1, rank + 1) ** -0.5
    base = (rng.standard_normal((n_base, rank)) * spectrum) @ basis + 0.15 * unit(rng, n_base, d)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    src = rng.integers(0, n_base, n_dup)
    kind = rng.integers(0, 4, n_dup)
    at_edge = r * (1.0 + rng.choice([-1.0, 1.0], n_dup) * 10.0 ** rng.uniform(-5, -2, n_dup))
    chord = np.select([kind == 0, kind == 1, kind == 2],
                      [rng.uniform(0.0, r, n_dup), at_edge, rng.uniform(r, 1.6 * r, n_dup)], 0.0)  # 3: copies
    dup = near(rng, base[src], chord)
    x = np.vstack([base, dup]).astype(np.float32)
    return x[rng.permutation(n)]


def check_result(x: np.ndarray, r: float, res, method: str, weights: np.ndarray | None = None) -> None:
    n = len(x)
    tol = TOL[method]
    d2 = sqdist(x)
    centers = res.centers
    assert len(np.unique(centers)) == len(centers)
    is_center = np.zeros(n, dtype=bool)
    is_center[centers] = True
    # (a) every point within r of some centre (brute force, not the returned distance)
    assert np.all(np.sqrt(d2[:, centers].min(axis=1)) <= r + tol)
    # (b) centres pairwise more than r apart
    if len(centers) > 1:
        dc = np.sqrt(d2[np.ix_(centers, centers)])
        np.fill_diagonal(dc, np.inf)
        assert dc.min() > r - tol
    # (c) assign points at a centre within r, and distance is the true distance to it
    assert np.all(is_center[res.assign])
    assert np.array_equal(res.assign[centers], centers)
    true = np.sqrt(d2[np.arange(n), res.assign])
    np.testing.assert_allclose(res.distance, true, rtol=0, atol=1e-6)
    assert np.all(true <= r + tol)
    # (e) the highest-weight point is always a centre
    if weights is not None:
        assert int(np.argmax(weights)) in set(centers.tolist())


# -- (a)-(c), (e): random data from hypothesis ---------------------------------------------------------

shapes = st.tuples(st.integers(1, 40), st.integers(1, 6))
elements = st.floats(-1, 1, width=32, allow_subnormal=False)
vectors = shapes.flatmap(lambda s: arrays(np.float32, s, elements=elements))
radii = st.sampled_from([0.1, 0.4, 0.8, 1.3])


@SETTINGS
@given(x=vectors, r=radii, method=st.sampled_from(sorted(METHODS)), weighted=st.booleans(), data=st.data())
def test_guarantees_on_arbitrary_vectors(x, r, method, weighted, data):
    n = len(x)
    levels = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])  # ties on purpose
    w = data.draw(arrays(np.float64, n, elements=levels)) if weighted else None
    res = METHODS[method](x, r, weights=w)
    check_result(x, r, res, method, w)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 160), d=st.sampled_from([3, 8, 32]),
       r=st.sampled_from([0.2, 0.4, 0.8]), method=st.sampled_from(sorted(METHODS)), weighted=st.booleans())
def test_guarantees_on_near_duplicates(seed, n, d, r, method, weighted):
    x = clustered(seed, n, d, r, rank=min(d, 6))
    w = np.random.default_rng(seed).random(n) if weighted else None
    res = METHODS[method](x, r, weights=w)
    check_result(x, r, res, method, w)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("weighted", [False, True])
def test_guarantees_at_pca_dimension(method, weighted):
    x = clustered(7, 700, 256, 0.4)
    w = np.random.default_rng(1).random(len(x)) if weighted else None
    check_result(x, 0.4, METHODS[method](x, 0.4, weights=w), method, w)


def test_zero_vectors_and_negative_weights():
    rng = np.random.default_rng(3)
    x = clustered(3, 60, 8, 0.4, rank=4)
    x[[5, 17, 40]] = 0.0  # all-zero rows stay zero after normalising: 0 apart, 1 from everything else
    w = rng.normal(size=len(x))  # farthest_first must not stop early on negative scores
    for method in METHODS:
        check_result(x, 0.4, METHODS[method](x, 0.4, weights=w), method, w)
        check_result(x, 0.4, METHODS[method](x, 0.4), method)


# -- (d): the neighbour graph equals brute force --------------------------------------------------------

def assert_same_pairs(x: np.ndarray, r: float, **kwargs) -> int:
    xn = normalise(x)
    gi, gj = neighbour_pairs(xn, r, **kwargs)
    bi, bj = brute_pairs(xn, r)
    assert np.array_equal(gi, bi) and np.array_equal(gj, bj)
    return len(bi)


@settings(SETTINGS, max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 300), d=st.sampled_from([256, 384]),
       r=st.sampled_from([0.2, 0.4, 0.8]), p=st.sampled_from([8, 32, 64, 128]),
       blocks=st.sampled_from([(128, 4096), (64, 96), (37, 53), (1024, 4096)]),
       small_gemm=st.sampled_from([0, 3000]))
def test_neighbour_pairs_pca_bound_matches_brute_force(seed, n, d, r, p, blocks, small_gemm):
    x = clustered(seed, n, d, r)
    with pytest.MonkeyPatch.context() as mp:
        if small_gemm:  # tiny batched GEMMs: many batches, ragged tails, on small data
            mp.setattr(kc, "_SMALL_GEMM", small_gemm * (p + 1))
        assert_same_pairs(x, r, project_dims=p, block_rows=blocks[0], block_cols=blocks[1])


@pytest.mark.parametrize("d,r,p", [(256, 0.4, 32), (384, 0.4, 64), (384, 0.8, 16), (768, 0.4, 48)])
def test_neighbour_pairs_many_near_threshold(d, r, p):
    x = clustered(11, 1500, d, r)
    n_pairs = assert_same_pairs(x, r, project_dims=p)
    assert n_pairs > 300  # many true neighbours, many of them within 1e-5..1e-2 of the threshold


def test_neighbour_pairs_exact_duplicates():
    rng = np.random.default_rng(5)
    base = unit(rng, 200, 384).astype(np.float32)
    x = np.vstack([base, base[:50], base[:10], base[:10]])  # triples and quadruples of identical rows
    x = x[rng.permutation(len(x))]
    n_pairs = assert_same_pairs(x, 0.4, project_dims=32)
    assert n_pairs == 40 * 1 + 10 * 6
    assert assert_same_pairs(x, 0.4, project_dims=400) == n_pairs  # no projection: full-width tiles


@pytest.mark.parametrize("d,r,projects", [(384, 0.4, True), (768, 0.4, True), (768, 0.8, None)])
def test_neighbour_pairs_auto_projection(monkeypatch, d, r, projects):
    # make the cost model run on small data, and record the width it picks
    monkeypatch.setattr(kc, "_AUTO_MIN_NS", 0.0)
    widths = []
    real = kc._bound_vectors
    monkeypatch.setattr(kc, "_bound_vectors",
                        lambda x, basis, n2: widths.append(basis.shape[1]) or real(x, basis, n2))
    x = clustered(13, 2000, d, r, rank=24, dup_frac=0.3)
    assert assert_same_pairs(x, r) > 300
    if projects:  # the cost model took the PCA-bound path
        assert widths and widths[0] < d


def test_neighbour_pairs_with_zero_rows():
    x = clustered(17, 400, 256, 0.4)
    x[[3, 99, 250]] = 0.0
    assert_same_pairs(x, 0.4, project_dims=32)
    assert_same_pairs(x, 1.05, project_dims=32)  # zero rows are exactly 1 from every unit row


# -- (e): weighted variant keeps the heaviest point of each near-duplicate cluster -----------------------

@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12), size=st.integers(1, 6),
       d=st.sampled_from([16, 64]), r=st.sampled_from([0.4, 0.8]), ties=st.booleans())
def test_weighted_keeps_one_per_cluster(seed, k, size, d, r, ties):
    rng = np.random.default_rng(seed)
    centres = unit(rng, k, d)
    members = [near(rng, np.repeat(centres[c:c + 1], size, axis=0), rng.uniform(0, 0.45 * r, size))
               for c in range(k)]
    x = np.vstack(members).astype(np.float32)
    label = np.repeat(np.arange(k), size)
    perm = rng.permutation(len(x))
    x, label = x[perm], label[perm]
    d2 = sqdist(x)
    same = label[:, None] == label[None, :]
    assume(np.all(d2[same] <= r * r * 0.99) and np.all(d2[~same] > r * r * 1.01))
    w = rng.integers(0, 3, len(x)).astype(float) if ties else rng.random(len(x))
    for method in METHODS:
        res = METHODS[method](x, r, weights=w)
        check_result(x, r, res, method, w)
        kept = res.kept
        assert np.array_equal(np.bincount(label[kept], minlength=k), np.ones(k, dtype=int))
        if method == "rnet":  # the kept one is the heaviest (lowest index on ties)
            for c in range(k):
                idx = np.flatnonzero(label == c)
                assert kept[idx[np.argmax(w[idx])]]


# -- (f): edge cases and dispatch -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["farthest_first", "rnet", "auto"])
def test_empty_and_single(method):
    for x in (np.zeros((0, 5), np.float32), np.zeros((0, 1))):
        res = kcenter(x, 0.4, method=method)
        assert res.centers.size == 0 and res.assign.size == 0 and res.distance.size == 0
        assert res.kept.size == 0
        res = kcenter(x, 0.4, weights=np.zeros(0), method=method)
        assert res.centers.size == 0
    for x in (np.array([[0.3, -0.4, 1.2]]), np.zeros((1, 3))):
        for w in (None, np.array([2.5])):
            res = kcenter(x, 0.4, weights=w, method=method)
            assert res.centers.tolist() == [0] and res.assign.tolist() == [0]
            assert res.distance.tolist() == [0.0] and res.kept.tolist() == [True]
    gi, gj = neighbour_pairs(np.zeros((0, 4), np.float32), 0.4)
    assert gi.size == gj.size == 0
    gi, gj = neighbour_pairs(np.ones((1, 4), np.float32) / 2, 0.4)
    assert gi.size == gj.size == 0


def test_dispatch_and_validation():
    x = clustered(19, 50, 8, 0.4, rank=4)
    assert kcenter(x, 0.4).method == "farthest_first"
    assert kcenter(x, 0.4, method="rnet").method == "rnet"
    with pytest.raises(ValueError):
        kcenter(x, 0.4, method="kmeans")
    with pytest.raises(ValueError):
        kcenter(x, 0.4, weights=np.ones(3), method="rnet")
    with pytest.raises(ValueError):
        farthest_first(x, 0.4, weights=np.ones(len(x) + 1))


def test_rnet_seeded_and_methods_agree_roughly():
    x = clustered(23, 400, 32, 0.4, rank=8)
    a, b = rnet(x, 0.4, seed=5), rnet(x, 0.4, seed=5)
    assert np.array_equal(a.centers, b.centers) and np.array_equal(a.assign, b.assign)
    ff = farthest_first(x, 0.4)
    assert abs(len(a.centers) - len(ff.centers)) <= 0.1 * len(x)
