"""The request contract, declared once: every field's tensor type, alias, default and hint.

    params = parse_generate({"text_input": "def add(a, b):", "max_tokens": 16})
    params.max_tokens  # 16

Field names follow Triton's LLM convention; the original API's names (prompt,
max_length) are accepted as aliases. Unknown fields are rejected, never ignored.
Everything else is derived from here, never written again: the router's, recommend's
and the language models' Triton inputs and outputs (auto-completed by their model.py),
the BLS tensor types, the exported model config and the client's field list.
tests/unit/test_contract_derived.py and tests/integration/test_contract_served.py fail
when any of them disagrees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from pointsman.errors import InvalidRequest

MAX_TOKENS_CAP = 4096
CHAT_ROLES = ("system", "user", "assistant", "tool")

# Every streaming entry point is a pair: <name> (non-decoupled, answers once: tritonclient
# infer, HTTP /infer, generate) and <name>_stream (decoupled: generate_stream, gRPC streaming)
STREAM_SUFFIX = "_stream"


def stream_model(name: str) -> str:
    """The decoupled twin of a model name: router -> router_stream, gpt2 -> gpt2_stream."""
    return f"{name}{STREAM_SUFFIX}"


@dataclass(frozen=True)
class TensorSpec:
    """One Triton tensor: a name, Triton's data type name and whether a request may omit it."""

    name: str
    data_type: str  # as config.pbtxt spells it: TYPE_STRING, TYPE_INT32, ...
    optional: bool = True
    dims: tuple[int, ...] = (1,)


def _field(default: Any, data_type: str, hint: str, alias: tuple[str, str] | None = None,
           dims: tuple[int, ...] = (1,), **constraints: Any) -> Any:
    """A pydantic field that also carries its Triton data type, dims and the hint its error shows."""
    extra = {"data_type": data_type, "hint": hint, "dims": list(dims)}
    if alias is not None:
        constraints["validation_alias"] = AliasChoices(alias[0], alias[1])
    return Field(default, json_schema_extra=extra, **constraints)


_TEXT = ("text_input", "prompt")
_MAX = ("max_tokens", "max_length")
_MIN = ("min_tokens", "min_length")  # min_length: TensorRT-LLM's (and genai-perf's) name
MAX_STOP_SEQUENCES = 16
MAX_RESPONSE_TIME_S = 3600.0
MAX_USER_CHARS = 256


class GenerateParams(BaseModel):
    """What one language model needs to generate."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # optional as a tensor so the alias `prompt` can stand in; required here unless `messages` is given
    # pattern: at least one character that is not white space (a blank prompt is refused)
    text_input: str | None = _field(None, "TYPE_STRING", "a string that is not blank (alias: prompt)", _TEXT,
                                    min_length=1, pattern=r"\S")
    # strict: true/false are not token counts, "5" is not a seed
    max_tokens: int = _field(20, "TYPE_INT32", f"an integer from 1 to {MAX_TOKENS_CAP} (alias: max_length)", _MAX,
                             ge=1, le=MAX_TOKENS_CAP, strict=True)
    temperature: float = _field(0.0, "TYPE_FP32", "a number from 0 (greedy) to 100", ge=0.0, le=100.0)
    top_k: int = _field(0, "TYPE_INT32", "an integer >= 0 (0 disables top-k)", ge=0, strict=True)
    top_p: float = _field(1.0, "TYPE_FP32", "a number in (0, 1]", gt=0.0, le=1.0)
    seed: int | None = _field(None, "TYPE_UINT64", "an integer from 0 to 2**63-1", ge=0, lt=2**63, strict=True)
    stream: bool = _field(False, "TYPE_BOOL", "true or false")
    ignore_eos: bool = _field(False, "TYPE_BOOL", "true or false")
    # Hugging Face's (CTRL's) penalty over prompt and generated tokens
    repetition_penalty: float = _field(1.0, "TYPE_FP32", "a number > 0 (1 disables it)", gt=0.0, le=100.0)
    # OpenAI's definition: logit -= presence * [count > 0] + frequency * count, over generated tokens
    presence_penalty: float = _field(0.0, "TYPE_FP32", "a number from -2 to 2 (0 disables it)", ge=-2.0, le=2.0)
    frequency_penalty: float = _field(0.0, "TYPE_FP32", "a number from -2 to 2 (0 disables it)", ge=-2.0, le=2.0)
    stop: tuple[str, ...] = _field((), "TYPE_STRING", f"a list of at most {MAX_STOP_SEQUENCES} non-empty strings",
                                   dims=(-1,), max_length=MAX_STOP_SEQUENCES)
    min_tokens: int = _field(0, "TYPE_INT32", "an integer from 0 to max_tokens (alias: min_length)", _MIN,
                             ge=0, le=MAX_TOKENS_CAP, strict=True)
    # TensorRT-LLM's switch, sent by genai-perf: false puts the prompt at the start of text_output
    exclude_input_in_output: bool = _field(True, "TYPE_BOOL", "true or false")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]  # one stop sequence, as OpenAI also accepts
        if isinstance(value, list | tuple) and not all(isinstance(v, str) and v for v in value):
            raise ValueError("every stop sequence must be a non-empty string")
        return value

    @model_validator(mode="after")
    def _min_within_max(self) -> GenerateParams:
        if self.min_tokens > self.max_tokens:
            raise _CrossFieldError("min_tokens", f"must be at most max_tokens ({self.max_tokens})", self.min_tokens)
        return self

    @model_validator(mode="after")
    def _prompt_or_chat(self) -> GenerateParams:
        if self.text_input is None and self.messages is None:
            raise _CrossFieldError("text_input", f"is required: {_hint(type(self), 'text_input', '')}, "
                                   "or 'messages' (a chat)", None)
        if self.text_input is not None and self.messages is not None:
            raise _CrossFieldError("messages", "give 'messages' (a chat) or 'text_input' (a prompt), not both", None)
        return self

    # a chat: the language model renders it with its own chat template (engine/chat_template.py)
    messages: str | None = _field(None, "TYPE_STRING", 'a JSON list of {"role", "content"} objects, role one of '
                                  f"{', '.join(CHAT_ROLES)}, content a string", min_length=2)

    @field_validator("messages")
    @classmethod
    def _chat(cls, value: str | None) -> str | None:
        if value is not None:
            chat_messages(value)
        return value

    @property
    def prompt_text(self) -> str:
        """The text a prompt analyser reads: the prompt, or the chat's contents in order."""
        if self.text_input is not None:
            return self.text_input
        return "\n".join(m["content"] for m in chat_messages(self.messages or "[]"))


def chat_messages(raw: str) -> list[dict[str, str]]:
    """The `messages` field decoded: a non-empty list of {"role", "content"} (ValueError otherwise)."""
    try:
        messages = json.loads(raw)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(messages, list) or not messages:
        raise ValueError("not a non-empty list")
    for message in messages:
        if (not isinstance(message, dict) or message.get("role") not in CHAT_ROLES
                or not isinstance(message.get("content"), str)):
            raise ValueError("a message is not {role, content}")
    return messages


class RouterParams(GenerateParams):
    """A router request: generation fields plus how to choose the model."""

    model: str | None = _field(None, "TYPE_STRING", "the name of a loaded model", min_length=1)
    auto_select: bool | None = _field(None, "TYPE_BOOL", "true or false")
    preferred_model: str | None = _field(None, "TYPE_STRING", "the name of a model", min_length=1)
    fallback_mode: str = _field("auto", "TYPE_STRING", "one of auto, fastest, none", pattern="^(auto|fastest|none)$")
    # also the request's deadline: bounded, so a deadline always ends a request
    max_response_time: float | None = _field(None, "TYPE_FP32", f"a number of seconds > 0, at most "
                                             f"{MAX_RESPONSE_TIME_S:g}", gt=0.0, le=MAX_RESPONSE_TIME_S)
    min_quality: float | None = _field(None, "TYPE_FP32", "a number from 0 to 1", ge=0.0, le=1.0)
    prefer_speed: bool = _field(False, "TYPE_BOOL", "true or false")
    # stored with every usage record: bounded
    user: str | None = _field(None, "TYPE_STRING", f"a string of at most {MAX_USER_CHARS} characters identifying "
                              "the caller", max_length=MAX_USER_CHARS)


class RecommendParams(BaseModel):
    """A recommendation request: the prompt and what the answer must meet."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    text_input: str = _field(..., "TYPE_STRING", "a string that is not blank (alias: prompt)", _TEXT, min_length=1,
                             pattern=r"\S")
    max_tokens: int = GenerateParams.model_fields["max_tokens"]
    max_response_time: float | None = RouterParams.model_fields["max_response_time"]
    min_quality: float | None = RouterParams.model_fields["min_quality"]
    prefer_speed: bool = RouterParams.model_fields["prefer_speed"]


# -- stopping a routed request ---------------------------------------------------------
# Triton 2.51's BLS cannot cancel a request it started, so the router names each request it
# sends an engine model ROUTED_ID_PREFIX + a random hex, and stops one by sending that model
# a request with no inputs and the id as the ROUTED_CANCEL parameter. Only ids with the
# prefix can be stopped this way: a caller's own request ids cannot be.
ROUTED_ID_PREFIX = "pointsman-routed-"
ROUTED_CANCEL = "pointsman_cancel"

# -- probing the router -------------------------------------------------------------------
# Triton 2.51 still calls a model READY when its stub has died. The router's twin (`router`)
# watches router_stream with requests carrying this parameter: a live router answers one at
# once with an empty final response, and never routes nor records it; for a dead stub,
# Triton answers "Stub process 'router_stream_0_0' is not healthy".
ROUTER_PROBE = "pointsman_probe"

# -- outputs ---------------------------------------------------------------------------
_TEXT_OUTPUT = TensorSpec("text_output", "TYPE_STRING", optional=False)
_TOKENS = TensorSpec("tokens", "TYPE_INT32", optional=False)
_FINISH = TensorSpec("finish_reason", "TYPE_STRING", optional=False)
_PROMPT_TOKENS = TensorSpec("prompt_tokens", "TYPE_INT32", optional=False)  # as the model's tokenizer counts them

# a language model: streamed pieces carry text_output and tokens (generated so far, the piece's
# included: a piece can hold several tokens); the final response all five
LLM_OUTPUTS: tuple[TensorSpec, ...] = (
    _TEXT_OUTPUT, _TOKENS, _FINISH, _PROMPT_TOKENS,
    TensorSpec("mean_logprob", "TYPE_FP32", optional=False),  # NaN when no token was generated
)
ROUTER_OUTPUTS: tuple[TensorSpec, ...] = (
    _TEXT_OUTPUT, _TOKENS, _FINISH, _PROMPT_TOKENS,
    TensorSpec("selected_model", "TYPE_STRING", optional=False),
    TensorSpec("selection_mode", "TYPE_STRING", optional=False),
    TensorSpec("selection_reason", "TYPE_STRING", optional=False),
    TensorSpec("fallback_used", "TYPE_BOOL", optional=False),
    TensorSpec("task", "TYPE_STRING", optional=False),
    TensorSpec("analyzer", "TYPE_STRING", optional=False),
    TensorSpec("selection_ms", "TYPE_FP32", optional=False),
    TensorSpec("request_id", "TYPE_STRING", optional=False),
)
RECOMMEND_OUTPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("recommended_model", "TYPE_STRING", optional=False),
    TensorSpec("confidence", "TYPE_FP32", optional=False),
    TensorSpec("alternatives", "TYPE_STRING", optional=False),  # a JSON list of model names
    TensorSpec("reasoning", "TYPE_STRING", optional=False),
    TensorSpec("task", "TYPE_STRING", optional=False),
)


class _CrossFieldError(ValueError):
    """A rule between fields, raised inside validation and reported naming its field."""

    def __init__(self, name: str, message: str, got: Any) -> None:
        super().__init__(message)
        self.name, self.message, self.got = name, message, got


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    if not isinstance(extra, dict) or "data_type" not in extra:
        raise TypeError("every contract field is declared with _field(), which gives its tensor type")
    return extra


def input_tensors(model: type[BaseModel]) -> tuple[TensorSpec, ...]:
    """The Triton inputs of a request model, all optional (the contract checks what is required).

    Each alias is an input of its own, typed as its field: perf_analyzer refuses any JSON
    key that is not a declared input, and genai-perf sends `min_length`.
    """
    def spec(name: str, info: FieldInfo) -> TensorSpec:
        extra = _extra(info)
        return TensorSpec(name, str(extra["data_type"]), dims=tuple(extra["dims"]))

    canonical = [spec(name, info) for name, info in model.model_fields.items()]
    alias = [spec(a, model.model_fields[name]) for a, name in aliases(model).items()]
    return (*canonical, *alias)


def input_names(model: type[BaseModel]) -> tuple[str, ...]:
    """Every input a request may carry: canonical names, then aliases."""
    return tuple(spec.name for spec in input_tensors(model))


def field_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The canonical field names of a request model, in declaration order."""
    return tuple(model.model_fields)


@cache  # a request model's aliases never change; _parse reads them on every request
def aliases(model: type[BaseModel]) -> Mapping[str, str]:
    """Alias -> canonical name, e.g. {"prompt": "text_input", "max_length": "max_tokens"} (read-only)."""
    out = {}
    for name, info in model.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            out.update({str(a): name for a in info.validation_alias.choices if a != name})
    return MappingProxyType(out)


def accepted_fields(model: type[BaseModel]) -> list[str]:
    """Canonical names followed by their aliases, as an error lists them."""
    names = []
    alias_of = aliases(model)
    for name in model.model_fields:
        names.append(name)
        names.extend(alias for alias, canonical in alias_of.items() if canonical == name)
    return names


def _hint(model: type[BaseModel], name: str, fallback: str) -> str:
    info = model.model_fields.get(name)
    return str(_extra(info)["hint"]) if info is not None else fallback


def _parse(model: type[BaseModel], fields: Mapping[str, Any]) -> Any:
    canonical = aliases(model)
    for alias, name in canonical.items():
        if alias in fields and name in fields:
            raise InvalidRequest(alias, f"is an alias of '{name}'; give one of them, not both")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        cross = first.get("ctx", {}).get("error")
        if isinstance(cross, _CrossFieldError):
            raise InvalidRequest(cross.name, cross.message, got=cross.got) from None
        name = str(first["loc"][0]) if first["loc"] else "request"
        if first["type"] == "extra_forbidden":
            accepted = ", ".join(accepted_fields(model))
            raise InvalidRequest(name, f"unknown field; accepted fields: {accepted}") from None
        name = canonical.get(name, name)
        if first["type"] == "missing":
            raise InvalidRequest(name, f"is required: {_hint(model, name, first['msg'])}") from None
        raise InvalidRequest(name, f"must be {_hint(model, name, first['msg'])}", got=first.get("input")) from None


def parse_generate(fields: Mapping[str, Any]) -> GenerateParams:
    """Validate a language-model request; raise InvalidRequest naming the field."""
    return _parse(GenerateParams, fields)


def parse_router(fields: Mapping[str, Any]) -> RouterParams:
    """Validate a router request; raise InvalidRequest naming the field."""
    return _parse(RouterParams, fields)


def parse_recommend(fields: Mapping[str, Any]) -> RecommendParams:
    """Validate a recommendation request; raise InvalidRequest naming the field."""
    return _parse(RecommendParams, fields)
