"""One exception tree for the package; adapters map it to Triton errors in one place.

    raise InvalidRequest("max_tokens", "must be an integer from 1 to 4096", got=0)
"""

from __future__ import annotations

from typing import Any


class PointsmanError(Exception):
    """Base of every error the package raises on purpose."""


class InvalidRequest(PointsmanError):
    """A request field is missing, of the wrong type or out of range."""

    def __init__(self, field: str, accepted: str, got: Any = None) -> None:
        self.field = field
        self.accepted = accepted
        suffix = "" if got is None else f" (got {got!r})"
        super().__init__(f"invalid '{field}': {accepted}{suffix}")


class ModelRejected(InvalidRequest):
    """The chosen model refused the request as invalid; its own message names the field."""

    def __init__(self, message: str) -> None:
        PointsmanError.__init__(self, message)
        self.field = ""
        self.accepted = message


class Forbidden(PointsmanError):
    """The call needs the admin key, and the caller did not send the right one."""


class ModelUnavailable(PointsmanError):
    """The named model is not loaded or not ready."""


class GenerationFailed(PointsmanError):
    """A model failed while generating (a run-time error, not bad input)."""


class Overloaded(PointsmanError):
    """A bound on queued or in-flight work is reached: the caller should retry shortly."""


class DeadlineExceeded(PointsmanError):
    """The request's deadline (max_response_time, else the router's default) passed first."""


class CatalogError(PointsmanError):
    """The model catalog is malformed."""
