"""Bradley–Terry strengths and their Poisson-bootstrap intervals (specstress.strengths)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.strengths import bradley_terry, fit_with_intervals, rank_of


def test_two_items_closed_form():
    # a beat b 3 times, b beat a once: the MLE has p_a / p_b = 3
    s = bradley_terry(np.array([[0, 3], [1, 0]]), prior=0.0)
    assert s[0] - s[1] == pytest.approx(math.log(3), abs=1e-8)
    assert s.sum() == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=9, max_size=9))
def test_the_fit_solves_the_likelihood_equations(cells):
    """At the (prior-free) MLE, each item's expected wins equal its observed wins."""
    w = np.array(cells, dtype=float).reshape(3, 3)
    np.fill_diagonal(w, 0)
    w += 1  # every pair met and each side won at least once: the MLE exists
    np.fill_diagonal(w, 0)
    p = np.exp(bradley_terry(w, prior=0.0, tol=1e-13))
    n = w + w.T
    expected = (n * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    assert np.allclose(expected, w.sum(axis=1), atol=1e-6)


def test_planted_order_is_recovered_with_intervals_that_cover_it():
    rng = np.random.default_rng(3)
    true = np.array([1.5, 0.8, 0.0, -0.6, -1.7])
    k = len(true)
    wins, ties = np.zeros((k, k)), np.zeros((k, k))
    for _ in range(3000):
        i, j = rng.choice(k, 2, replace=False)
        if rng.random() < 1 / (1 + math.exp(true[j] - true[i])):
            wins[i, j] += 1
        else:
            wins[j, i] += 1
    fit = fit_with_intervals(wins, ties, resamples=300, seed=1)
    assert list(fit.rank) == [1, 2, 3, 4, 5]
    assert np.all(fit.ci_low <= fit.strength) and np.all(fit.strength <= fit.ci_high)
    centred = true - true.mean()
    assert np.all((fit.ci_low <= centred + 0.05) & (centred - 0.05 <= fit.ci_high))
    assert fit.rank_low[0] == 1 and fit.rank_high[-1] == 5
    # seeded: the same seed gives the same intervals
    again = fit_with_intervals(wins, ties, resamples=300, seed=1)
    assert np.array_equal(again.ci_low, fit.ci_low)


def test_a_tie_counts_half_a_win_to_each_side():
    ties = np.array([[0, 4], [4, 0]], dtype=float)
    wins = np.array([[0, 2], [0, 0]], dtype=float)
    fit = fit_with_intervals(wins, ties, resamples=0)
    # a: 2 + 2 half-wins = 4 of 6; b: 2 of 6 -> p_a / p_b = 2 (with the weak prior, a little less)
    assert 0.5 < fit.strength[0] - fit.strength[1] <= math.log(2) + 1e-9
    assert list(fit.duels) == [6.0, 6.0]


def test_a_category_that_won_every_duel_stays_finite():
    s = bradley_terry(np.array([[0, 5, 4], [0, 0, 2], [0, 1, 0]]), prior=1.0)
    assert np.all(np.isfinite(s)) and rank_of(s)[0] == 1


def test_top_recovery_counts_the_planted_top_and_top_three():
    from specstress.validation import top_recovery

    weights = {"a": 3.0, "b": 2.0, "c": 1.0, "d": -1.0, "e": -2.0}
    assert top_recovery(weights, {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.0, "e": -1}) == {"top1": 1.0, "top3": 1.0}
    got = top_recovery(weights, {"a": 0.5, "b": 0.9, "c": -0.4, "d": 0.1, "e": -1})
    assert got == {"top1": 0.0, "top3": pytest.approx(2 / 3)}
