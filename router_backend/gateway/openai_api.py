"""OpenAI request bodies -> router fields, and router outputs -> OpenAI response objects.

    request = completion_request({"model": "auto", "prompt": "def f():", "max_tokens": 8})
    request.fields   # {"text_input": "def f():", "max_tokens": 8, "auto_select": True, ...}, contract-checked

`model: "auto"` is auto selection, a model's name is manual, and `preferred_model` (an
extra body field, with `fallback_mode`) is hybrid. A parameter the server cannot honour
is refused with a 400 that names it, never dropped; so is any parameter this module does
not know. Unset sampling fields keep the router's defaults (greedy, 20 new tokens).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pointsman.errors import InvalidRequest
from pointsman.gateway.errors import ApiError, from_invalid_request
from pointsman.policy.contract import parse_router

AUTO_MODEL = "auto"

# OpenAI parameter -> router field (the names the router contract takes)
GENERATION = {"max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "temperature": "temperature",
              "top_p": "top_p", "seed": "seed", "stop": "stop", "presence_penalty": "presence_penalty",
              "frequency_penalty": "frequency_penalty"}
# extra body fields: hybrid selection, requirements, and engine controls OpenAI lacks (as vLLM takes them)
EXTRA = ("preferred_model", "fallback_mode", "prefer_speed", "max_response_time", "min_quality", "user",
         "top_k", "repetition_penalty", "min_tokens", "ignore_eos")
# accepted with no effect on the answer: bookkeeping fields of the API
NO_EFFECT = ("store", "metadata", "service_tier", "stream_options", "reasoning_effort", "stream", "model")


def _is_text_format(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "text"


# parameter -> (is the value one this server can honour, why not); None values are always fine
SUPPORTED_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v == 1, "only n=1 (one choice per request)"),
    "best_of": (lambda v: v == 1, "only best_of=1"),
    "logit_bias": (lambda v: not v, "the engine has no per-token bias"),
    "logprobs": (lambda v: v is False, "the engine does not return per-token log probabilities"),
    "top_logprobs": (lambda v: False, "the engine does not return per-token log probabilities"),
    "tools": (lambda v: False, "these models do not call tools"),
    "tool_choice": (lambda v: False, "these models do not call tools"),
    "functions": (lambda v: False, "these models do not call functions"),
    "function_call": (lambda v: False, "these models do not call functions"),
    "parallel_tool_calls": (lambda v: False, "these models do not call tools"),
    "response_format": (_is_text_format, 'only {"type": "text"}'),
    "echo": (lambda v: v is False, "the prompt is not echoed"),
    "suffix": (lambda v: False, "no insertion (fill-in-the-middle)"),
    "audio": (lambda v: False, "text generation only"),
    "prediction": (lambda v: False, "text generation only"),
    "web_search_options": (lambda v: False, "text generation only"),
    "modalities": (lambda v: v == ["text"], 'only ["text"]'),
}


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    """A 400 naming the first parameter set to something this server cannot do."""
    for name, (honoured, why) in SUPPORTED_ONLY.items():
        if body.get(name) is not None and not honoured(body[name]):
            raise ApiError.unsupported(name, why)


@dataclass(frozen=True)
class OpenAIRequest:
    """A validated OpenAI request: the router's fields, and how to answer."""

    fields: dict[str, Any]
    stream: bool
    include_usage: bool
    requested_model: str
    names: dict[str, str] = field(default_factory=dict)  # router field -> the caller's parameter name


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError.invalid(name, f"invalid '{name}': must be true or false (got {value!r})")
    return value


def _selection(body: Mapping[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError.invalid("model", f"invalid 'model': must be '{AUTO_MODEL}' or the name of a model "
                                        f"(GET /v1/models lists them) (got {model!r})")
    if model != AUTO_MODEL:
        return {"model": model}
    # auto, or hybrid when a preferred model is named (the router's precedence: model, auto_select, preferred)
    return {} if body.get("preferred_model") is not None else {"auto_select": True}


def _common(body: Mapping[str, Any], prompt_param: str, known: tuple[str, ...]) -> OpenAIRequest:
    if not isinstance(body, Mapping):
        raise ApiError.invalid("body", "the request body must be a JSON object")
    _refuse_unsupported(body)
    accepted = {*known, *GENERATION, *EXTRA, *NO_EFFECT, *SUPPORTED_ONLY}
    for name in body:
        if name not in accepted:
            raise ApiError.invalid(name, f"unknown parameter '{name}'", code="unknown_parameter")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None \
            and body["max_tokens"] != body["max_completion_tokens"]:
        raise ApiError.invalid("max_completion_tokens", "give max_tokens or max_completion_tokens, not both")
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, Mapping) or set(options) - {"include_usage"}):
        raise ApiError.invalid("stream_options", "stream_options takes only include_usage (true or false)")
    include_usage = _flag(options, "include_usage") if options else False
    if include_usage and not stream:
        raise ApiError.invalid("stream_options", "stream_options needs stream: true")
    fields: dict[str, Any] = {"stream": stream, **_selection(body)}
    names = {"text_input": prompt_param, "auto_select": "model"}
    for name, target in GENERATION.items():
        if body.get(name) is not None:
            value = body[name]
            fields[target] = [value] if name == "stop" and isinstance(value, str) else value
            names[target] = name
    for name in EXTRA:
        if body.get(name) is not None:
            fields[name] = body[name]
    return OpenAIRequest(fields, stream, include_usage, body["model"], names)


def _checked(request: OpenAIRequest) -> OpenAIRequest:
    """Validate against the router's contract here: Triton's own JSON parser answers type errors with 500."""
    try:
        parse_router(request.fields)
    except InvalidRequest as exc:
        raise from_invalid_request(exc, request.names) from None
    return request


def completion_request(body: Mapping[str, Any]) -> OpenAIRequest:
    """POST /v1/completions body -> router fields."""
    request = _common(body, "prompt", ("prompt",))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and not all(isinstance(p, str) for p in prompt):
        raise ApiError.unsupported("prompt", "token-id prompts; send text")
    if isinstance(prompt, list):
        raise ApiError.unsupported("prompt", "a batch of prompts; send one prompt per request")
    if not isinstance(prompt, str) or not prompt:
        raise ApiError.invalid("prompt", f"invalid 'prompt': must be a non-empty string (got {prompt!r})")
    request.fields["text_input"] = prompt
    return _checked(request)


def _message_text(index: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError.unsupported(f"messages[{index}].content", "only text parts ({\"type\": \"text\"})")
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError.invalid(f"messages[{index}].content",
                           f"invalid 'messages[{index}].content': must be a string or a list of text parts")


def chat_messages(messages: Any) -> list[dict[str, str]]:
    """OpenAI chat messages -> [{"role", "content"}] as the model's chat template takes them."""
    if not isinstance(messages, list) or not messages:
        raise ApiError.invalid("messages", "invalid 'messages': must be a non-empty list of {role, content}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ApiError.invalid(f"messages[{i}]", f"invalid 'messages[{i}]': must be an object {{role, content}}")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise ApiError.invalid(f"messages[{i}].role", f"invalid 'messages[{i}].role': must be one of system, "
                                                          f"developer, user, assistant (got {role!r})")
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise ApiError.unsupported(f"messages[{i}].{extra[0]}", "messages carry role and content only")
        # a developer message is OpenAI's newer name for a system message
        out.append({"role": "system" if role == "developer" else role,
                    "content": _message_text(i, message.get("content"))})
    return out


def chat_request(body: Mapping[str, Any]) -> OpenAIRequest:
    """POST /v1/chat/completions body -> router fields; the model renders `messages` with its template."""
    request = _common(body, "messages", ("messages",))
    request.fields["messages"] = json.dumps(chat_messages(body.get("messages")), ensure_ascii=False)
    request.names["messages"] = "messages"
    return _checked(request)


# -- responses ---------------------------------------------------------------------------
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


def finish_reason(reason: str | None) -> str | None:
    return None if reason is None else FINISH_REASONS.get(reason, "stop")


def usage(final: Mapping[str, Any]) -> dict[str, int]:
    """Token counts the model's tokenizer made (prompt_tokens include a rendered chat template)."""
    prompt, completion = int(final.get("prompt_tokens") or 0), int(final.get("tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_object(request_id: str, model: str, text: str, final: Mapping[str, Any], chat: bool) -> dict:
    created = int(time.time())
    reason = finish_reason(final.get("finish_reason"))
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                  "logprobs": None}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
        kind = "text_completion"
    return {"id": request_id, "object": kind, "created": created, "model": model, "choices": [choice],
            "usage": usage(final)}


def chunk_object(request_id: str, model: str, created: int, chat: bool, *, text: str | None = None,
                 reason: str | None = None, first: bool = False, usage_of: Mapping[str, Any] | None = None) -> dict:
    """One SSE chunk: a piece of text, the finish reason, or (choices empty) the usage."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    chunk: dict[str, Any] = {"id": request_id, "object": kind, "created": created, "model": model}
    if usage_of is not None:
        chunk["choices"] = []
        chunk["usage"] = usage(usage_of)
        return chunk
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason(reason), "logprobs": None}]
    else:
        chunk["choices"] = [{"index": 0, "text": text or "", "finish_reason": finish_reason(reason),
                             "logprobs": None}]
    return chunk


def models_list(names: list[str]) -> dict[str, Any]:
    """GET /v1/models: `auto` first, then every routable model."""
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "pointsman"}
                                       for name in [AUTO_MODEL, *names]]}
