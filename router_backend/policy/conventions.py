"""The published tensor conventions the router speaks besides its own engine's: TensorRT-LLM and vLLM.

    tensors = request_tensors(entry, {"text_input": "def f():", "max_tokens": 16, "stream": True})
    reader = ResponseReader(entry.interface); piece = reader.read(outputs); final = reader.final()

TensorRT-LLM (tensorrtllm_backend all_models/inflight_batcher_llm, `ensemble` and
`tensorrt_llm_bls`): one input per sampling field (`text_input`, `max_tokens`,
`temperature`, `top_k`, `top_p`, `random_seed`, `min_length`, `stop_words`, penalties,
`stream`), output `text_output`. vLLM (vllm_backend src/model.py): `text_input`,
`stream`, `exclude_input_in_output`, the sampling fields as one JSON string
`sampling_parameters` (vLLM's SamplingParams names), output `text_output`; the optional
`return_finish_reason`, `return_num_input_tokens` and `return_num_output_tokens` switches
are set when the model declares them. Only inputs the model's config declares are sent,
typed and shaped as it declares them; a field the caller set that the model cannot take
is an error naming the field and the model, never dropped. No Triton import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pointsman.errors import InvalidRequest
from pointsman.policy.catalog import ModelEntry, Signature, TensorDecl
from pointsman.policy.contract import GenerateParams

LABELS = {"tensorrtllm": "TensorRT-LLM convention", "vllm": "vLLM backend convention"}
# router field -> TensorRT-LLM input (ensemble and tensorrt_llm_bls spell them alike)
TRTLLM_INPUTS = {
    "text_input": "text_input", "max_tokens": "max_tokens", "temperature": "temperature", "top_k": "top_k",
    "top_p": "top_p", "seed": "random_seed", "min_tokens": "min_length", "stop": "stop_words",
    "repetition_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "exclude_input_in_output": "exclude_input_in_output",
}
# router field -> vLLM SamplingParams key (inside sampling_parameters)
VLLM_SAMPLING = {
    "max_tokens": "max_tokens", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "seed": "seed",
    "stop": "stop", "min_tokens": "min_tokens", "ignore_eos": "ignore_eos", "repetition_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}
VLLM_SWITCHES = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")
UNREPORTED = "unknown"  # finish reason of a model whose convention does not report one
DEFAULT_MAX_TOKENS = GenerateParams.model_fields["max_tokens"].default


@dataclass(frozen=True)
class TensorValue:
    """One request tensor, typed and shaped as the target declares it (the adapter makes it numpy)."""

    name: str
    data_type: str
    values: tuple[Any, ...]
    shape: tuple[int, ...]


def _refuse(entry: ModelEntry, name: str, why: str) -> InvalidRequest:
    return InvalidRequest(name, f"model '{entry.name}' ({LABELS.get(entry.interface, entry.interface)}) "
                                f"cannot take it: {why}")


def _tensor(decl: TensorDecl, values: list[Any], batched: bool) -> TensorValue:
    shape = tuple(len(values) if d == -1 else d for d in decl.dims) or (1,)
    return TensorValue(decl.name, decl.data_type, tuple(values), ((1,) if batched else ()) + shape)


def _declared(entry: ModelEntry) -> Signature:
    if entry.signature is None:  # discovery always records it; a hand-built entry may lack it
        raise _refuse(entry, "text_input", "its config's inputs are not known yet")
    return entry.signature


def _trtllm(entry: ModelEntry, fields: Mapping[str, Any]) -> list[TensorValue]:
    signature = _declared(entry)
    given = dict(fields)
    given.setdefault("max_tokens", DEFAULT_MAX_TOKENS)  # TensorRT-LLM requires it; ours defaults to 20
    if given.get("temperature") == 0.0:
        # temperature 0 is greedy here; TensorRT-LLM's greedy is top_k 1
        given.pop("temperature")
        given["top_k"] = 1
    elif given.get("temperature") is not None and "top_p" not in given and "top_k" not in given:
        given["top_p"] = 1.0  # TensorRT-LLM samples greedily when top_k and top_p are both unset
    tensors = []
    for name, value in given.items():
        if name == "stream":
            decl = signature.input("stream") or signature.input("streaming")  # older ensembles: streaming
            if decl is None:
                if value:
                    raise _refuse(entry, "stream", "its config declares no 'stream' input")
                continue
            tensors.append(_tensor(decl, [bool(value)], signature.batched))
            continue
        target = TRTLLM_INPUTS.get(name)
        if target is None:
            raise _refuse(entry, name, "the convention has no input for it "
                                       f"(fields it takes: {', '.join(TRTLLM_INPUTS)}, stream)")
        decl = signature.input(target)
        if decl is None:
            if name == "exclude_input_in_output" and value is True:
                continue  # the default: nothing to ask of a model that does not declare the switch
            raise _refuse(entry, name, f"its config declares no '{target}' input")
        values = list(value) if isinstance(value, list | tuple) else [value]
        tensors.append(_tensor(decl, values, signature.batched))
    return tensors


def _vllm(entry: ModelEntry, fields: Mapping[str, Any]) -> list[TensorValue]:
    signature = _declared(entry)
    sampling: dict[str, Any] = {"max_tokens": fields.get("max_tokens", DEFAULT_MAX_TOKENS)}
    tensors = []
    for name, value in fields.items():
        if name in ("text_input", "stream", "exclude_input_in_output"):
            decl = signature.input(name)
            if decl is None:
                raise _refuse(entry, name, f"its config declares no '{name}' input")
            tensors.append(_tensor(decl, [value], signature.batched))
        elif name in VLLM_SAMPLING:
            # vLLM disables top-k with -1 (0 is ours)
            sampling[VLLM_SAMPLING[name]] = -1 if name == "top_k" and value == 0 else (
                list(value) if isinstance(value, tuple) else value)
        else:
            raise _refuse(entry, name, f"the convention has no input for it (fields it takes: text_input, stream, "
                                       f"exclude_input_in_output, {', '.join(VLLM_SAMPLING)})")
    if "exclude_input_in_output" not in fields and signature.input("exclude_input_in_output") is not None:
        # vLLM prepends the prompt unless told otherwise; ours leaves it out by default
        tensors.append(_tensor(signature.input("exclude_input_in_output"), [True], signature.batched))
    decl = signature.input("sampling_parameters")
    if decl is None:
        raise _refuse(entry, next(iter(set(fields) & set(VLLM_SAMPLING)), "max_tokens"),
                      "its config declares no 'sampling_parameters' input")
    tensors.append(_tensor(decl, [json.dumps(sampling)], signature.batched))
    for switch in VLLM_SWITCHES:  # token counts and the finish reason, when this backend version has them
        if signature.input(switch) is not None:
            tensors.append(_tensor(signature.input(switch), [True], signature.batched))
    return tensors


def request_tensors(entry: ModelEntry, fields: Mapping[str, Any]) -> list[TensorValue]:
    """The request a TensorRT-LLM or vLLM model takes for these router generation fields.

    `messages` (a chat) is refused: both conventions take a prompt only, and the chat
    template lives with the model's tokenizer, which the router does not have.
    """
    if fields.get("messages") is not None:
        raise _refuse(entry, "messages", "it takes a prompt only (text_input); render the chat into the prompt")
    fields = {k: v for k, v in fields.items() if v is not None and k != "messages"}
    if entry.interface == "tensorrtllm":
        return _trtllm(entry, fields)
    if entry.interface == "vllm":
        return _vllm(entry, fields)
    raise ValueError(f"model '{entry.name}': interface {entry.interface!r} is not a published convention")


@dataclass
class ResponseReader:
    """Folds a convention's responses into text pieces and one final answer (ModelOutput's fields)."""

    interface: str
    pieces: list[str] = field(default_factory=list)
    tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = UNREPORTED

    def read(self, outputs: Mapping[str, Any]) -> str:
        """Take one response's outputs ({name: first value}); return its new text."""
        text = outputs.get("text_output") or ""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if outputs.get("num_output_tokens") is not None:
            self.tokens += int(outputs["num_output_tokens"])  # vLLM counts the tokens of this response
        if outputs.get("num_input_tokens") is not None:
            self.prompt_tokens = int(outputs["num_input_tokens"])
        reason = outputs.get("finish_reason")
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        if reason and reason != "None":  # vLLM sends "None" until the sequence ends
            self.finish_reason = reason
        if text:
            self.pieces.append(text)
        return text

    @property
    def text(self) -> str:
        return "".join(self.pieces)
