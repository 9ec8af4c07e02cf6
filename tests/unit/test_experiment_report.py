"""The experiment report: per-arm figures, tests against the control, and the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from pointsman.ops.experiments.definition import parse_experiment
from pointsman.ops.experiments.report import build_report


def experiment(metric: str = "duration_s", arms: tuple[str, ...] = ("a", "b"), min_n: int = 10, max_n: int = 100,
               alpha: float = 0.05):
    return parse_experiment({"name": "e", "arms": [{"name": n, "model": "gpt2"} for n in arms],
                             "stopping": {"metric": metric, "min_samples_per_arm": min_n,
                                          "max_samples_per_arm": max_n, "alpha": alpha}})


def arm_records(make_record, arm: str, durations, **extra) -> list:
    return [make_record(experiment="e", arm=arm, duration_s=float(d), tokens=20, **extra) for d in durations]


def test_report_figures_match_an_independent_computation(make_record) -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 0.2, 40).clip(0.01), rng.normal(0.8, 0.3, 35).clip(0.01)
    records = arm_records(make_record, "a", a) + arm_records(make_record, "b", b)
    records += [make_record(experiment="e", arm="b", error_kind="generation_failed", tokens=0)] * 3
    records += [make_record(experiment="other", arm="a")]  # another experiment's record is ignored
    report = build_report(experiment(), "active", [r for r in records if r.experiment == "e"], {})
    arm_a, arm_b = report["arms"]
    assert (arm_a["requests"], arm_b["requests"], arm_b["errors"]) == (40, 38, 3)
    half = sps.t.ppf(0.975, 39) * a.std(ddof=1) / np.sqrt(40)
    assert arm_a["metrics"]["duration_s"] == pytest.approx({"n": 40, "mean": a.mean(), "std": a.std(ddof=1),
                                                            "ci_low": a.mean() - half, "ci_high": a.mean() + half})
    tps = 20 / b
    assert arm_b["metrics"]["tokens_per_s"]["mean"] == pytest.approx(tps.mean())
    duration = report["comparisons"][0]["metrics"]["duration_s"]
    assert duration["test"] == "msprt" and duration["diff"] == pytest.approx(b.mean() - a.mean())
    assert duration["p"] == pytest.approx(msprt_p_by_hand(a, b, effect=0.1 * a.mean(), burn_in=10))
    errors = report["comparisons"][0]["metrics"]["error_rate"]
    assert errors["test"] == "msprt" and errors["diff"] == pytest.approx(3 / 38)


def msprt_p_by_hand(a, b, effect: float, burn_in: int) -> float:
    """Min over looks of 1/Lambda, one look per observation (a's all stamped before b's), in plain Python."""
    best = 1.0
    for k in range(burn_in, len(b) + 1):
        x, y = list(a), list(b[:k])
        se2 = np.var(x, ddof=1) / len(x) + np.var(y, ddof=1) / len(y)
        tau2, diff = effect**2, np.mean(y) - np.mean(x)
        lam = np.sqrt(se2 / (se2 + tau2)) * np.exp(tau2 * diff**2 / (2 * se2 * (se2 + tau2)))
        best = min(best, 1 / lam)
    return best


@pytest.mark.parametrize(("a_mean", "b_mean", "n", "state", "winner"), [
    (1.0, 0.5, 5, "collecting", None),       # below min_samples_per_arm
    (1.0, 0.5, 30, "winner", "b"),           # b faster, significant
    (0.5, 1.0, 30, "winner", "a"),           # the only treatment is worse: the control wins
    (1.0, 1.0, 100, "no_difference", None),  # max samples reached, nothing found
    (1.0, 1.0, 50, "continue", None),
])
def test_stopping_rule(make_record, a_mean, b_mean, n, state, winner) -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.1, n)
    records = arm_records(make_record, "a", a_mean + noise) + arm_records(make_record, "b", b_mean + noise[::-1])
    decision = build_report(experiment(), "active", records, {})["decision"]
    assert (decision["state"], decision["winner"]) == (state, winner), decision["reason"]
    assert decision["samples"] == {"a": n, "b": n}


def test_p_values_are_bonferroni_adjusted_over_the_treatments(make_record) -> None:
    rng = np.random.default_rng(9)
    records = [r for arm, mu in (("a", 1.0), ("b", 0.95), ("c", 1.02))
               for r in arm_records(make_record, arm, rng.normal(mu, 0.1, 30))]
    report = build_report(experiment(arms=("a", "b", "c")), "active", records, {})
    for comparison in report["comparisons"]:
        d = comparison["metrics"]["duration_s"]
        assert d["p_adjusted"] == pytest.approx(min(1.0, 2 * d["p"]))
        assert comparison["vs"] == "a"


def test_higher_is_better_metrics_and_feedback_scores(make_record) -> None:
    a = arm_records(make_record, "a", [1.0] * 12)
    b = arm_records(make_record, "b", [1.0] * 12)
    feedback = {r.request_id: 0.2 + 0.01 * i for i, r in enumerate(a)}
    feedback |= {r.request_id: 0.8 + 0.01 * i for i, r in enumerate(b)}
    report = build_report(experiment(metric="feedback"), "active", a + b, feedback)
    assert report["arms"][1]["metrics"]["feedback"]["mean"] == pytest.approx(0.855)
    assert report["decision"]["state"] == "winner" and report["decision"]["winner"] == "b"


def test_error_rate_as_primary_metric_counts_requests(make_record) -> None:
    a = arm_records(make_record, "a", [1.0] * 60)
    b = arm_records(make_record, "b", [1.0] * 30) + [make_record(experiment="e", arm="b", error_kind="unavailable")
                                                      for _ in range(30)]
    decision = build_report(experiment(metric="error_rate"), "active", a + b, {})["decision"]
    assert decision["samples"] == {"a": 60, "b": 60}
    assert (decision["state"], decision["winner"]) == ("winner", "a")


def test_guardrail_flags_an_arm_that_fails_more(make_record) -> None:
    a = arm_records(make_record, "a", [1.0, 1.1] * 30)
    b = arm_records(make_record, "b", [1.0, 1.1] * 15) + [make_record(experiment="e", arm="b",
                                                                       error_kind="generation_failed")] * 30
    decision = build_report(experiment(), "active", a + b, {})["decision"]
    assert decision["guardrails"] and decision["guardrails"][0].startswith("b fails more often than a")


def test_plan_gives_samples_for_80_percent_power_and_power_at_the_maximum(make_record) -> None:
    rng = np.random.default_rng(3)
    records = arm_records(make_record, "a", rng.normal(1.0, 0.5, 40).clip(0.01)) + arm_records(make_record, "b",
                                                                                  rng.normal(1.0, 0.5, 40).clip(0.01))
    plan = build_report(experiment(max_n=100), "active", records, {})["comparisons"][0]["plan"]

    assert plan["power_target"] == 0.8 and plan["metric"] == "duration_s"
    # sd 0.5 on a mean of 1.0 and min_effect 0.1 (0.1 absolute): a z-test at the end alone needs
    # 2 x (1.96 + 0.84)^2 x 0.25 / 0.01 = ~390 per arm; always-valid costs more
    assert 300 <= plan["fixed_horizon_samples_per_arm"] <= 500
    assert plan["samples_per_arm"] > plan["fixed_horizon_samples_per_arm"]
    assert 0.0 < plan["power_at_max_samples"] < 0.8  # 100 per arm is too few


def test_mean_logprob_is_shown_per_arm_but_never_compared(make_record) -> None:
    records = arm_records(make_record, "a", [1.0] * 12, mean_logprob=-1.0)
    records += arm_records(make_record, "b", [1.0] * 12, mean_logprob=-3.0)
    report = build_report(experiment(), "active", records, {})

    assert report["arms"][1]["metrics"]["mean_logprob"]["mean"] == -3.0
    assert "mean_logprob" not in report["comparisons"][0]["metrics"]
    with pytest.raises(Exception, match="stopping.metric"):
        experiment(metric="mean_logprob")


def test_empty_experiment_reports_collecting(make_record) -> None:
    report = build_report(experiment(), "paused", [], {})
    assert report["requests"] == 0 and report["decision"]["state"] == "collecting"
    assert report["comparisons"][0]["metrics"]["duration_s"] is None
