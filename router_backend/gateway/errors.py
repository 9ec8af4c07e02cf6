"""One error type for the gateway and one mapping from what went wrong to an HTTP answer.

    raise ApiError.invalid("n", "only n=1 is supported")          # 400, OpenAI's error shape
    raise from_triton_message("invalid 'top_p': must be ...")     # 400 naming top_p
    raise from_triton_message("model 'gpt2' is not loaded ...")   # 503 with Retry-After

A client's mistake is 4xx and names the field; a server fault (model down, overload,
Triton unreachable) is 503 with Retry-After, so a client knows to come back rather than
to change its request. No FastAPI import: the app turns an ApiError into a response.
"""

from __future__ import annotations

import re
from typing import Any

from pointsman.errors import InvalidRequest

RETRY_AFTER_S = 1  # the router reloads a failed model in about this long; overload clears sooner
_FIELD = re.compile(r"invalid '([^']+)'")
# the router's and Triton's words for a model that cannot answer now (pointsman.policy.selection)
_UNAVAILABLE = ("is not loaded or not ready", "no language model is ready", "no fallback model is ready",
                "ended the stream without a final response", "unknown model", "is not ready", "failed:",
                "exceeds maximum queue size", "failed to connect", "connection refused", "unavailable",
                "socket closed", "deadline exceeded", "overloaded", "is unhealthy")


class ApiError(Exception):
    """An answer other than 200: status, message, the parameter at fault, OpenAI's type and code."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else
                             "service_unavailable_error" if status == 503 else "server_error")
        self.retry_after = retry_after

    @classmethod
    def invalid(cls, param: str, message: str, code: str | None = None) -> ApiError:
        return cls(400, message, param=param, code=code)

    @classmethod
    def unsupported(cls, param: str, detail: str) -> ApiError:
        return cls(400, f"'{param}' is not supported: {detail}", param=param, code="unsupported_parameter")

    @classmethod
    def unavailable(cls, message: str) -> ApiError:
        return cls(503, message, code="service_unavailable", retry_after=RETRY_AFTER_S)

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape (the original API's clients read the same)."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def from_invalid_request(exc: InvalidRequest, names: dict[str, str] | None = None) -> ApiError:
    """The contract's refusal -> 400; `names` maps a contract field to the caller's name for it."""
    param = (names or {}).get(exc.field, exc.field) or None
    message = str(exc)
    if param and param != exc.field:
        message = message.replace(f"invalid '{exc.field}'", f"invalid '{param}'", 1)
    if exc.field == "model" and "must be one of" in message:
        return ApiError(404, message, param="model", code="model_not_found")
    return ApiError.invalid(param or "request", message)


def from_triton_message(message: str, names: dict[str, str] | None = None) -> ApiError:
    """A router or Triton error message -> the ApiError it means."""
    match = _FIELD.search(message)
    if match:  # the contract's own words: the caller's fault
        field = match.group(1)
        param = (names or {}).get(field, field)
        text = message[match.start():].replace(f"invalid '{field}'", f"invalid '{param}'", 1)
        if field == "model" and "must be one of" in text:
            return ApiError(404, text, param="model", code="model_not_found")
        return ApiError.invalid(param, text)
    lowered = message.lower()
    if any(words in lowered for words in _UNAVAILABLE):
        return ApiError.unavailable(message)
    return ApiError(500, message, code="internal_error")
