"""A/A and A/B simulations of the experiments' stopping rule: false positives under peeking, power, plan.

    .venv/bin/python -m pointsman.loadtests.bench_sequential             # 2,000 runs per row, seeded
    .venv/bin/python -m pointsman.loadtests.bench_sequential --runs 500

Each simulated experiment sends requests to two arms at random and looks after every
request (from the burn-in on, min_samples_per_arm = 30). Rows: the mSPRT the report uses
(ops/experiments/stats.py), Welch-style re-testing at every look (what the report did
before), and one test at the end (no peeking). A/A: no real difference, so every "winner"
is a false positive; A/B: a true difference of min_effect, so the rate is the power.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from scipy import stats

from pointsman.ops.experiments.stats import fixed_horizon_samples, msprt_path, planned_samples

ALPHA = 0.05
BURN_IN = 30
MIN_EFFECT = 0.1


def _means(in_b: np.ndarray, values: np.ndarray):
    n_b = np.cumsum(in_b, axis=1)
    n_a = np.arange(1, in_b.shape[1] + 1) - n_b
    out = []
    for mask, n in ((~in_b, n_a), (in_b, n_b)):
        total, squares = np.cumsum(values * mask, axis=1), np.cumsum(values**2 * mask, axis=1)
        safe = np.maximum(n, 2)
        mean = total / np.maximum(n, 1)
        out.append((n, mean, np.maximum(squares - total * mean, 0) / (safe - 1)))
    return out


def rates(in_b: np.ndarray, values: np.ndarray, effect: float) -> dict[str, float]:
    """Share of runs declaring a difference: mSPRT at every look, z-test at every look, z-test at the end."""
    (n_a, mean_a, var_a), (n_b, mean_b, var_b) = _means(in_b, values)
    ready = (n_a >= BURN_IN) & (n_b >= BURN_IN)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(mean_b - mean_a) / np.sqrt(var_a / n_a + var_b / n_b)
    critical = stats.norm.ppf(1 - ALPHA / 2)
    path = msprt_path(in_b, values, effect**2, min_samples=BURN_IN)
    return {"msprt, look after every request": float((path.max(1) >= math.log(1 / ALPHA)).mean()),
            "t/z test re-run at every look": float(((z > critical) & ready).any(1).mean()),
            "t/z test once, at the end": float((z[:, -1] > critical).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_sequential",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--per-arm", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2024)
    draws = {"normal (mean 1, sd 0.3)": (lambda shape: rng.normal(1.0, 0.3, shape), 1.0),
             "exponential durations (mean 1)": (lambda shape: rng.exponential(1.0, shape), 1.0),
             "errors at 5%": (lambda shape: (rng.random(shape) < 0.05).astype(float), 0.5)}
    lines = [f"{args.runs} simulated experiments per row, up to {args.per_arm} requests per arm, alpha {ALPHA}, "
             f"burn-in {BURN_IN} per arm, min_effect {MIN_EFFECT}", ""]
    header = f"{'data':<32}{'kind':>6}  " + "".join(f"{k:>34}" for k in rates(
        np.zeros((1, 4), bool), np.zeros((1, 4)), 0.1))
    lines.append(header)
    for name, (draw, scale) in draws.items():
        effect = MIN_EFFECT * scale
        for kind, shift in (("A/A", 0.0), ("A/B", effect)):
            in_b = rng.random((args.runs, 2 * args.per_arm)) < 0.5
            values = draw(in_b.shape) + shift * in_b
            row = rates(in_b, values, effect)
            lines.append(f"{name:<32}{kind:>6}  " + "".join(f"{v:>34.1%}" for v in row.values()))
    lines += ["", "planned samples per arm for 80% power at min_effect (normal, sd 0.3, effect 0.1):",
              f"  mSPRT (looks at will): {planned_samples(0.1, 0.3, 0.3, ALPHA)}   "
              f"one test at the end: {fixed_horizon_samples(0.1, 0.3, 0.3, ALPHA)}"]
    print("\n".join(lines))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
