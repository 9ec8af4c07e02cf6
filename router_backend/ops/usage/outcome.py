"""Turn the router's Outcome (pointsman.policy.routing) into a RequestRecord.

    record = record_from_outcome(outcome, user=params.user, assignment=assignment)

Duck-typed on purpose (no import of the routing module): it reads outcome.request_id,
params, decision, result, error, fallback_reason, duration_s, and outcome.assignment and
result.mean_logprob when they exist (keyword arguments override them).
"""

from __future__ import annotations

import time
from typing import Any

from pointsman.errors import DeadlineExceeded, GenerationFailed, InvalidRequest, ModelUnavailable, Overloaded
from pointsman.ops.usage.records import RECORD_MODES, RequestRecord

# the first class in the exception's MRO found here names its kind
ERROR_KINDS: tuple[tuple[type, str], ...] = (
    (InvalidRequest, "invalid_request"),
    (ModelUnavailable, "unavailable"),
    (GenerationFailed, "generation_failed"),
    (Overloaded, "overloaded"),
    (DeadlineExceeded, "deadline_exceeded"),
)


def error_kind(error: BaseException | None) -> str | None:
    if error is None:
        return None
    for cls, kind in ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return "internal"


def record_from_outcome(outcome: Any, *, assignment: Any = None, mean_logprob: float | None = None,
                        now: float | None = None) -> RequestRecord:
    """One record per request; timestamp is when the request arrived (now - duration)."""
    decision, result, params = outcome.decision, outcome.result, outcome.params
    assignment = assignment if assignment is not None else getattr(outcome, "assignment", None)
    mode = getattr(decision, "mode", "") or ""
    candidates = getattr(decision, "candidates", ()) or ()
    if mean_logprob is None and result is not None:
        mean_logprob = getattr(result, "mean_logprob", None)
    end = time.time() if now is None else now
    return RequestRecord(
        request_id=outcome.request_id,
        timestamp=end - outcome.duration_s,
        selection_mode=mode if mode in RECORD_MODES else "",
        selected_model=getattr(decision, "model", "") or "",
        task=getattr(decision, "task", "") or "",
        analyzer=getattr(decision, "analyzer", "") or "",
        fallback_used=bool(getattr(decision, "fallback_used", False)),
        fallback_reason=outcome.fallback_reason,
        selection_ms=float(getattr(decision, "selection_ms", 0.0) or 0.0),
        ttft_s=getattr(result, "ttft_s", None),
        duration_s=outcome.duration_s,
        tokens=int(getattr(result, "tokens", 0) or 0),
        error_kind=error_kind(outcome.error),
        user=getattr(params, "user", None),
        experiment=getattr(assignment, "experiment", None),
        arm=getattr(assignment, "arm", None),
        mean_logprob=mean_logprob,
        candidates_busy={c.model: int(c.load) for c in candidates} or None,
        preferred_model=getattr(params, "preferred_model", None),
    )
