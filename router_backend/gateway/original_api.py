"""The original plan's API: POST /inference, GET /models, GET and POST /models/recommend.

    fields = inference_fields({"prompt": "Write code", "preferred_model": "gpt2", "fallback_mode": "auto"})
    inference_answer(outputs, text, latency_ms)   # {"text", "model", "selection_mode", ...}

The body of /inference is the router contract itself (prompt, max_length, model,
auto_select, preferred_model, fallback_mode and the requirement fields), validated here
so that a wrong type is a 400 naming the field, not Triton's parser's 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pointsman.errors import InvalidRequest
from pointsman.gateway.errors import ApiError, from_invalid_request
from pointsman.policy.contract import RecommendParams, accepted_fields, parse_recommend, parse_router

REQUIREMENTS = ("max_response_time", "min_quality", "prefer_speed")
_ORIGINAL_NAMES = {"text_input": "prompt", "max_tokens": "max_length"}


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ApiError.invalid("body", "the request body must be a JSON object")
    return body


def inference_fields(body: Any) -> dict[str, Any]:
    """POST /inference body -> router fields (one answer, not a stream)."""
    body = dict(_object(body))
    if body.get("stream"):
        raise ApiError.invalid("stream", "invalid 'stream': /inference answers once; stream with "
                                         "POST /v1/completions (stream: true)")
    body["stream"] = False
    names = {k: v for k, v in _ORIGINAL_NAMES.items() if v in body}
    try:
        parse_router(body)
    except InvalidRequest as exc:
        raise from_invalid_request(exc, names) from None
    return body


def inference_answer(final: Mapping[str, Any], text: str, latency_ms: float) -> dict[str, Any]:
    """The router's final response as the original API answers: the text, the model and why."""
    return {
        "text": text,
        "model": final.get("selected_model"),
        "selection_mode": final.get("selection_mode"),
        "selection_reason": final.get("selection_reason"),
        "fallback_used": bool(final.get("fallback_used")),
        "task": final.get("task"),
        "tokens": int(final.get("tokens") or 0),
        "prompt_tokens": int(final.get("prompt_tokens") or 0),
        "finish_reason": final.get("finish_reason"),
        "request_id": final.get("request_id"),
        "selection_ms": final.get("selection_ms"),
        "latency_ms": round(latency_ms, 2),
    }


def _from_query(name: str, raw: str) -> Any:
    """A query-string value typed as the contract field expects (so "0.8" is a number, "true" a flag)."""
    annotation = str(RecommendParams.model_fields[name].annotation) if name in RecommendParams.model_fields else ""
    if "bool" in annotation:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        return raw
    for kind in ("int", "float"):
        if kind in annotation:
            try:
                return int(raw) if kind == "int" else float(raw)
            except ValueError:
                return raw  # the contract names the field and what it takes
    return raw


def recommend_fields(body: Any = None, query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GET query parameters or a POST body (flat, or the plan's nested `requirements`) -> recommend fields."""
    if query is not None:
        fields: dict[str, Any] = {}
        for name, raw in query.items():
            canonical = {"prompt": "text_input", "max_length": "max_tokens"}.get(name, name)
            fields[name] = _from_query(canonical, raw)
    else:
        fields = dict(_object(body))
        nested = fields.pop("requirements", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise ApiError.invalid("requirements", "invalid 'requirements': must be an object with "
                                                       f"{', '.join(REQUIREMENTS)}")
            for name, value in nested.items():
                if name not in REQUIREMENTS:
                    raise ApiError.invalid(f"requirements.{name}", f"invalid 'requirements.{name}': unknown; "
                                                                   f"accepted: {', '.join(REQUIREMENTS)}")
                fields[name] = value
    names = {k: v for k, v in _ORIGINAL_NAMES.items() if v in fields}
    try:
        parse_recommend(fields)
    except InvalidRequest as exc:
        if "unknown field" in str(exc):
            raise ApiError.invalid(exc.field, f"invalid '{exc.field}': unknown field; accepted fields: "
                                              f"{', '.join(accepted_fields(RecommendParams))}") from None
        raise from_invalid_request(exc, names) from None
    return fields


def recommendation(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The recommend model's outputs in the original plan's shape."""
    alternatives = outputs.get("alternatives") or "[]"
    return {
        "recommended_model": outputs.get("recommended_model"),
        "confidence": None if outputs.get("confidence") is None else round(float(outputs["confidence"]), 4),
        "alternatives": json.loads(alternatives) if isinstance(alternatives, str) else alternatives,
        "reasoning": outputs.get("reasoning"),
        "task": outputs.get("task"),
    }
