"""The report of one experiment: per-arm outcomes, tests against the control, a decision.

    report = build_report(experiment, "active", store.records(experiment=name), store.feedback(name))
    report["decision"]   # {"state": "winner", "winner": "distil", "metric": "duration_s", ...}

The control is the first arm. Every comparison is an mSPRT (stats.sequential_test): its
p value is always valid, so the report may be read, and acted on, after every request
without inflating false positives. Stopping rule on the primary metric (stopping.metric):
below min_samples_per_arm in any arm: collecting. Then a treatment arm better than the
control with p (Bonferroni-adjusted over the treatments) under alpha wins (the best such,
by mean); if every treatment is worse, the control wins; else at max_samples_per_arm in
every arm: no difference; else continue. The plan gives the samples per arm needed for
80% power at stopping.min_effect, and the power reached at max_samples_per_arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pointsman.ops.experiments.definition import DESCRIPTIVE, METRICS, ExperimentDef
from pointsman.ops.experiments.stats import (
    POWER,
    fixed_horizon_samples,
    mean_ci,
    planned_samples,
    sequential_power,
    sequential_test,
    wilson_ci,
)
from pointsman.ops.usage.records import RequestRecord

CONTINUOUS = tuple(m for m in METRICS if m != "error_rate")


def arm_samples(records: Sequence[RequestRecord], feedback: Mapping[str, float]
                ) -> dict[str, tuple[list[float], list[float]]]:
    """Per-metric (timestamps, values) of one arm: successful requests only, feedback on any request.

    error_rate is 1.0 for a failed request and 0.0 for a successful one, over every request.
    """
    ok = [r for r in records if r.ok]

    def timed(pairs) -> tuple[list[float], list[float]]:
        pairs = [(t, float(v)) for t, v in pairs if v is not None]
        return [t for t, _ in pairs], [v for _, v in pairs]

    return {
        "duration_s": timed((r.timestamp, r.duration_s) for r in ok),
        "ttft_s": timed((r.timestamp, r.ttft_s) for r in ok),
        "tokens_per_s": timed((r.timestamp, r.tokens_per_s) for r in ok),
        "mean_logprob": timed((r.timestamp, r.mean_logprob) for r in ok),
        "feedback": timed((r.timestamp, feedback.get(r.request_id)) for r in records),
        "error_rate": timed((r.timestamp, 0.0 if r.ok else 1.0) for r in records),
    }


def _arm_summary(arm, records: Sequence[RequestRecord], samples: dict) -> dict:
    errors = sum(1 for r in records if not r.ok)
    return {
        "name": arm.name, "weight": arm.weight, "model": arm.model, "policy": arm.policy,
        "requests": len(records), "errors": errors, "error_rate": wilson_ci(errors, len(records)),
        "sticky_requests": sum(1 for r in records if r.user),
        "metrics": {m: mean_ci(samples[m][1]) for m in CONTINUOUS + DESCRIPTIVE},
    }


# a rate's scale is at least the largest standard deviation a 0/1 outcome can have: with no
# errors in the control, min_effect 0.1 asks for a five percentage point change
RATE_SCALE_FLOOR = 0.5


def effect_size(control: Sequence[float], min_effect: float, metric: str) -> float | None:
    """The absolute difference worth detecting: min_effect x the control's scale (max of |mean| and sd)."""
    if len(control) < 2:
        return None
    scale = max(abs(float(np.mean(control))), float(np.std(control, ddof=1)))
    if metric == "error_rate":
        scale = max(scale, RATE_SCALE_FLOOR)
    return min_effect * scale if scale > 0 else None


def _compare(control: dict, arm: dict, c_samples: dict, a_samples: dict, n_tests: int, experiment: ExperimentDef
             ) -> dict:
    rule = experiment.stopping
    results = {}
    for metric in METRICS:
        (c_times, c_values), (a_times, a_values) = c_samples[metric], a_samples[metric]
        effect = effect_size(c_values, rule.min_effect, metric)
        if effect is None or min(len(c_values), len(a_values)) < rule.min_samples_per_arm:
            results[metric] = None
            continue
        results[metric] = sequential_test(c_values, a_values, c_times, a_times, effect, rule.alpha,
                                          min_samples=rule.min_samples_per_arm)
    for metric, result in results.items():
        if result is None:
            continue
        result["p_adjusted"] = min(1.0, result["p"] * n_tests)
        result["significant"] = result["p_adjusted"] < rule.alpha
        direction = METRICS[metric]
        result["better"] = result["significant"] and (result["diff"] > 0) == (direction == "higher")
        result["worse"] = result["significant"] and not result["better"] and result["diff"] != 0
    return {"arm": arm["name"], "vs": control["name"], "metrics": results}


def plan(experiment: ExperimentDef, c_samples: dict, a_samples: dict) -> dict | None:
    """Samples per arm for POWER at min_effect on the primary metric, from the variances seen so far."""
    rule = experiment.stopping
    (_, c_values), (_, a_values) = c_samples[rule.metric], a_samples[rule.metric]
    effect = effect_size(c_values, rule.min_effect, rule.metric)
    if effect is None or len(a_values) < 2:
        return None
    sd_c, sd_a = float(np.std(c_values, ddof=1)), float(np.std(a_values, ddof=1))
    return {"metric": rule.metric, "min_effect": rule.min_effect, "effect": effect, "power_target": POWER,
            "samples_per_arm": planned_samples(effect, sd_c, sd_a, rule.alpha / max(1, len(experiment.arms) - 1)),
            "fixed_horizon_samples_per_arm": fixed_horizon_samples(effect, sd_c, sd_a, rule.alpha),
            "power_at_max_samples": round(sequential_power(effect, sd_c, sd_a, rule.max_samples_per_arm,
                                                           rule.alpha / max(1, len(experiment.arms) - 1)), 4)}


def _sample_count(arm: dict, metric: str) -> int:
    return arm["requests"] if metric == "error_rate" else arm["metrics"][metric]["n"]


def _mean(arm: dict, metric: str) -> float | None:
    return arm["error_rate"]["value"] if metric == "error_rate" else arm["metrics"][metric]["mean"]


def decide(experiment: ExperimentDef, arms: list[dict], comparisons: list[dict]) -> dict:
    """Apply the stopping rule to the primary metric."""
    rule = experiment.stopping
    metric, direction = rule.metric, METRICS[rule.metric]
    counts = {a["name"]: _sample_count(a, metric) for a in arms}
    base = {"metric": metric, "better": direction, "alpha": rule.alpha, "samples": counts,
            "min_samples_per_arm": rule.min_samples_per_arm, "max_samples_per_arm": rule.max_samples_per_arm,
            "winner": None}
    short = {name: n for name, n in counts.items() if n < rule.min_samples_per_arm}
    if short:
        listed = ", ".join(f"{name} {n}" for name, n in short.items())
        return base | {"state": "collecting", "reason": f"{metric} samples below {rule.min_samples_per_arm} "
                                                          f"per arm: {listed}"}
    results = {c["arm"]: c["metrics"][metric] for c in comparisons}
    better = [name for name, r in results.items() if r and r["better"]]
    worse = [name for name, r in results.items() if r and r["worse"]]
    by_name = {a["name"]: a for a in arms}
    if better:
        sign = 1 if direction == "higher" else -1
        winner = max(better, key=lambda name: sign * _mean(by_name[name], metric))
        r = results[winner]
        return base | {"state": "winner", "winner": winner, "reason":
                       f"{winner} beats {arms[0]['name']} on {metric} ({direction} is better): difference "
                       f"{r['diff']:+.4g}, always-valid adjusted p {r['p_adjusted']:.3g} < {rule.alpha}"}
    if worse and len(worse) == len(arms) - 1:
        return base | {"state": "winner", "winner": arms[0]["name"], "reason":
                       f"every other arm is worse than {arms[0]['name']} on {metric} (adjusted p < {rule.alpha})"}
    if min(counts.values()) >= rule.max_samples_per_arm:
        return base | {"state": "no_difference", "reason":
                       f"{rule.max_samples_per_arm} {metric} samples per arm reached without a significant "
                       f"difference at alpha {rule.alpha}"}
    return base | {"state": "continue", "reason": f"no significant difference on {metric} yet; "
                                                  f"stop at {rule.max_samples_per_arm} samples per arm"}


def guardrails(comparisons: list[dict], primary: str) -> list[str]:
    """Arms that fail significantly more often than the control, whatever the primary metric."""
    if primary == "error_rate":
        return []
    out = []
    for c in comparisons:
        r = c["metrics"]["error_rate"]
        if r and r["significant"] and r["diff"] > 0:
            out.append(f"{c['arm']} fails more often than {c['vs']}: error rate {r['diff']:+.1%} "
                       f"({r['test']}, always-valid adjusted p {r['p_adjusted']:.3g})")
    return out


def build_report(experiment: ExperimentDef, status: str, records: Sequence[RequestRecord],
                 feedback: Mapping[str, float]) -> dict:
    by_arm: dict[str, list[RequestRecord]] = {a.name: [] for a in experiment.arms}
    for r in records:
        if r.arm in by_arm:
            by_arm[r.arm].append(r)
    samples = {name: arm_samples(recs, feedback) for name, recs in by_arm.items()}
    arms = [_arm_summary(a, by_arm[a.name], samples[a.name]) for a in experiment.arms]
    n_tests = len(arms) - 1
    comparisons = [_compare(arms[0], arm, samples[arms[0]["name"]], samples[arm["name"]], n_tests, experiment)
                   for arm in arms[1:]]
    for comparison in comparisons:
        comparison["plan"] = plan(experiment, samples[arms[0]["name"]], samples[comparison["arm"]])
    return {
        "name": experiment.name,
        "status": status,
        "description": experiment.description,
        "filter": experiment.filter.model_dump(),
        "stopping": experiment.stopping.model_dump(),
        "control": arms[0]["name"],
        "requests": sum(a["requests"] for a in arms),
        "arms": arms,
        "comparisons": comparisons,
        "decision": decide(experiment, arms, comparisons) | {"guardrails": guardrails(comparisons,
                                                                                       experiment.stopping.metric)},
        "notes": ["comparisons are mSPRT sequential tests: p values and intervals stay valid however often the "
                  "report is read; p values are Bonferroni-adjusted over the arms compared with the control",
                  "per-arm intervals are 95% t intervals (descriptive)",
                  "continuous metrics count successful requests only; feedback counts any request with a score",
                  "mean_logprob is each model's likelihood of its own output: shown per arm, never compared; "
                  "compare quality with feedback",
                  "plan: samples per arm for 80% power at min_effect, from the variances seen so far"],
    }
