"""Score ready models for a prompt: specialization, capability for its complexity, speed, load.

    ranked = score_models(catalog, board.snapshot(), task="coding", complexity=0.4,
                          needs=Requirements(max_tokens=32, prefer_speed=True))
    ranked[0].model

One implementation serves auto-selection, hybrid fallback and the recommend endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from pointsman.policy.catalog import Catalog, ModelEntry
from pointsman.policy.selection.status import BATCH_SLOWDOWN, ModelStatus

DEFAULT_TTFT_S = 0.02
NEAR_TIE = 0.03  # scores this close are equivalent: spread load across them


@dataclass(frozen=True)
class Requirements:
    """What the caller asks of the answer (recommend and auto-selection)."""

    max_tokens: int = 20
    max_response_time: float | None = None
    min_quality: float | None = None
    prefer_speed: bool = False


@dataclass(frozen=True)
class Weights:
    specialization: float = 0.55
    capability: float = 0.20
    speed: float = 0.25
    speed_preferred: float = 0.60
    load: float = 0.15


@dataclass(frozen=True)
class Candidate:
    """One model's score and the figures behind it."""

    model: str
    score: float
    quality: float  # the model's specialization for this task (0-1)
    predicted_s: float
    load: int
    meets_time: bool
    meets_quality: bool

    @property
    def eligible(self) -> bool:
        return self.meets_time and self.meets_quality


def predicted_seconds(entry: ModelEntry, status: ModelStatus, max_tokens: int) -> float:
    """Queue wait + prefill + max_tokens at the model's measured pace under its current load."""
    tps = status.tokens_per_s or entry.pace_prior
    ttft = status.ttft_s if status.ttft_s is not None else (entry.time_to_first_token_prior or DEFAULT_TTFT_S)
    alone = ttft + max_tokens / tps
    running = max(status.in_flight, status.active)
    # Triton's own queue time (what a vLLM or TensorRT-LLM model waits before its engine sees it)
    return alone * (1.0 + BATCH_SLOWDOWN * running) + status.pending * alone + (status.queue_s or 0.0)


def score_models(catalog: Catalog, statuses: dict[str, ModelStatus], task: str, complexity: float,
                 needs: Requirements, weights: Weights = Weights(),
                 exclude: frozenset[str] = frozenset()) -> list[Candidate]:
    """Rank ready models best first; ineligible ones (time, quality) after eligible ones."""
    names = [n for n, s in statuses.items() if s.ready and n in catalog and n not in exclude]
    entries = {n: catalog.get(n) for n in names}  # the catalog may change meanwhile: read each entry once
    names = [n for n in names if entries[n] is not None]
    if not names:
        return []
    predicted = {n: predicted_seconds(entries[n], statuses[n], needs.max_tokens) for n in names}
    fastest = min(predicted.values())
    speed_weight = weights.speed_preferred if needs.prefer_speed else weights.speed
    out = []
    for name in names:
        entry, status = entries[name], statuses[name]
        quality = entry.specialization_score.get(task, entry.quality_prior)
        load = status.load
        score = (
            weights.specialization * quality
            + weights.capability * entry.quality_prior * complexity
            + speed_weight * (fastest / predicted[name])
            - weights.load * (load / (load + 2.0))
        )
        out.append(Candidate(
            model=name, score=round(score, 6), quality=quality, predicted_s=predicted[name], load=load,
            meets_time=needs.max_response_time is None or predicted[name] <= needs.max_response_time,
            meets_quality=needs.min_quality is None or quality >= needs.min_quality,
        ))
    out.sort(key=lambda c: (not c.eligible, -c.score, c.predicted_s, c.model))
    return out


def spread_near_ties(ranked: list[Candidate], turn: int) -> list[Candidate]:
    """Among eligible candidates within NEAR_TIE of the best, prefer the least loaded, rotating."""
    if len(ranked) < 2 or not ranked[0].eligible:
        return ranked
    best = ranked[0].score
    tied = [c for c in ranked if c.eligible and best - c.score <= NEAR_TIE]
    if len(tied) < 2:
        return ranked
    least = min(c.load for c in tied)
    calm = [c for c in tied if c.load == least]
    chosen = calm[turn % len(calm)]
    return [chosen] + [c for c in ranked if c is not chosen]
