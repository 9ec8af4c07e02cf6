"""Keyword arguments -> the fields of one request, checked where checking is trivial.

    request = GenerateRequest("def add(a, b):", prefer="codegen", fallback="fastest")
    request.target("router"), request.fields(stream=False)

Field names are the router contract's (DESIGN.md): the same dict is the JSON body of the
generate endpoint and, typed by the model's metadata, the tensors of a gRPC request.
The server validates everything again; the client only refuses what is plainly wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from pointsman.policy.contract import GenerateParams, field_names

FALLBACK_MODES = ("auto", "fastest", "none")
PROTOCOLS = ("http", "grpc")
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
DEFAULT_TIMEOUT_S = 120.0
ROUTER_MODEL = "router"
RECOMMEND_MODEL = "recommend"
CATALOG_MODEL = "catalog"
EXPERIMENTS_MODEL = "experiments"
USAGE_MODEL = "usage"
EXPERIMENT_ACTIONS = ("list", "create", "pause", "resume", "stop", "report", "feedback")

# fields a language model called directly accepts, from the one contract
GENERATION_FIELDS = field_names(GenerateParams)


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: the prompt, how to pick the model, how to sample.

    Selection: `model` (manual), `auto` (auto), `prefer` + `fallback` (hybrid); none of
    them lets the router choose (auto). `direct` sends the request to `model` itself
    instead of the router: no selection, no router hop.
    """

    prompt: str
    model: str | None = None
    auto: bool = False
    prefer: str | None = None
    fallback: str = "auto"
    direct: bool = False
    max_tokens: int = 20
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    ignore_eos: bool = False
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] | list[str] | None = None
    min_tokens: int | None = None
    max_response_time: float | None = None
    min_quality: float | None = None
    prefer_speed: bool = False
    user: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the argument that is plainly wrong."""
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError("prompt must be a non-empty string")
        chosen = [name for name, on in (("model", self.model), ("auto", self.auto), ("prefer", self.prefer)) if on]
        if len(chosen) > 1:
            raise ValueError(f"choose one of model (manual), auto, prefer (hybrid); got {' and '.join(chosen)}")
        if self.fallback not in FALLBACK_MODES:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACK_MODES)}; got {self.fallback!r}")
        if self.fallback != "auto" and not self.prefer:
            raise ValueError("fallback applies to a preferred model: pass prefer as well")
        if self.direct:
            self._validate_direct()
        _check_range("max_tokens", self.max_tokens, int, low=1)
        _check_range("temperature", self.temperature, float, low=0.0)
        _check_range("top_k", self.top_k, int, low=0)
        _check_range("top_p", self.top_p, float, low=0.0, high=1.0, low_open=True)
        _check_range("seed", self.seed, int, low=0, high=2**63 - 1)
        _check_range("repetition_penalty", self.repetition_penalty, float, low=0.0, low_open=True)
        _check_range("presence_penalty", self.presence_penalty, float, low=-2.0, high=2.0)
        _check_range("frequency_penalty", self.frequency_penalty, float, low=-2.0, high=2.0)
        _check_range("min_tokens", self.min_tokens, int, low=0, high=self.max_tokens)
        stops = self.stop
        if stops is not None and (isinstance(stops, str) or not all(isinstance(s, str) and s for s in stops)):
            raise ValueError(f"stop must be a list of non-empty strings; got {self.stop!r}")
        _check_range("max_response_time", self.max_response_time, float, low=0.0, low_open=True)
        _check_range("min_quality", self.min_quality, float, low=0.0, high=1.0)

    def _validate_direct(self) -> None:
        if not self.model:
            raise ValueError("direct needs model: the language model to call without the router")
        router_only = [name for name, on in (("auto", self.auto), ("prefer", self.prefer),
                                             ("max_response_time", self.max_response_time is not None),
                                             ("min_quality", self.min_quality is not None),
                                             ("prefer_speed", self.prefer_speed), ("user", self.user)) if on]
        if router_only:
            raise ValueError(f"direct calls skip the router, which alone takes {', '.join(router_only)}")

    @property
    def mode(self) -> str:
        """manual, auto, hybrid or direct: how the model is chosen."""
        if self.direct:
            return "direct"
        if self.model:
            return "manual"
        return "hybrid" if self.prefer else "auto"

    def target(self, router: str = ROUTER_MODEL) -> str:
        """The Triton model the request is sent to."""
        return self.model if self.direct and self.model else router

    def fields(self, *, stream: bool) -> dict[str, Any]:
        """The request's fields, unset ones left out so the server's defaults apply."""
        fields: dict[str, Any] = {"text_input": self.prompt, "max_tokens": self.max_tokens}
        optional = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed,
                    "repetition_penalty": self.repetition_penalty, "presence_penalty": self.presence_penalty,
                    "frequency_penalty": self.frequency_penalty, "min_tokens": self.min_tokens,
                    "stop": list(self.stop) if self.stop else None}
        fields.update({k: v for k, v in optional.items() if v is not None})
        if self.ignore_eos:
            fields["ignore_eos"] = True
        if stream:
            fields["stream"] = True
        if self.direct:
            return fields
        if self.model:
            fields["model"] = self.model
        elif self.auto:
            fields["auto_select"] = True
        elif self.prefer:
            fields["preferred_model"] = self.prefer
            fields["fallback_mode"] = self.fallback
        router_extras = {"max_response_time": self.max_response_time, "min_quality": self.min_quality,
                         "user": self.user}
        fields.update({k: v for k, v in router_extras.items() if v is not None})
        if self.prefer_speed:
            fields["prefer_speed"] = True
        return fields


class GenerateOptions(TypedDict, total=False):
    """Keyword arguments of generate() and stream(); see GenerateRequest."""

    model: str | None
    auto: bool
    prefer: str | None
    fallback: str
    direct: bool
    max_tokens: int
    temperature: float | None
    top_k: int | None
    top_p: float | None
    seed: int | None
    ignore_eos: bool
    repetition_penalty: float | None
    presence_penalty: float | None
    frequency_penalty: float | None
    stop: list[str] | None
    min_tokens: int | None
    max_response_time: float | None
    min_quality: float | None
    prefer_speed: bool
    user: str | None


def as_request(prompt: str | GenerateRequest, options: Mapping[str, Any]) -> GenerateRequest:
    """generate()'s arguments -> a GenerateRequest: a prompt with keyword options, or a ready request."""
    if isinstance(prompt, GenerateRequest):
        if options:
            raise TypeError("pass either a GenerateRequest or a prompt with keyword options, not both")
        return prompt
    return GenerateRequest(prompt, **options)


def recommend_fields(prompt: str, *, max_tokens: int | None = None, max_response_time: float | None = None,
                     min_quality: float | None = None, prefer_speed: bool = False) -> dict[str, Any]:
    """The `recommend` model's inputs; the same requirements auto-selection honours."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    _check_range("max_tokens", max_tokens, int, low=1)
    _check_range("max_response_time", max_response_time, float, low=0.0, low_open=True)
    _check_range("min_quality", min_quality, float, low=0.0, high=1.0)
    fields: dict[str, Any] = {"text_input": prompt}
    optional = {"max_tokens": max_tokens, "max_response_time": max_response_time, "min_quality": min_quality}
    fields.update({k: v for k, v in optional.items() if v is not None})
    if prefer_speed:
        fields["prefer_speed"] = True
    return fields


def _check_range(name: str, value: Any, kind: type, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    if value is None:
        return
    numeric = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, numeric):
        raise ValueError(f"{name} must be {'a number' if kind is float else 'an integer'}; got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lower = "" if low is None else f"{'>' if low_open else '>='} {low}"
        upper = "" if high is None else f"<= {high}"
        raise ValueError(f"{name} must be {' and '.join(p for p in (lower, upper) if p)}; got {value!r}")


# -- tensors ------------------------------------------------------------------------------

NUMPY_TYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a model, from its metadata."""

    datatype: str
    shape: tuple[int, ...]  # -1 (any size) replaced by 1; a list value (stop) sets its own length


def input_specs(metadata: Mapping[str, Any]) -> dict[str, InputSpec]:
    """Model metadata (as JSON) -> input name -> InputSpec."""
    return {i["name"]: InputSpec(i["datatype"], tuple(1 if int(d) < 0 else int(d) for d in i["shape"]) or (1,))
            for i in metadata.get("inputs", [])}


def to_array(value: Any, spec: InputSpec) -> np.ndarray:
    """A field value as the array the model declares (a list, such as stop, as a 1-D array of its items)."""
    if isinstance(value, list | tuple):
        items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in value] if spec.datatype == "BYTES" \
            else value
        return np.array(items, dtype=np.object_ if spec.datatype == "BYTES" else NUMPY_TYPES[spec.datatype])
    if spec.datatype == "BYTES":
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        return np.full(spec.shape, raw, dtype=np.object_)
    return np.full(spec.shape, value, dtype=NUMPY_TYPES[spec.datatype])


def build_inputs(infer_input_cls: type, specs: Mapping[str, InputSpec],
                 fields: Mapping[str, Any]) -> tuple[list, dict[str, Any]]:
    """Fields -> (InferInputs typed by the model's metadata, request parameters).

    A field the model does not declare travels as a request parameter, as an unknown JSON
    key of the generate endpoint does, so the model itself says what it accepts.
    `infer_input_cls` is tritonclient.http.InferInput or tritonclient.grpc.InferInput.
    """
    inputs, parameters = [], {}
    for name, value in fields.items():
        spec = specs.get(name)
        if spec is None:
            parameters[name] = value
            continue
        array = to_array(value, spec)
        tensor = infer_input_cls(name, list(array.shape), spec.datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs, parameters


def scalar(array: np.ndarray | None) -> Any:
    """The first element of an output tensor as a plain Python value (bytes decoded)."""
    if array is None or array.size == 0:
        return None
    value = array.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value
