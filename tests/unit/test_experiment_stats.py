"""Report statistics checked against values computed independently, by hand formulas and tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pointsman.ops.experiments.stats import compare_proportions, mean_ci, welch, wilson_ci

T_975 = {3: 3.182446305284263, 4: 2.7764451051977987, 9: 2.2621571627409915}  # Student t quantiles (tables)
Z_975 = 1.959963984540054


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0, 4.0], [0.5, 0.7, 0.2, 0.9, 0.4], list(np.arange(10) ** 1.5)])
def test_mean_ci_is_the_student_t_interval(values) -> None:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * sd / math.sqrt(n)
    assert mean_ci(values) == pytest.approx({"n": n, "mean": mean, "std": sd, "ci_low": mean - half,
                                             "ci_high": mean + half})


@pytest.mark.parametrize(("values", "expected"), [([], {"n": 0, "mean": None}), ([2.5], {"n": 1, "mean": 2.5})])
def test_mean_ci_has_no_interval_below_two_samples(values, expected) -> None:
    result = mean_ci(values)
    assert {k: result[k] for k in expected} == expected and result["ci_low"] is None


def test_welch_matches_hand_computed_statistic_degrees_of_freedom_and_interval() -> None:
    a = [1.0, 2.0, 3.0, 4.0]              # mean 2.5,  var 5/3
    b = [2.0, 3.0, 4.0, 6.0, 7.0, 8.0]    # mean 5.0,  var 5.6
    va, vb = (5 / 3) / 4, 5.6 / 6
    t = 2.5 / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 5)
    result = welch(a, b)
    assert result["diff"] == pytest.approx(2.5)
    assert result["t"] == pytest.approx(t) and result["df"] == pytest.approx(df)
    # p: two-sided tail of Student t with the Welch df, from the distribution, not from ttest_ind
    assert result["p"] == pytest.approx(2 * sps.t.sf(t, df))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half))


def test_welch_interval_agrees_with_scipys_own_interval() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 0.3, 40), rng.normal(1.2, 0.6, 55)
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    result = welch(list(a), list(b))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize(("a", "b", "p"), [([1.0, 1.0], [1.0, 1.0], 1.0), ([1.0, 1.0], [2.0, 2.0], 0.0)])
def test_welch_with_constant_arms_is_exact(a, b, p) -> None:
    assert welch(a, b)["p"] == p


def test_welch_needs_two_samples_per_arm() -> None:
    assert welch([1.0], [1.0, 2.0]) is None


@pytest.mark.parametrize(("k", "n"), [(3, 20), (0, 15), (15, 15), (50, 100)])
def test_wilson_interval_matches_the_textbook_formula(k, n) -> None:
    p, z = k / n, Z_975
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    result = wilson_ci(k, n)
    assert result["value"] == pytest.approx(p)
    assert result["ci_low"] == pytest.approx(max(0.0, centre - half))
    assert result["ci_high"] == pytest.approx(min(1.0, centre + half))


def test_chi_square_equals_the_pooled_two_proportion_z_test() -> None:
    k_a, n_a, k_b, n_b = 10, 100, 22, 100
    pooled = (k_a + k_b) / (n_a + n_b)
    z = (k_b / n_b - k_a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    result = compare_proportions(k_a, n_a, k_b, n_b)
    assert result["test"] == "chi_square"
    assert result["chi2"] == pytest.approx(z**2)
    assert result["p"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert result["diff"] == pytest.approx(0.12)


def test_small_counts_use_fishers_exact_test_summed_by_hand() -> None:
    k_a, n_a, k_b, n_b = 0, 12, 4, 12
    total, successes = n_a + n_b, k_a + k_b

    def hypergeom(x: int) -> float:  # P(arm a holds x of the successes)
        return math.comb(successes, x) * math.comb(total - successes, n_a - x) / math.comb(total, n_a)

    observed = hypergeom(k_a)
    p = sum(hypergeom(x) for x in range(successes + 1) if hypergeom(x) <= observed * (1 + 1e-7))
    result = compare_proportions(k_a, n_a, k_b, n_b)
    assert result["test"] == "fisher_exact" and result["p"] == pytest.approx(p)


def test_no_errors_anywhere_is_no_difference() -> None:
    assert compare_proportions(0, 50, 0, 50)["p"] == pytest.approx(1.0)
    assert compare_proportions(0, 0, 1, 5) is None
