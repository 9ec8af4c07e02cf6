"""The always-valid sequential test (mSPRT): A/A false positives with a look after every request, power, plan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointsman.ops.experiments.stats import (
    fixed_horizon_samples,
    msprt_log_lambda,
    msprt_path,
    planned_samples,
    sequential_power,
    sequential_test,
)

ALPHA = 0.05
RUNS = 1000
PER_ARM = 500
BURN_IN = 30  # StoppingDef.min_samples_per_arm's default


def simulate(draw, shift: float = 0.0, runs: int = RUNS, per_arm: int = PER_ARM, seed: int = 0):
    """Arrival order (True: arm b) and values of `runs` experiments; arm b's values shifted by `shift`."""
    rng = np.random.default_rng(seed)
    in_b = rng.random((runs, 2 * per_arm)) < 0.5
    values = draw(rng, (runs, 2 * per_arm)) + shift * in_b
    return in_b, values


DRAWS = {
    "normal": lambda rng, shape: rng.normal(1.0, 0.3, shape),
    "skewed durations": lambda rng, shape: rng.exponential(1.0, shape),  # sd = mean, as latencies often are
    "errors at 5%": lambda rng, shape: (rng.random(shape) < 0.05).astype(float),
}


@pytest.mark.parametrize("name", list(DRAWS))
def test_aa_experiments_looked_at_after_every_request_stay_under_alpha(name):
    in_b, values = simulate(DRAWS[name])
    scale = max(1.0, float(values.std())) if name != "errors at 5%" else 0.5  # report.effect_size's scales
    path = msprt_path(in_b, values, (0.1 * scale) ** 2, min_samples=BURN_IN)

    false_positive_rate = float((path.max(axis=1) >= math.log(1 / ALPHA)).mean())

    assert false_positive_rate <= ALPHA, false_positive_rate


def test_the_simulation_catches_the_peeking_bias_of_a_fixed_horizon_test():
    in_b, values = simulate(DRAWS["normal"])
    n_b = np.cumsum(in_b, axis=1)
    n_a = np.arange(1, in_b.shape[1] + 1) - n_b
    mean_b = np.cumsum(values * in_b, axis=1) / np.maximum(n_b, 1)
    mean_a = np.cumsum(values * ~in_b, axis=1) / np.maximum(n_a, 1)
    se = 0.3 * np.sqrt(1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1))
    z = np.abs(mean_b - mean_a) / se
    looked = (z > 1.96) & (n_a >= BURN_IN) & (n_b >= BURN_IN)

    assert float(looked.any(axis=1).mean()) > 3 * ALPHA  # re-testing at every look: many false winners


def test_power_at_the_planned_sample_size_reaches_the_target():
    effect, sd = 0.1, 0.3
    n = planned_samples(effect, sd, sd, ALPHA)
    in_b, values = simulate(DRAWS["normal"], shift=effect, runs=400, per_arm=n, seed=1)
    path = msprt_path(in_b, values, effect**2, min_samples=BURN_IN)

    # the plan is conservative (it counts only the last look), and arrivals are random
    assert float((path.max(axis=1) >= math.log(1 / ALPHA)).mean()) >= 0.78


def test_plan_is_the_smallest_n_with_the_power_and_costs_more_than_one_look_at_the_end():
    n = planned_samples(0.1, 0.3, 0.3, ALPHA)

    assert sequential_power(0.1, 0.3, 0.3, n, ALPHA) >= 0.8 > sequential_power(0.1, 0.3, 0.3, n - 1, ALPHA)
    assert fixed_horizon_samples(0.1, 0.3, 0.3, ALPHA) == math.ceil((1.959964 + 0.841621) ** 2 * 0.18 / 0.01)
    assert n > fixed_horizon_samples(0.1, 0.3, 0.3, ALPHA)


def test_lambda_matches_the_closed_form_and_zero_variance_cases():
    se2, tau2, diff = 0.04, 0.01, 0.3
    by_hand = math.sqrt(se2 / (se2 + tau2)) * math.exp(tau2 * diff**2 / (2 * se2 * (se2 + tau2)))

    assert float(msprt_log_lambda(diff, se2, tau2)) == pytest.approx(math.log(by_hand))
    assert msprt_log_lambda(np.array([0.0, 1.0]), np.array([0.0, 0.0]), tau2).tolist() == [0.0, math.inf]


def test_sequential_test_interval_holds_the_true_difference_and_p_is_a_running_minimum():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 0.3, 200), rng.normal(1.2, 0.3, 200)
    times = np.arange(200.0)
    result = sequential_test(a, b, times, times + 0.5, effect=0.1, alpha=ALPHA, min_samples=BURN_IN)

    assert result["ci_low"] < 0.2 < result["ci_high"]
    assert result["p"] <= math.exp(-result["log_lambda"]) and result["p"] < ALPHA
    assert result["looks"] == 400
    assert sequential_test(a[:5], b[:5], times[:5], times[:5], 0.1, ALPHA, min_samples=BURN_IN) is None
