"""Recommendation: the auto-selection scoring, answered as advice instead of a call.

    rec = recommend(catalog, board.snapshot(), analysis, Requirements(max_response_time=5.0))
    rec.recommended_model, rec.confidence, rec.alternatives, rec.reasoning
"""

from __future__ import annotations

from dataclasses import dataclass

from pointsman.errors import ModelUnavailable
from pointsman.policy.catalog import Catalog
from pointsman.policy.selection.scoring import Candidate, Requirements, score_models
from pointsman.policy.selection.selector import Analysis
from pointsman.policy.selection.status import ModelStatus


@dataclass(frozen=True)
class Recommendation:
    recommended_model: str
    confidence: float
    alternatives: tuple[dict, ...]
    reasoning: str
    task: str


def _confidence(analysis: Analysis, ranked: list[Candidate]) -> float:
    best = ranked[0]
    margin = 1.0 if len(ranked) == 1 else (best.score - ranked[1].score) / max(abs(best.score), 1e-6)
    value = analysis.confidence * (0.6 + 0.4 * min(1.0, 5.0 * max(margin, 0.0)))
    if not best.eligible:
        value *= 0.5  # the requirements cannot all be met
    return round(min(max(value, 0.0), 1.0), 3)


def _reasoning(analysis: Analysis, best: Candidate, needs: Requirements) -> str:
    parts = [f"{analysis.task} prompt"]
    if needs.prefer_speed:
        parts.append(f"speed preferred: ~{best.predicted_s:.2f}s predicted")
    parts.append(f"{analysis.task} specialization {best.quality:.2f}")
    if needs.max_response_time is not None:
        verdict = "meets" if best.meets_time else "cannot meet"
        parts.append(f"{verdict} max_response_time {needs.max_response_time:g}s (~{best.predicted_s:.2f}s)")
    if needs.min_quality is not None:
        verdict = "meets" if best.meets_quality else "below"
        parts.append(f"{verdict} min_quality {needs.min_quality:g}")
    if best.load:
        parts.append(f"current load {best.load}")
    return f"{best.model}: " + ", ".join(parts)


def recommend(catalog: Catalog, statuses: dict[str, ModelStatus], analysis: Analysis,
              needs: Requirements) -> Recommendation:
    ranked = score_models(catalog, statuses, analysis.task, analysis.complexity, needs)
    if not ranked:
        raise ModelUnavailable("no language model is ready to recommend")
    best = ranked[0]
    return Recommendation(
        recommended_model=best.model,
        confidence=_confidence(analysis, ranked),
        alternatives=tuple({"model": c.model, "score": round(c.score, 3), "predicted_s": round(c.predicted_s, 3),
                            "eligible": c.eligible} for c in ranked[1:]),
        reasoning=_reasoning(analysis, best, needs),
        task=analysis.task,
    )
