"""Benchmark of the diversity filter (greedy threshold k-center) at paper scale.

    python bench/kcenter.py [--n 300000] [--dims 768] [--quick]

Builds a synthetic embedding set that looks like text embeddings: unit vectors with a shared
mean direction, topic clusters and per-scenario variation in a low-rank subspace with a decaying
spectrum, isotropic noise, and ~28% near-duplicates (each within 0.03-0.38 of a base scenario, so
dedup at 0.4 removes roughly the paper's 411K -> 300K share). Then it times

* ``kcenter(method="rnet")`` at r=0.4 on the full set;
* the disagreement-weighted variant at r=0.8 on the ~15% highest-disagreement scenarios;
* the naive baseline in the same run: ``farthest_first`` on a 10K sample of the same distribution,
  extrapolated to full size by its O(n * k) cost, and a brute-force full-dimension neighbour
  search on that sample (also a correctness check of ``neighbour_pairs``), extrapolated by O(n^2).

Peak RSS is per phase (the high-water mark is reset between phases where Linux allows it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specstress.kcenter import farthest_first, kcenter, neighbour_pairs, normalise  # noqa: E402


def make_embeddings(n: int, dims: int, dup_frac: float = 0.28, seed: int = 0, topic_size: int = 100,
                    rank: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic unit embeddings (float32) and a disagreement score in [0, 1] per row."""
    rng = np.random.default_rng(seed)
    rank = min(rank, dims - 1)
    n_dup = int(n * dup_frac)
    n_base = n - n_dup
    q, _ = np.linalg.qr(rng.standard_normal((dims, rank + 1)))
    mean_dir, basis = q[:, 0], q[:, 1:]
    spectrum = np.arange(1, rank + 1) ** -0.5  # eigenvalues ~ 1/k, as in text-embedding spectra
    spectrum /= np.linalg.norm(spectrum)

    def latent(m: int) -> np.ndarray:
        g = rng.standard_normal((m, rank)) * spectrum
        return (g / np.linalg.norm(g, axis=1, keepdims=True)) @ basis.T

    n_topics = max(1, n_base // topic_size)
    topics = latent(n_topics)
    topic_of = rng.integers(0, n_topics, n_base)
    topic_d = rng.beta(2.0, 5.0, n_topics)  # some value pairs are more contentious than others
    share = np.sqrt([0.16, 0.30, 0.28, 0.26])  # mean direction, topic, own variation, noise
    x = np.empty((n, dims), dtype=np.float32)
    dis = np.empty(n)
    step = 16384
    for s in range(0, n_base, step):
        e = min(n_base, s + step)
        noise = rng.standard_normal((e - s, dims)) / np.sqrt(dims)
        v = (share[0] * mean_dir + share[1] * topics[topic_of[s:e]] + share[2] * latent(e - s)
             + share[3] * noise)
        x[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
    dis[:n_base] = np.clip(topic_d[topic_of] + 0.15 * rng.standard_normal(n_base), 0.0, 1.0)
    source = rng.integers(0, n_base, n_dup)
    for s in range(0, n_dup, step):
        e = min(n_dup, s + step)
        b = x[source[s:e]].astype(np.float64)
        u = 0.6 * latent(e - s) + 0.8 * rng.standard_normal((e - s, dims)) / np.sqrt(dims)
        u -= np.sum(u * b, axis=1, keepdims=True) * b
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        theta = 2.0 * np.arcsin(rng.uniform(0.03, 0.38, e - s) / 2.0)  # chord 0.03-0.38 from the base
        x[n_base + s:n_base + e] = np.cos(theta)[:, None] * b + np.sin(theta)[:, None] * u
    dis[n_base:] = np.clip(dis[source] + 0.05 * rng.standard_normal(n_dup), 0.0, 1.0)
    perm = rng.permutation(n)
    return x[perm], dis[perm]


def brute_force_pairs(x: np.ndarray, r: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Naive exact neighbour search: full-dimension float32 Gram tiles, float64 check near the edge."""
    n = len(x)
    n2 = np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64))
    r2 = r * r
    out_i, out_j = [], []
    for i0 in range(0, n, block):
        xi = x[i0:i0 + block]
        d2 = n2[i0:i0 + block, None] + n2[None, :] - 2.0 * (xi @ x.T).astype(np.float64)
        ii, jj = np.nonzero(d2 <= r2 + 1e-3)
        ii += i0
        keep = jj > ii
        ii, jj = ii[keep], jj[keep]
        diff = x[ii].astype(np.float64) - x[jj]
        ok = np.einsum("ij,ij->i", diff, diff) <= r2
        out_i.append(ii[ok])
        out_j.append(jj[ok])
    return np.concatenate(out_i), np.concatenate(out_j)


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # the high-water mark then covers the whole run so far


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def timed(fn, *args, **kwargs):
    reset_peak()
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, peak_gb()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--dims", type=int, default=768)
    ap.add_argument("--quick", action="store_true", help="smoke test at n=30000")
    ap.add_argument("--baseline-n", type=int, default=None,
                    help="sample size for the naive baseline (10000; 2500 with --quick)")
    ap.add_argument("--high-frac", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = 30_000 if args.quick else args.n
    base_n = min(n, args.baseline_n or (2_500 if args.quick else 10_000))
    print(f"# kcenter benchmark: n={n} dims={args.dims} python {platform.python_version()} "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)

    (x, dis), t_gen, _ = timed(make_embeddings, n, args.dims, seed=args.seed)
    print(f"generated {x.nbytes / 1e9:.2f} GB of embeddings in {t_gen:.1f} s", flush=True)
    rows = []

    res, t_full, rss = timed(kcenter, x, 0.4, method="rnet", seed=args.seed)
    k_full = len(res.centers)
    rows.append(["rnet r=0.4 (all)", n, t_full, k_full, rss])
    print(f"rnet r=0.4: {t_full:.1f} s, kept {k_full} / {n}", flush=True)

    hi = np.argsort(-dis, kind="stable")[:int(round(args.high_frac * n))]
    hi.sort()
    xs, ws = x[hi], dis[hi]
    wres, t_w, rss = timed(kcenter, xs, 0.8, weights=ws, method="rnet", seed=args.seed)
    rows.append(["rnet weighted r=0.8 (high-D)", len(hi), t_w, len(wres.centers), rss])
    print(f"weighted r=0.8: {t_w:.1f} s, kept {len(wres.centers)} / {len(hi)}", flush=True)
    del res, wres

    # A random subsample of x would split most near-duplicates from their originals; a fresh sample
    # of the same distribution keeps the ~27% duplicate share (the extrapolation uses the real k anyway).
    rng = np.random.default_rng(args.seed + 1)
    xb, _ = make_embeddings(base_n, args.dims, seed=args.seed + 1)
    ff, t_ff, rss_ff = timed(farthest_first, xb, 0.4)
    k_ff = len(ff.centers)
    t_naive = t_ff * (n / base_n) * (k_full / k_ff)  # O(n * k)
    (bi, bj), t_bf, rss_bf = timed(brute_force_pairs, normalise(xb), 0.4)
    gi, gj = neighbour_pairs(normalise(xb), 0.4)
    same = bool(np.array_equal(bi, gi) and np.array_equal(bj, gj))
    sres, t_sub, rss_sub = timed(kcenter, xb, 0.4, method="rnet", seed=args.seed)
    t_bf_full = t_bf * (n / base_n) ** 2

    ws_n = min(len(hi), max(1000, base_n // 2))
    wsub = np.sort(rng.choice(len(hi), size=ws_n, replace=False))
    wff, t_wff, rss_wff = timed(farthest_first, xs[wsub], 0.8, ws[wsub])
    t_wnaive = t_wff * (len(hi) / ws_n) * (rows[1][3] / len(wff.centers))  # O(n * k)

    def row(label, m, secs, kept=None, rss=None, naive=None):
        kept_s, rem = ("-", "-") if kept is None else (str(kept), str(m - kept))
        rss_s = "-" if rss is None else f"{rss:.2f}"
        ratio = "-" if naive is None else f"{naive / secs:,.0f}x"
        print(f"| {label:<40} | {m:>7} | {args.dims:>4} | {secs:>9.1f} | {kept_s:>7} | {rem:>7} | "
              f"{rss_s:>13} | {ratio:>12} |")

    print()
    print(f"| {'phase':<40} | {'n':>7} | {'dims':>4} | {'seconds':>9} | {'kept':>7} | {'removed':>7} | "
          f"{'peak RSS (GB)':>13} | {'vs naive (x)':>12} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 6}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 15}|{'-' * 14}|")
    row(rows[0][0], n, t_full, k_full, rows[0][4], t_naive)
    row(rows[1][0], len(hi), t_w, rows[1][3], rows[1][4], t_wnaive)
    row("rnet r=0.4 (baseline sample)", base_n, t_sub, len(sres.centers), rss_sub, t_ff)
    row("naive farthest_first r=0.4 (measured)", base_n, t_ff, k_ff, rss_ff)
    row("naive farthest_first r=0.4 (extrap.)", n, t_naive)
    row("naive weighted ff r=0.8 (measured)", ws_n, t_wff, len(wff.centers), rss_wff)
    row("naive weighted ff r=0.8 (extrap.)", len(hi), t_wnaive)
    row("brute-force neighbours (measured)", base_n, t_bf, None, rss_bf)
    row("brute-force neighbours (extrap.)", n, t_bf_full)
    print()
    print(f"speed-up vs naive (extrapolated): rnet r=0.4 {t_naive / t_full:,.0f}x (naive farthest_first "
          f"~{t_naive / 3600:.2f} h at n={n}); weighted r=0.8 {t_wnaive / t_w:,.0f}x; "
          f"vs a brute-force neighbour graph {t_bf_full / t_full:.1f}x")
    print(f"removed by dedup at 0.4: {100 * (n - k_full) / n:.1f}% (paper: 411K -> ~300K, ~27%)")
    print(f"neighbour_pairs == brute force on the baseline sample: {same} ({len(bi)} pairs)")
    total = t_full + t_w
    print(f"goal: {n} x {args.dims} within 600 s -> {'met' if total <= 600 else 'NOT met'} "
          f"({total:.0f} s for both filters)")
    print(f"load average at end (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
