"""Manual, auto and hybrid selection, with fallback and one retry on a run-time failure.

    selector = Selector(catalog, board, analyzer)
    decision = selector.select(parse_router({"text_input": "Write a poem", "preferred_model": "gpt2"}))
    decision.model, decision.mode, decision.reason

Precedence, as the original handler has it: model, then auto_select, then
preferred_model, else auto. Manual requests are never silently substituted.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pointsman.errors import InvalidRequest, ModelUnavailable
from pointsman.policy.catalog import Catalog
from pointsman.policy.contract import RouterParams
from pointsman.policy.health import HealthRegistry, HealthState
from pointsman.policy.selection.scoring import Candidate, Requirements, score_models, spread_near_ties
from pointsman.policy.selection.status import StatusBoard


class Analysis(Protocol):
    """What selection needs from a prompt analyser (pointsman.policy.analysis.PromptAnalysis)."""

    task: str
    confidence: float
    complexity: float
    analyzer: str


class Analyzer(Protocol):
    def analyze(self, prompt: str) -> Analysis: ...


@dataclass(frozen=True)
class Decision:
    model: str
    mode: str  # manual, auto or hybrid
    reason: str
    fallback_used: bool = False
    task: str = ""
    analyzer: str = ""
    complexity: float = 0.0
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)
    selection_ms: float = 0.0


def requirements_of(params: RouterParams) -> Requirements:
    return Requirements(max_tokens=params.max_tokens, max_response_time=params.max_response_time,
                        min_quality=params.min_quality, prefer_speed=params.prefer_speed)


class Selector:
    """Chooses the model for a validated router request."""

    def __init__(self, catalog: Catalog, board: StatusBoard, analyzer: Analyzer,
                 refresh: Callable[[], None] | None = None, health: HealthRegistry | None = None) -> None:
        self.catalog = catalog
        self.board = board
        self.analyzer = analyzer
        # the router's own verdict on models whose calls fail (Triton still calls them READY)
        self.health = health or HealthRegistry()
        self._turns = itertools.count()
        # re-reads readiness now; called only before answering "not ready" (the poller may lag)
        self._refresh = refresh or (lambda: None)

    def usable_models(self) -> list[str]:
        """Ready in Triton, and neither unhealthy, reloading, nor just refused as overloaded."""
        return [m for m in self.board.ready_models() if self.health.available(m)]

    def _is_ready(self, model: str) -> bool:
        if model in self.board.ready_models():
            return True
        self._refresh()
        return model in self.board.ready_models()

    def _is_healthy(self, model: str) -> bool:
        return self.health.get(model).state is HealthState.READY

    def _unhealthy_note(self, model: str) -> str:
        health = self.health.get(model)
        return (f"model '{model}' is not ready: {health.state.value} ({health.reason.value}), the router is "
                f"reloading it; retry shortly")

    def select(self, params: RouterParams, analyzer: Analyzer | None = None) -> Decision:
        """Decide; raise InvalidRequest for contradictions, ModelUnavailable when nothing fits."""
        start = time.perf_counter()
        decision = self._select(params, analyzer or self.analyzer)
        elapsed = (time.perf_counter() - start) * 1000.0
        return Decision(**{**vars(decision), "selection_ms": elapsed})

    def _select(self, params: RouterParams, analyzer: Analyzer) -> Decision:
        self._check_consistent(params)
        if params.model is not None:
            return self._manual(params.model)
        if params.auto_select:
            return self._auto(params, analyzer, mode="auto", prefix="auto")
        if params.preferred_model is not None:
            return self._hybrid(params, analyzer)
        return self._auto(params, analyzer, mode="auto", prefix="auto (default)")

    def _check_consistent(self, params: RouterParams) -> None:
        if params.model and params.preferred_model and params.model != params.preferred_model:
            raise InvalidRequest("preferred_model", f"must name the same model as 'model' when both are given "
                                 f"(model={params.model!r}); use one or the other")
        if params.auto_select is False and not params.model and not params.preferred_model:
            raise InvalidRequest("auto_select", "false needs 'model' or 'preferred_model' naming the model to use")
        for name, value in (("model", params.model), ("preferred_model", params.preferred_model)):
            if value is not None and value not in self.catalog:
                self._refresh()  # models join at run time: the poller may not have seen this one yet
            if value is not None and value not in self.catalog:
                served = ", ".join(self.catalog.names)
                raise InvalidRequest(name, f"must be one of the served language models: {served}", got=value)

    def _loaded_list(self) -> str:
        return ", ".join(self.board.ready_models()) or "none"

    def _manual(self, model: str) -> Decision:
        if not self._is_healthy(model):
            raise ModelUnavailable(self._unhealthy_note(model))
        if not self._is_ready(model):
            raise ModelUnavailable(f"model '{model}' is not loaded or not ready; loaded models: {self._loaded_list()}")
        return Decision(model=model, mode="manual", reason=f"manual: model {model} requested")

    def _rank(self, params: RouterParams, task: str, complexity: float,
              exclude: frozenset[str] = frozenset()) -> list[Candidate]:
        ranked = score_models(self.catalog, self.board.snapshot(), task, complexity,
                              requirements_of(params), exclude=exclude | self.health.unavailable())
        return spread_near_ties(ranked, next(self._turns))

    def _auto(self, params: RouterParams, analyzer: Analyzer, mode: str, prefix: str,
              exclude: frozenset[str] = frozenset(), fallback_note: str = "") -> Decision:
        analysis = analyzer.analyze(params.prompt_text)
        ranked = self._rank(params, analysis.task, analysis.complexity, exclude)
        if not ranked:
            self._refresh()
            ranked = self._rank(params, analysis.task, analysis.complexity, exclude)
        if not ranked:
            raise ModelUnavailable(f"no language model is ready (loaded models: {self._loaded_list()})")
        best = ranked[0]
        why = (f"{analysis.task} prompt ({analysis.analyzer}, confidence {analysis.confidence:.2f}); "
               f"{best.model} scored {best.score:.2f} (specialization {best.quality:.2f}, "
               f"~{best.predicted_s:.2f}s predicted, load {best.load})")
        if len(ranked) > 1:
            why += f" vs {ranked[1].model} {ranked[1].score:.2f}"
        if not best.eligible:
            best = self._closest_to_requirements(ranked, params)
            why += f"; no model meets the requirements, chose {best.model} as the closest"
        return Decision(model=best.model, mode=mode, reason=f"{prefix}{fallback_note}: {why}",
                        fallback_used=bool(fallback_note), task=analysis.task, analyzer=analysis.analyzer,
                        complexity=analysis.complexity, candidates=tuple(ranked))

    @staticmethod
    def _closest_to_requirements(ranked: list[Candidate], params: RouterParams) -> Candidate:
        if params.max_response_time is not None and not any(c.meets_time for c in ranked):
            return min(ranked, key=lambda c: c.predicted_s)
        timely = [c for c in ranked if c.meets_time] or ranked
        return max(timely, key=lambda c: (c.quality, c.score))

    def _hybrid(self, params: RouterParams, analyzer: Analyzer) -> Decision:
        preferred = params.preferred_model
        assert preferred is not None
        healthy = self._is_healthy(preferred)
        if healthy and self._is_ready(preferred):
            return Decision(model=preferred, mode="hybrid", reason=f"hybrid: preferred model {preferred} is ready")
        state = "not loaded" if healthy else self.health.get(preferred).state.value
        note = f": preferred model {preferred} is {state}"
        if params.fallback_mode == "none":
            raise ModelUnavailable(f"preferred model '{preferred}' is not loaded or not ready and fallback_mode is "
                                   f"none; loaded models: {self._loaded_list()}")
        if params.fallback_mode == "fastest":
            return self._fastest(params, frozenset({preferred}), note)
        return self._auto(params, analyzer, mode="hybrid", prefix="hybrid", exclude=frozenset({preferred}),
                          fallback_note=f"{note}; fallback auto")

    def _fastest(self, params: RouterParams, exclude: frozenset[str], note: str) -> Decision:
        ranked = score_models(self.catalog, self.board.snapshot(), "qa", 0.0, requirements_of(params),
                              exclude=exclude | self.health.unavailable())
        if not ranked:
            raise ModelUnavailable(f"no fallback model is ready (loaded models: {self._loaded_list()})")
        ranked.sort(key=lambda c: (c.predicted_s, c.load, c.model))
        best = ranked[0]
        return Decision(model=best.model, mode="hybrid", fallback_used=True, candidates=tuple(ranked),
                        reason=f"hybrid{note}; fallback fastest: {best.model} (~{best.predicted_s:.2f}s predicted, "
                               f"load {best.load})")

    def retry_after_failure(self, params: RouterParams, failed: Decision, error: str) -> Decision | None:
        """The next best model after a run-time failure of `failed.model`; None for manual requests."""
        if failed.mode == "manual":
            return None
        tried = {failed.model}
        for candidate in failed.candidates:
            if candidate.model not in tried and candidate.model in self.usable_models():
                return Decision(
                    model=candidate.model, mode=failed.mode, fallback_used=True, task=failed.task,
                    analyzer=failed.analyzer, complexity=failed.complexity, candidates=failed.candidates,
                    reason=f"{failed.reason}; {failed.model} failed ({error}), retried on {candidate.model}",
                    selection_ms=failed.selection_ms,
                )
        if failed.mode == "hybrid" and not failed.candidates and params.fallback_mode != "none":
            # the preferred model itself failed: fall back as if it were unavailable
            note = f": preferred model {failed.model} failed ({error})"
            if params.fallback_mode == "fastest":
                return self._fastest(params, frozenset(tried), note)
            return self._auto(params, self.analyzer, mode="hybrid", prefix="hybrid", exclude=frozenset(tried),
                              fallback_note=f"{note}; fallback auto")
        return None
