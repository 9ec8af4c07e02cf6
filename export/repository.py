"""Write a language model's Triton folder: config.pbtxt, model.py, tokenizer, ONNX graph.

    write_llm_config(Path("model_repository/gpt2"), LlmFolderSpec(name="gpt2", ...))

config.pbtxt is generated from Triton's own ModelConfig protobuf, so it is valid by
construction and its tensor names are the ones the adapter reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import router_backend.adapters

# copied verbatim as model.py; not imported here (it needs triton_python_backend_utils)
LLM_ADAPTER = Path(router_backend.adapters.__file__).with_name("llm_model.py")

# (name, type, optional): the Triton LLM convention (TensorRT-LLM and vLLM backends)
LLM_INPUTS = (
    ("text_input", mc.TYPE_STRING, True),  # optional so the alias `prompt` can stand in; we check it
    ("max_tokens", mc.TYPE_INT32, True),
    ("temperature", mc.TYPE_FP32, True),
    ("top_k", mc.TYPE_INT32, True),
    ("top_p", mc.TYPE_FP32, True),
    ("seed", mc.TYPE_UINT64, True),
    ("stream", mc.TYPE_BOOL, True),
    ("ignore_eos", mc.TYPE_BOOL, True),
)
LLM_OUTPUTS = (("text_output", mc.TYPE_STRING), ("tokens", mc.TYPE_INT32), ("finish_reason", mc.TYPE_STRING),
               ("mean_logprob", mc.TYPE_FP32))


@dataclass(frozen=True)
class LlmFolderSpec:
    name: str
    context_length: int
    eos_token_id: int
    instances: int = 1
    intra_op_threads: int = 1  # measured: small decoders step faster on one thread, and leave a core to Triton
    execution_providers: str = "auto"
    max_batch_size: int = 16
    max_tokens_in_flight: int = 16384


def llm_config(spec: LlmFolderSpec) -> mc.ModelConfig:
    config = mc.ModelConfig(name=spec.name, backend="python", max_batch_size=0)
    # decoupled: streaming sends one response per piece of text; the engine batches
    # decoding steps itself, so Triton's batcher stays off (max_batch_size 0)
    config.model_transaction_policy.decoupled = True
    for name, dtype, optional in LLM_INPUTS:
        config.input.add(name=name, data_type=dtype, dims=[1], optional=optional)
    for name, dtype in LLM_OUTPUTS:
        config.output.add(name=name, data_type=dtype, dims=[1])
    config.instance_group.add(count=spec.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    params = {
        "onnx_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "context_length": str(spec.context_length),
        "eos_token_id": str(spec.eos_token_id),
        "intra_op_threads": str(spec.intra_op_threads),
        "execution_providers": spec.execution_providers,
        "max_batch_size": str(spec.max_batch_size),
        "max_tokens_in_flight": str(spec.max_tokens_in_flight),
        "batching": "true",
    }
    for key, value in params.items():
        config.parameters[key].string_value = value
    return config


def write_llm_folder(folder: Path, spec: LlmFolderSpec, tokenizer_json: Path) -> None:
    """Write everything but the ONNX graph (export writes that into folder/1)."""
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(llm_config(spec)))
    shutil.copyfile(LLM_ADAPTER, version / "model.py")
    if tokenizer_json.resolve() != (version / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer_json, version / "tokenizer.json")
