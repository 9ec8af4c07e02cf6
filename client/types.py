"""What the client hands back: frozen results and the one exception type.

    response = client.generate("def add(a, b):", model="codegen")
    response.text, response.selected_model, response.selection_reason

Everything here is pure: no network, no tritonclient import.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_ERROR_CHARS = 400


class PointsmanClientError(Exception):
    """Anything the server (or the way to it) refused; str() is one readable line.

    Attributes:
        message: the server's own words, reduced to one line.
        model: the model the request went to, when there was one.
        status: the HTTP status code or the gRPC status name, when known.

    """

    def __init__(self, message: str, *, model: str | None = None, status: int | str | None = None) -> None:
        self.message = one_line(message)
        self.model = model
        self.status = status
        super().__init__(f"{model}: {self.message}" if model else self.message)


# "[StatusCode.INVALID_ARGUMENT] msg" (tritonclient gRPC) and "[400] msg" (tritonclient HTTP)
_STATUS_PREFIX = re.compile(r"^\[(?:StatusCode\.)?[A-Z_0-9]+\]\s*")


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapse a server message into one line without the transport's status prefix."""
    text = _STATUS_PREFIX.sub("", " ".join(str(message).split()))
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class GenerationResponse:
    """One finished generation, with the router's account of how the model was chosen.

    Selection fields are None where the server did not send them (a model called
    directly sends none of them; `selected_model` is then the model that was called).
    """

    text: str
    selected_model: str | None
    tokens: int | None = None
    finish_reason: str | None = None
    selection_mode: str | None = None
    selection_reason: str | None = None
    fallback_used: bool | None = None
    task: str | None = None
    analyzer: str | None = None
    selection_ms: float | None = None
    request_id: str | None = None
    latency_ms: float | None = None  # measured by the client: request sent -> last response
    first_response_ms: float | None = None  # request sent -> first response (the first piece when streaming)
    extras: Mapping[str, Any] = field(default_factory=dict)  # outputs this client has no field for

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# output tensor / JSON key -> GenerationResponse field
_METADATA_FIELDS = ("tokens", "finish_reason", "selected_model", "selection_mode", "selection_reason",
                    "fallback_used", "task", "analyzer", "selection_ms", "request_id")


class ResponseAssembler:
    """Folds the responses of one request (one, or many when streaming) into a GenerationResponse.

    Every response may carry a piece of `text_output`; metadata arrives with the final one
    (the router) or not at all (a model called directly).
    """

    def __init__(self, target: str) -> None:
        self._target = target
        self._pieces: list[str] = []
        self._metadata: dict[str, Any] = {}

    def add(self, outputs: Mapping[str, Any]) -> str:
        """Take one response's outputs; return its piece of text ('' if none)."""
        piece = outputs.get("text_output") or ""
        self._pieces.append(piece)
        for name, value in outputs.items():
            if name != "text_output" and value is not None:
                self._metadata[name] = value
        return piece

    def finish(self, latency_ms: float | None = None, first_response_ms: float | None = None) -> GenerationResponse:
        meta = {k: v for k, v in self._metadata.items() if k in _METADATA_FIELDS}
        extras = {k: v for k, v in self._metadata.items() if k not in _METADATA_FIELDS}
        meta.setdefault("selected_model", self._target or None)
        if meta.get("tokens") is not None:
            meta["tokens"] = int(meta["tokens"])
        if meta.get("selection_ms") is not None:
            meta["selection_ms"] = fp32(meta["selection_ms"])
        if meta.get("fallback_used") is not None:
            meta["fallback_used"] = _as_bool(meta["fallback_used"])
        return GenerationResponse(text="".join(self._pieces), latency_ms=latency_ms,
                                  first_response_ms=first_response_ms, extras=extras, **meta)


def fp32(value: Any) -> float:
    """An FP32 output as the number it was meant to be: 0.747, not 0.746999979019165."""
    return float(f"{float(value):.7g}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclass(frozen=True)
class Alternative:
    model: str
    score: float


@dataclass(frozen=True)
class Recommendation:
    """What the `recommend` model advises for a prompt and requirements."""

    recommended_model: str
    confidence: float
    alternatives: tuple[Alternative, ...]
    reasoning: str
    task: str | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> Recommendation:
        try:
            alternatives = tuple(Alternative(str(a["model"]), float(a["score"]))
                                 for a in _json(outputs.get("alternatives"), default=[]))
            return cls(recommended_model=str(outputs["recommended_model"]),
                       confidence=fp32(outputs["confidence"]), alternatives=alternatives,
                       reasoning=str(outputs.get("reasoning") or ""), task=outputs.get("task"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PointsmanClientError(f"unexpected answer shape: {exc!r}", model="recommend") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelInfo:
    """One served model: catalog metadata plus live status (the catalog model's entry shape).

    When the server has no `catalog` model, `source` is "repository" and only what Triton's
    repository index and statistics say is filled in.
    """

    model_name: str
    loaded: bool
    capabilities: tuple[str, ...] = ()
    specialization_score: Mapping[str, float] = field(default_factory=dict)
    performance_metrics: Mapping[str, Any] = field(default_factory=dict)
    current_status: Mapping[str, Any] = field(default_factory=dict)
    source: str = "catalog"
    interface: str = ""  # pointsman, tensorrtllm or vllm (the catalog model says; "" from the repository index)

    @classmethod
    def from_catalog_entry(cls, entry: Mapping[str, Any]) -> ModelInfo:
        status = dict(entry.get("current_status") or {})
        return cls(model_name=str(entry["model_name"]), loaded=_as_bool(status.get("loaded", False)),
                   capabilities=tuple(entry.get("capabilities") or ()),
                   specialization_score=dict(entry.get("specialization_score") or {}),
                   performance_metrics=dict(entry.get("performance_metrics") or {}), current_status=status,
                   interface=str(entry.get("interface") or ""))

    @classmethod
    def from_repository(cls, index_entry: Mapping[str, Any], stats: Mapping[str, Any] | None) -> ModelInfo:
        state = str(index_entry.get("state") or "UNAVAILABLE")
        status: dict[str, Any] = {"loaded": state == "READY", "state": state}
        if index_entry.get("reason"):
            status["reason"] = index_entry["reason"]
        performance: dict[str, Any] = {}
        if stats:
            performance["inference_count"] = int(stats.get("inference_count", 0))
            last_ms = int(stats.get("last_inference", 0))  # protobuf JSON writes int64 as a string
            if last_ms:
                status["last_used"] = datetime.fromtimestamp(last_ms / 1e3, tz=timezone.utc).isoformat(
                    timespec="seconds")
        return cls(model_name=str(index_entry["name"]), loaded=state == "READY", performance_metrics=performance,
                   current_status=status, source="repository")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_catalog(raw: Any) -> list[ModelInfo]:
    """The catalog model's `models` output (a JSON list) -> ModelInfo list."""
    try:
        entries = _json(raw, default=None)
        if isinstance(entries, Mapping):  # one model asked for by name
            entries = [entries]
        return [ModelInfo.from_catalog_entry(e) for e in entries]
    except (KeyError, TypeError, ValueError) as exc:
        raise PointsmanClientError(f"unexpected answer shape: {exc!r}", model="catalog") from None


def _json(raw: Any, default: Any) -> Any:
    if raw is None:
        return default
    if isinstance(raw, (bytes, str)):
        return json.loads(raw)
    return raw
