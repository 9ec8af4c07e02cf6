"""The statistics of an A/B report: mSPRT (always valid), t intervals, Wilson intervals, 2x2 tests.

    mean_ci([1.0, 2.0, 3.0])                 # {"n": 3, "mean": 2.0, "ci_low": ..., "ci_high": ...}
    welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.5])  # difference b - a with its interval and p value
    sequential_test(a, b, a_times, b_times, effect=0.1, alpha=0.05)   # mSPRT: valid at every look
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean with a Student-t interval; no interval below two samples."""
    data = np.asarray(values, dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = float(data.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict | None:
    """Welch's t-test of mean(b) - mean(a), with the Welch-Satterthwaite interval; None below 2 each."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return None
    if np.ptp(x) == 0.0 and np.ptp(y) == 0.0:  # both arms constant: the difference is exact
        diff = float(y[0] - x[0])
        return {"test": "welch_t", "diff": diff, "ci_low": diff, "ci_high": diff, "t": None, "df": None,
                "p": 1.0 if diff == 0.0 else 0.0}
    diff = float(y.mean() - x.mean())
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    result = stats.ttest_ind(y, x, equal_var=False)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {"test": "welch_t", "diff": diff, "ci_low": diff - half, "ci_high": diff + half,
            "t": float(result.statistic), "df": float(df), "p": float(result.pvalue)}


def wilson_ci(successes: int, n: int, confidence: float = CONFIDENCE) -> dict:
    """A proportion with its Wilson score interval (sound near 0 and 1, unlike the normal one)."""
    if n == 0:
        return {"n": 0, "value": None, "ci_low": None, "ci_high": None}
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return {"n": n, "value": p, "ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half)}


def compare_proportions(k_a: int, n_a: int, k_b: int, n_b: int) -> dict | None:
    """Rate b - rate a, tested on the 2x2 table.

    Pearson chi-square, or Fisher's exact test when an expected count is under 5 (the
    chi-square approximation is poor there).
    """
    if n_a == 0 or n_b == 0:
        return None
    table = np.array([[k_a, n_a - k_a], [k_b, n_b - k_b]], dtype=np.float64)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    diff = k_b / n_b - k_a / n_a
    if expected.min() < 5:
        _, p = stats.fisher_exact(table.astype(np.int64))
        return {"test": "fisher_exact", "diff": diff, "p": float(p)}
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    return {"test": "chi_square", "diff": diff, "chi2": float(chi2), "p": float(p)}


# ---------------------------------------------------------------- always-valid sequential test
# mSPRT (Johari, Pekelis, Walsh, "Always valid inference", 2017): the likelihood ratio of
# "difference ~ N(0, tau^2)" against "difference = 0", on the normal approximation of the
# difference of means with plug-in variances. Its running maximum crosses 1/alpha with
# probability <= alpha under no difference, however often one looks, so a report may be read
# after every request. tau is set to the smallest difference worth detecting.
SEQUENTIAL_MIN_SAMPLES = 2
POWER = 0.8


def msprt_log_lambda(diff: np.ndarray, se2: np.ndarray, tau2: np.ndarray | float) -> np.ndarray:
    """Log of the mixture likelihood ratio for an observed difference with variance se2 (elementwise)."""
    diff, se2 = np.asarray(diff, np.float64), np.asarray(se2, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * np.log(se2 / (se2 + tau2)) + tau2 * diff**2 / (2.0 * se2 * (se2 + tau2))
    # a variance of zero: a certain difference is infinite evidence, no difference none
    return np.where(se2 > 0, out, np.where(diff != 0, np.inf, 0.0))


def msprt_path(in_b: np.ndarray, values: np.ndarray, tau2: np.ndarray | float,
               min_samples: int = SEQUENTIAL_MIN_SAMPLES) -> np.ndarray:
    """Log Lambda after each observation, in arrival order (last axis; leading axes are independent runs).

    in_b: True where the observation belongs to arm b, else arm a. Looks before either arm has
    min_samples observations get log Lambda = 0 (no evidence).
    """
    in_b = np.asarray(in_b, bool)
    values = np.asarray(values, np.float64)
    stats_by_arm = []
    for mask in (~in_b, in_b):
        x = np.where(mask, values, 0.0)
        n = np.cumsum(mask, axis=-1)
        total, squares = np.cumsum(x, axis=-1), np.cumsum(x * x, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / n
            var = np.maximum(squares - total * mean, 0.0) / (n - 1)
        stats_by_arm.append((n, mean, var))
    (n_a, mean_a, var_a), (n_b, mean_b, var_b) = stats_by_arm
    ready = (n_a >= min_samples) & (n_b >= min_samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        se2 = var_a / n_a + var_b / n_b
        log_lambda = msprt_log_lambda(mean_b - mean_a, se2, tau2)
    return np.where(ready, log_lambda, 0.0)


def _half_width(se2: float, tau2: float, alpha: float) -> float:
    """The always-valid interval's half width: the |difference| at which Lambda reaches 1/alpha."""
    return math.sqrt(2.0 * se2 * (se2 + tau2) / tau2 * (math.log(1.0 / alpha) + 0.5 * math.log((se2 + tau2) / se2)))


def sequential_test(a: Sequence[float], b: Sequence[float], a_times: Sequence[float], b_times: Sequence[float],
                    effect: float, alpha: float, min_samples: int = SEQUENTIAL_MIN_SAMPLES) -> dict | None:
    """MSPRT of mean(b) - mean(a) over every look so far (one after each observation, in time order).

    effect: the smallest absolute difference worth detecting (the mixture's scale). Returns the
    always-valid p value (running minimum of 1/Lambda), the always-valid interval at the last
    look, and the current evidence; None below min_samples per arm (the burn-in: with plug-in
    variances, looks on a handful of samples are what would inflate false positives).
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    min_samples = max(min_samples, SEQUENTIAL_MIN_SAMPLES)
    if x.size < min_samples or y.size < min_samples:
        return None
    if not effect > 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    order = np.argsort(np.concatenate([np.asarray(a_times, np.float64), np.asarray(b_times, np.float64)]),
                      kind="stable")
    values = np.concatenate([x, y])[order]
    in_b = np.concatenate([np.zeros(x.size, bool), np.ones(y.size, bool)])[order]
    tau2 = effect * effect
    path = msprt_path(in_b, values, tau2, min_samples)
    p = float(min(1.0, np.exp(-path.max())))
    diff = float(y.mean() - x.mean())
    se2 = float(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    half = _half_width(se2, tau2, alpha) if se2 > 0 else 0.0
    return {"test": "msprt", "diff": diff, "ci_low": diff - half, "ci_high": diff + half, "p": p,
            "log_lambda": float(path[-1]), "looks": int(path.size), "effect": effect}


def sequential_power(effect: float, sd_a: float, sd_b: float, n: int, alpha: float) -> float:
    """Probability that the mSPRT has rejected by n per arm when the true difference is `effect`.

    A lower bound: the chance that the look at n alone crosses 1/alpha (earlier looks only add).
    """
    se2 = (sd_a**2 + sd_b**2) / n
    if se2 <= 0:
        return 1.0
    h, se = _half_width(se2, effect * effect, alpha), math.sqrt(se2)
    return float(stats.norm.cdf((effect - h) / se) + stats.norm.cdf((-effect - h) / se))


def planned_samples(effect: float, sd_a: float, sd_b: float, alpha: float, power: float = POWER,
                    limit: int = 10_000_000) -> int | None:
    """Smallest n per arm at which sequential_power reaches `power`; None beyond `limit`."""
    if sequential_power(effect, sd_a, sd_b, limit, alpha) < power:
        return None
    low, high = 1, 2
    while sequential_power(effect, sd_a, sd_b, high, alpha) < power:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if sequential_power(effect, sd_a, sd_b, mid, alpha) >= power else (mid, high)
    return high


def fixed_horizon_samples(effect: float, sd_a: float, sd_b: float, alpha: float, power: float = POWER) -> int:
    """Samples per arm a single two-sided z-test at the end needs (no peeking), for comparison."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(z * z * (sd_a**2 + sd_b**2) / effect**2)
