"""One record per router request, success or error: what was chosen, why, and how it went.

    record = RequestRecord(request_id="r1", timestamp=time.time(), selection_mode="auto", selected_model="gpt2",
                           task="creative", analyzer="lexical", fallback_used=False, fallback_reason=None,
                           selection_ms=0.4, ttft_s=0.05, duration_s=0.6, tokens=20, error_kind=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SELECTION_MODES = ("manual", "auto", "hybrid")
# A request rejected before its selection mode is known (a malformed request) has mode "".
RECORD_MODES = SELECTION_MODES + ("",)


@dataclass(frozen=True)
class RequestRecord:
    """What the router did for one request and what it cost.

    selection_mode is "" and selected_model is "" when the request failed before the router
    could tell them (invalid_request). task and analyzer are "" on the manual path, which
    analyses nothing. fallback_reason is a short code (e.g. preferred_unavailable,
    preferred_failed, retry_after_error), never free text: it becomes a metrics label.
    candidates_busy maps each ready candidate model to its in-flight plus pending requests
    at decision time; a model missing from it was not ready. preferred_model is the hybrid
    request's preferred model, so fallback rates can be told per preferred model.
    """

    request_id: str
    timestamp: float
    selection_mode: str
    selected_model: str
    task: str
    analyzer: str
    fallback_used: bool
    fallback_reason: str | None
    selection_ms: float
    ttft_s: float | None
    duration_s: float
    tokens: int
    error_kind: str | None
    user: str | None = None
    experiment: str | None = None
    arm: str | None = None
    mean_logprob: float | None = None
    candidates_busy: dict[str, int] | None = field(default=None, hash=False, compare=False)
    preferred_model: str | None = None

    def __post_init__(self) -> None:
        if self.selection_mode not in RECORD_MODES:
            raise ValueError(f"RequestRecord.selection_mode must be one of {', '.join(SELECTION_MODES)} or '' "
                             f"(got {self.selection_mode!r})")
        if self.tokens < 0 or self.duration_s < 0 or self.selection_ms < 0:
            raise ValueError("RequestRecord.tokens, duration_s and selection_ms must be >= 0")

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def per_token_s(self) -> float | None:
        """Decode time per token after the first (the whole duration over tokens without a TTFT)."""
        if not self.ok or self.tokens <= 0:
            return None
        if self.ttft_s is not None and self.tokens > 1:
            return max(self.duration_s - self.ttft_s, 0.0) / (self.tokens - 1)
        return self.duration_s / self.tokens

    @property
    def tokens_per_s(self) -> float | None:
        if not self.ok or self.tokens <= 0 or self.duration_s <= 0:
            return None
        return self.tokens / self.duration_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})
