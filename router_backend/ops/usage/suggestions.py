"""Optimisation suggestions from request records, one rule per function, each citing its numbers.

    suggest(records, specialists={"coding": "codegen"}, thresholds=Thresholds())
    # [{"rule": "specialist_busy", "severity": "warning", "message": "coding prompts went to gpt2 in 78% ...",
    #   "evidence": {...}}]

A rule stays silent below `min_requests` of the traffic it judges: advice from five requests is noise.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pointsman.ops.usage.records import RequestRecord

Suggestion = dict


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 20          # traffic a rule needs before it speaks
    bypass_share: float = 0.5       # a task's routed requests that went past its specialist
    cause_share: float = 0.5        # of those, the share that must show one cause (busy, not ready)
    fallback_rate: float = 0.2      # hybrid requests of one preferred model that fell back
    error_rate: float = 0.05        # failed requests of one model
    tail_ratio: float = 4.0         # p99 / p50 of time to first token or per-token latency
    selection_p99_ms: float = 2.0   # the router's decision-time target


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%"


def _routed(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """Requests whose model the router chose: auto, and hybrid once it fell back."""
    return [r for r in records if r.selected_model and r.task
            and (r.selection_mode == "auto" or (r.selection_mode == "hybrid" and r.fallback_used))]


def _specialist_causes(others: Sequence[RequestRecord], specialist: str) -> dict[str, int]:
    causes = Counter()
    for r in others:
        if r.candidates_busy is None:
            causes["unknown"] += 1
        elif specialist not in r.candidates_busy:
            causes["not_ready"] += 1
        elif r.candidates_busy[specialist] > 0:
            causes["busy"] += 1
        else:
            causes["idle"] += 1
    return causes


def specialist_bypassed(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                        th: Thresholds) -> list[Suggestion]:
    out = []
    routed = _routed(records)
    for task, specialist in specialists.items():
        recs = [r for r in routed if r.task == task]
        others = [r for r in recs if r.selected_model != specialist]
        if len(recs) < th.min_requests or not others or len(others) < th.bypass_share * len(recs):
            continue
        alternative, alt_n = Counter(r.selected_model for r in others).most_common(1)[0]
        causes = _specialist_causes(others, specialist)
        head = (f"{task} prompts went to {alternative} in {_pct(alt_n, len(recs))} of cases ({alt_n} of {len(recs)}); "
                f"{len(others)} of {len(recs)} bypassed {specialist}, the {task} specialist")
        evidence = {"task": task, "specialist": specialist, "routed_requests": len(recs), "bypassed": len(others),
                    "top_alternative": alternative, "top_alternative_requests": alt_n, "causes": dict(causes)}
        if causes["busy"] >= th.cause_share * len(others):
            load = np.mean([r.candidates_busy[specialist] for r in others if (r.candidates_busy or {}).get(specialist)])
            evidence["specialist_mean_busy"] = round(float(load), 2)
            out.append({"rule": "specialist_busy", "severity": "warning", "evidence": evidence, "message":
                        f"{head}, because {specialist} was busy in {causes['busy']} of those {len(others)} "
                        f"(mean {load:.1f} requests in flight or queued); add a {specialist} instance "
                        f"(instance_group count) or raise its max_num_seqs parameter"})
        elif causes["not_ready"] >= th.cause_share * len(others):
            out.append({"rule": "specialist_not_ready", "severity": "warning", "evidence": evidence, "message":
                        f"{head}, because {specialist} was not ready in {causes['not_ready']} of those "
                        f"{len(others)}; load it (POST /v2/repository/models/{specialist}/load) and check its log"})
        else:
            out.append({"rule": "specialist_outscored", "severity": "info", "evidence": evidence, "message":
                        f"{head} although it was idle or its load unknown in {causes['idle'] + causes['unknown']} "
                        f"of those; check its specialization_score and tokens_per_second_prior in the catalog, "
                        f"and the max_response_time callers ask for"})
    return out


def hybrid_fallback_high(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                         th: Thresholds) -> list[Suggestion]:
    by_preferred: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.selection_mode == "hybrid":
            by_preferred[r.preferred_model or "(not recorded)"].append(r)
    out = []
    for preferred, recs in sorted(by_preferred.items()):
        fell = [r for r in recs if r.fallback_used]
        if len(recs) < th.min_requests or len(fell) < th.fallback_rate * len(recs):
            continue
        reasons = dict(Counter(r.fallback_reason or "unspecified" for r in fell).most_common())
        listed = ", ".join(f"{k} {v}" for k, v in reasons.items())
        out.append({"rule": "hybrid_fallback_high", "severity": "warning", "message":
                    f"hybrid requests preferring {preferred} fell back in {_pct(len(fell), len(recs))} of cases "
                    f"({len(fell)} of {len(recs)}; {listed}); keep {preferred} loaded and healthy or add an instance",
                    "evidence": {"preferred_model": preferred, "requests": len(recs), "fallbacks": len(fell),
                                 "rate": round(len(fell) / len(recs), 4), "reasons": reasons}})
    return out


def model_never_chosen(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                       th: Thresholds) -> list[Suggestion]:
    auto = [r for r in records if r.selection_mode == "auto" and r.candidates_busy is not None]
    if len(auto) < th.min_requests:
        return []
    ready = Counter(m for r in auto for m in r.candidates_busy)
    chosen = Counter(r.selected_model for r in auto)
    out = []
    for model, n_ready in sorted(ready.items()):
        if chosen[model] == 0 and n_ready >= th.min_requests:
            out.append({"rule": "model_never_chosen", "severity": "info", "message":
                        f"{model} was ready for {n_ready} auto-selected requests and chosen for none; unload it to "
                        f"free memory and CPU, or revise its catalog scores if it should take traffic",
                        "evidence": {"model": model, "ready_for": n_ready, "chosen": 0, "auto_requests": len(auto)}})
    return out


def error_rate_high(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                    th: Thresholds) -> list[Suggestion]:
    by_model: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        by_model[r.selected_model or "(before selection)"].append(r)
    out = []
    for model, recs in sorted(by_model.items()):
        failed = [r for r in recs if not r.ok]
        if len(recs) < th.min_requests or len(failed) < th.error_rate * len(recs) or not failed:
            continue
        kinds = dict(Counter(r.error_kind for r in failed).most_common())
        listed = ", ".join(f"{k} {v}" for k, v in kinds.items())
        advice = ("callers send malformed requests: check their field names against the accepted ones"
                  if set(kinds) == {"invalid_request"} else f"read the {model} log; check memory and instance health")
        out.append({"rule": "error_rate_high", "severity": "warning", "message":
                    f"{model}: {_pct(len(failed), len(recs))} of requests failed ({len(failed)} of {len(recs)}; "
                    f"{listed}); {advice}",
                    "evidence": {"model": model, "requests": len(recs), "errors": len(failed),
                                 "rate": round(len(failed) / len(recs), 4), "by_kind": kinds}})
    return out


def tail_latency(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                 th: Thresholds) -> list[Suggestion]:
    by_model: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.ok and r.selected_model:
            by_model[r.selected_model].append(r)
    out = []
    advice = {"ttft_s": "requests wait in the queue: add an instance or route more traffic elsewhere",
              "per_token_s": "decoding batches are saturated: lower max_num_seqs or add an instance"}
    for model, recs in sorted(by_model.items()):
        for metric, hint in advice.items():
            values = [v for v in (getattr(r, metric) for r in recs) if v is not None]
            if len(values) < th.min_requests:
                continue
            p50, p99 = np.percentile(values, [50, 99])
            if p50 > 0 and p99 >= th.tail_ratio * p50:
                out.append({"rule": "tail_latency", "severity": "warning", "message":
                            f"{model}: p99 {metric} {p99:.3f} s is {p99 / p50:.1f}x its p50 {p50:.3f} s "
                            f"over {len(values)} requests; {hint}",
                            "evidence": {"model": model, "metric": metric, "n": len(values),
                                         "p50": float(p50), "p99": float(p99), "ratio": round(float(p99 / p50), 2)}})
    return out


def selection_slow(records: Sequence[RequestRecord], specialists: Mapping[str, str],
                   th: Thresholds) -> list[Suggestion]:
    values = [r.selection_ms for r in records if r.selection_mode]
    if len(values) < th.min_requests:
        return []
    p50, p99 = np.percentile(values, [50, 99])
    if p99 <= th.selection_p99_ms:
        return []
    return [{"rule": "selection_slow", "severity": "warning", "message":
             f"selection decision p99 {p99:.2f} ms (p50 {p50:.2f} ms, {len(values)} requests) exceeds the "
             f"{th.selection_p99_ms:g} ms target; profile the prompt analyser and the load lookup",
             "evidence": {"n": len(values), "p50_ms": float(p50), "p99_ms": float(p99),
                          "target_ms": th.selection_p99_ms}}]


Rule = Callable[[Sequence[RequestRecord], Mapping[str, str], Thresholds], list[Suggestion]]
RULES: tuple[Rule, ...] = (specialist_bypassed, hybrid_fallback_high, model_never_chosen, error_rate_high,
                           tail_latency, selection_slow)


def suggest(records: Sequence[RequestRecord], specialists: Mapping[str, str],
            thresholds: Thresholds | None = None) -> list[Suggestion]:
    """Every rule's suggestions, warnings first."""
    thresholds = thresholds or Thresholds()
    found = [s for rule in RULES for s in rule(records, specialists, thresholds)]
    return sorted(found, key=lambda s: s["severity"] != "warning")


def specialists_from_catalog(catalog) -> dict[str, str]:
    """Task -> the catalog model with the highest specialization score for it."""
    from pointsman.policy.catalog import TASKS

    entries = list(catalog)
    return {task: max(entries, key=lambda e: e.specialization_score[task]).name for task in TASKS} if entries else {}
