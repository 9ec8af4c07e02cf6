"""The report of one experiment: per-arm outcomes, tests against the control, a decision.

    report = build_report(experiment, "active", store.records(experiment=name), store.feedback(name))
    report["decision"]   # {"state": "winner", "winner": "distil", "metric": "duration_s", ...}

The control is the first arm. Stopping rule on the primary metric (stopping.metric): below min_samples_per_arm in any
arm: collecting. Then a treatment arm better than the control with p (Bonferroni-adjusted
over the treatments) under alpha wins (the best such, by mean); if every treatment is
worse, the control wins; else at max_samples_per_arm in every arm: no difference; else
continue. Looking at the p value on every report inflates false positives a little; the
minimum sample size is the guard, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pointsman.ops.experiments.definition import METRICS, ExperimentDef
from pointsman.ops.experiments.stats import compare_proportions, mean_ci, welch, wilson_ci
from pointsman.ops.usage.records import RequestRecord

CONTINUOUS = tuple(m for m in METRICS if m != "error_rate")


def arm_samples(records: Sequence[RequestRecord], feedback: Mapping[str, float]) -> dict[str, list[float]]:
    """Per-metric samples of one arm: successful requests only, feedback on any request."""
    ok = [r for r in records if r.ok]
    return {
        "duration_s": [r.duration_s for r in ok],
        "ttft_s": [r.ttft_s for r in ok if r.ttft_s is not None],
        "tokens_per_s": [v for v in (r.tokens_per_s for r in ok) if v is not None],
        "mean_logprob": [r.mean_logprob for r in ok if r.mean_logprob is not None],
        "feedback": [feedback[r.request_id] for r in records if r.request_id in feedback],
    }


def _arm_summary(arm, records: Sequence[RequestRecord], samples: dict[str, list[float]]) -> dict:
    errors = sum(1 for r in records if not r.ok)
    return {
        "name": arm.name, "weight": arm.weight, "model": arm.model, "policy": arm.policy,
        "requests": len(records), "errors": errors, "error_rate": wilson_ci(errors, len(records)),
        "sticky_requests": sum(1 for r in records if r.user),
        "metrics": {m: mean_ci(samples[m]) for m in CONTINUOUS},
    }


def _compare(control: dict, arm: dict, c_samples: dict, a_samples: dict, n_tests: int, alpha: float) -> dict:
    results = {}
    for metric in CONTINUOUS:
        results[metric] = welch(c_samples[metric], a_samples[metric])
    results["error_rate"] = compare_proportions(control["errors"], control["requests"], arm["errors"], arm["requests"])
    for metric, result in results.items():
        if result is None:
            continue
        result["p_adjusted"] = min(1.0, result["p"] * n_tests)
        result["significant"] = result["p_adjusted"] < alpha
        direction = METRICS[metric]
        result["better"] = result["significant"] and (result["diff"] > 0) == (direction == "higher")
        result["worse"] = result["significant"] and not result["better"] and result["diff"] != 0
    return {"arm": arm["name"], "vs": control["name"], "metrics": results}


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
                       f"{r['diff']:+.4g}, adjusted p {r['p_adjusted']:.3g} < {rule.alpha}"}
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
                       f"({r['test']}, adjusted p {r['p_adjusted']:.3g})")
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
    comparisons = [_compare(arms[0], arm, samples[arms[0]["name"]], samples[arm["name"]], n_tests,
                            experiment.stopping.alpha) for arm in arms[1:]]
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
        "notes": ["intervals are 95%; p values are Bonferroni-adjusted over the arms compared with the control",
                  "continuous metrics count successful requests only; feedback counts any request with a score",
                  "repeated looks at a running experiment inflate false positives: trust decisions made after "
                  "min_samples_per_arm"],
    }
