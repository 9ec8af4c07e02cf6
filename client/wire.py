"""What sync and asyncio transports share: addresses, response bodies, and errors mapped to one type.

    scheme, address = split_url("http://127.0.0.1:8000", "http")   # ("http", "127.0.0.1:8000")
    raise transport_error(exc, model="router", where="http://127.0.0.1:8000")
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pointsman.client.request import PROTOCOLS, scalar
from pointsman.client.types import PointsmanClientError


def split_url(url: str, protocol: str) -> tuple[str, str]:
    """'http://host:port' or 'host:port' -> (scheme, 'host:port'); tritonclient takes the latter."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    parsed = urllib.parse.urlsplit(url if "://" in url else f"//{url}")
    if not parsed.netloc:
        raise ValueError(f"url must look like host:port; got {url!r}")
    scheme = parsed.scheme or "http"
    if scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(f"url scheme must be http or https; got {url!r}")
    return ("https" if scheme in ("https", "grpcs") else "http"), parsed.netloc


def transport_error(exc: BaseException, *, model: str | None, where: str) -> PointsmanClientError:
    """Any exception met on the way to the server -> the client's one exception type."""
    if isinstance(exc, PointsmanClientError):
        return exc
    status_of = getattr(exc, "status", None)
    status = status_of() if callable(status_of) else status_of
    if hasattr(exc, "message") and callable(exc.message):  # tritonclient's InferenceServerException
        message = exc.message() or str(exc)
        if status == "StatusCode.UNAVAILABLE" and "connect" in message.lower():
            return PointsmanClientError(f"cannot reach Triton at {where}: {message}", status="UNAVAILABLE")
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return PointsmanClientError(f"no answer from {where} in time", model=model, status="DEADLINE_EXCEEDED")
        return PointsmanClientError(message, model=model,
                                     status=str(status).replace("StatusCode.", "") if status else None)
    if isinstance(exc, urllib.error.HTTPError):
        return PointsmanClientError(http_error_message(exc.read(), exc.reason), model=model, status=exc.code)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return PointsmanClientError(f"no answer from {where} in time", model=model)
    if isinstance(exc, ValueError):
        return PointsmanClientError(f"unexpected answer from {where}: {exc}", model=model)
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, OSError) and reason.strerror:  # "[Errno 111] Connection refused" -> "connection refused"
        reason = reason.strerror.lower()
    return PointsmanClientError(f"cannot reach Triton at {where}: {reason}")


def http_error_message(raw: bytes, fallback: str) -> str:
    """The error of an HTTP error body: JSON {"error": ...}, or an SSE `data:` event."""
    text = raw.decode("utf-8", errors="replace").strip()
    for line in [text, *(ln[len("data:"):] for ln in text.splitlines() if ln.startswith("data:"))]:
        try:
            body = json.loads(line)
        except ValueError:
            continue
        if isinstance(body, Mapping) and body.get("error"):
            return str(body["error"])
    return text or str(fallback)


def outputs_of(result: Any, names: list[str]) -> dict[str, Any]:
    return {name: scalar(result.as_numpy(name)) for name in names}


def checked_body(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A generate endpoint's JSON body -> its outputs; Triton 2.51 may send a model's error with status 200."""
    if body.get("error"):
        raise PointsmanClientError(str(body["error"]), model=model)
    return {k: v for k, v in body.items() if k not in ("model_name", "model_version")}


def is_missing_model(exc: PointsmanClientError, model: str) -> bool:
    """Triton's words for a model that is not in the repository or not loaded."""
    text = exc.message.lower()
    return f"'{model}'" in text and ("unknown model" in text or "not found" in text or "no available versions" in text)
