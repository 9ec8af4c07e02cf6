"""The statistics of an A/B report: t intervals, Welch's t-test, Wilson intervals, 2x2 tests.

    mean_ci([1.0, 2.0, 3.0])                 # {"n": 3, "mean": 2.0, "ci_low": ..., "ci_high": ...}
    welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.5])  # difference b - a with its interval and p value
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
