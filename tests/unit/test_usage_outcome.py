"""The router's Outcome becomes one RequestRecord, success or error."""

from __future__ import annotations

import pytest

from pointsman.errors import GenerationFailed, InvalidRequest, ModelRejected, ModelUnavailable, PointsmanError
from pointsman.ops.experiments.assignment import Assignment
from pointsman.ops.usage.outcome import error_kind, record_from_outcome
from pointsman.policy.contract import parse_router
from pointsman.policy.routing import Outcome, RoutedResult
from pointsman.policy.selection.scoring import Candidate
from pointsman.policy.selection.selector import Decision


def candidate(model: str, load: int) -> Candidate:
    return Candidate(model=model, score=0.5, quality=0.5, predicted_s=1.0, load=load, meets_time=True,
                     meets_quality=True)


def test_a_routed_success_keeps_decision_timings_and_load() -> None:
    params = parse_router({"text_input": "def f():", "preferred_model": "codegen", "user": "alice"})
    decision = Decision(model="gpt2", mode="hybrid", reason="r", fallback_used=True, task="coding",
                        analyzer="lexical", candidates=(candidate("gpt2", 0), candidate("distilgpt2", 2)),
                        selection_ms=0.7)
    result = RoutedResult(request_id="r1", text="x", tokens=12, finish_reason="length", decision=decision,
                          ttft_s=0.05, duration_s=0.9)
    outcome = Outcome("r1", params, decision, result, None, "preferred_unavailable", 1.0)
    record = record_from_outcome(outcome, assignment=Assignment("e", "b", "gpt2", None, True), mean_logprob=-2.0,
                                 now=100.0)
    assert record.timestamp == 99.0 and record.duration_s == 1.0
    assert (record.selection_mode, record.selected_model, record.task, record.analyzer) == (
        "hybrid", "gpt2", "coding", "lexical")
    assert record.fallback_used and record.fallback_reason == "preferred_unavailable"
    assert (record.selection_ms, record.ttft_s, record.tokens, record.error_kind) == (0.7, 0.05, 12, None)
    assert record.candidates_busy == {"gpt2": 0, "distilgpt2": 2}
    assert (record.user, record.preferred_model, record.experiment, record.arm, record.mean_logprob) == (
        "alice", "codegen", "e", "b", -2.0)


def test_a_request_rejected_before_selection_still_gives_a_record() -> None:
    outcome = Outcome("r2", None, None, None, InvalidRequest("max_tokens", "must be >= 1"), None, 0.001)
    record = record_from_outcome(outcome, now=10.0)
    assert (record.selection_mode, record.selected_model, record.task, record.tokens) == ("", "", "", 0)
    assert record.error_kind == "invalid_request" and record.candidates_busy is None and record.ttft_s is None


@pytest.mark.parametrize(("error", "kind"), [
    (None, None), (InvalidRequest("f", "x"), "invalid_request"), (ModelRejected("bad"), "invalid_request"),
    (ModelUnavailable("m"), "unavailable"), (GenerationFailed("g"), "generation_failed"),
    (PointsmanError("?"), "internal"), (RuntimeError("?"), "internal"),
])
def test_error_kinds(error, kind) -> None:
    assert error_kind(error) == kind
