"""The request contract: decode once at the edge into a frozen, validated value.

    params = parse_generate({"text_input": "def add(a, b):", "max_tokens": 16})
    params.max_tokens  # 16

Field names follow Triton's LLM convention; the original API's names (prompt,
max_length) are accepted as aliases. Unknown fields are rejected, never ignored.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from router_backend.errors import InvalidRequest

MAX_TOKENS_CAP = 4096


class GenerateParams(BaseModel):
    """What one language model needs to generate."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    text_input: str = Field(min_length=1, validation_alias=AliasChoices("text_input", "prompt"))
    # strict: true/false are not token counts, "5" is not a seed
    max_tokens: int = Field(20, ge=1, le=MAX_TOKENS_CAP, strict=True,
                            validation_alias=AliasChoices("max_tokens", "max_length"))
    temperature: float = Field(0.0, ge=0.0, le=100.0)
    top_k: int = Field(0, ge=0, strict=True)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**63, strict=True)
    stream: bool = False
    ignore_eos: bool = False


class RouterParams(GenerateParams):
    """A router request: generation fields plus how to choose the model."""

    model: str | None = Field(None, min_length=1)
    auto_select: bool | None = None
    preferred_model: str | None = Field(None, min_length=1)
    fallback_mode: str = Field("auto", pattern="^(auto|fastest|none)$")
    max_response_time: float | None = Field(None, gt=0.0)
    min_quality: float | None = Field(None, ge=0.0, le=1.0)
    prefer_speed: bool = False
    user: str | None = None


class RecommendParams(BaseModel):
    """A recommendation request: the prompt and what the answer must meet."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    text_input: str = Field(min_length=1, validation_alias=AliasChoices("text_input", "prompt"))
    max_tokens: int = Field(20, ge=1, le=MAX_TOKENS_CAP, strict=True,
                            validation_alias=AliasChoices("max_tokens", "max_length"))
    max_response_time: float | None = Field(None, gt=0.0)
    min_quality: float | None = Field(None, ge=0.0, le=1.0)
    prefer_speed: bool = False


def accepted_fields(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(name)
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.extend(a for a in alias.choices if a != name)
    return names


_HINTS = {
    "text_input": "a non-empty string (alias: prompt)",
    "max_tokens": f"an integer from 1 to {MAX_TOKENS_CAP} (alias: max_length)",
    "temperature": "a number from 0 (greedy) to 100",
    "top_k": "an integer >= 0 (0 disables top-k)",
    "top_p": "a number in (0, 1]",
    "seed": "an integer from 0 to 2**63-1",
    "stream": "true or false",
    "ignore_eos": "true or false",
    "model": "the name of a loaded model",
    "auto_select": "true or false",
    "preferred_model": "the name of a model",
    "fallback_mode": "one of auto, fastest, none",
    "max_response_time": "a number of seconds > 0",
    "min_quality": "a number from 0 to 1",
    "prefer_speed": "true or false",
    "user": "a string identifying the caller",
}
_CANONICAL = {"prompt": "text_input", "max_length": "max_tokens"}


def _parse(model: type[BaseModel], fields: Mapping[str, Any]) -> Any:
    for alias, canonical in _CANONICAL.items():
        if alias in fields and canonical in fields:
            raise InvalidRequest(alias, f"is an alias of '{canonical}'; give one of them, not both")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "request"
        if first["type"] == "extra_forbidden":
            accepted = ", ".join(accepted_fields(model))
            raise InvalidRequest(name, f"unknown field; accepted fields: {accepted}") from None
        name = _CANONICAL.get(name, name)
        if first["type"] == "missing":
            raise InvalidRequest(name, f"is required: {_HINTS.get(name, first['msg'])}") from None
        raise InvalidRequest(name, f"must be {_HINTS.get(name, first['msg'])}", got=first.get("input")) from None


def parse_generate(fields: Mapping[str, Any]) -> GenerateParams:
    """Validate a language-model request; raise InvalidRequest naming the field."""
    return _parse(GenerateParams, fields)


def parse_router(fields: Mapping[str, Any]) -> RouterParams:
    """Validate a router request; raise InvalidRequest naming the field."""
    return _parse(RouterParams, fields)


def parse_recommend(fields: Mapping[str, Any]) -> RecommendParams:
    """Validate a recommendation request; raise InvalidRequest naming the field."""
    return _parse(RecommendParams, fields)
