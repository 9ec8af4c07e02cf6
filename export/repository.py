"""Write a language model's Triton folder: config.pbtxt and tokenizer (export adds the ONNX graph).

    write_llm_folder(Path("model_repository/gpt2"), LlmFolderSpec(name="gpt2", ...), tokenizer_json)

The folder names the `pointsman_llm` backend and holds nothing else: no model.py (the
backend's lives once in the backend directory) and no input list (the backend completes
it from pointsman.policy.contract). config.pbtxt is generated from Triton's own
ModelConfig protobuf, so it is valid by construction.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from pointsman.engine.scheduler import EngineLimits

BACKEND = "pointsman_llm"
CONFIG_FILE = "config.pbtxt"


@dataclass(frozen=True)
class LlmFolderSpec:
    name: str
    context_length: int
    eos_token_id: int | tuple[int, ...]  # several: any of them ends generation
    bos_token_id: int | None = None  # prepended to every prompt when the tokenizer config says so
    instances: int = 1
    intra_op_threads: int | str = "auto"  # auto: engine.decoder.default_threads (cores and model size)
    execution_providers: str = "auto"
    limits: EngineLimits = EngineLimits()
    export_record: dict[str, str] = field(default_factory=dict)  # digest and parity figures, as parameters


def llm_config(spec: LlmFolderSpec) -> mc.ModelConfig:
    config = mc.ModelConfig(name=spec.name, backend=BACKEND)
    # decoupled: streaming sends one response per piece of text. Triton's max_batch_size
    # stays 0: the engine batches decoding steps itself (max_num_seqs)
    config.model_transaction_policy.decoupled = True
    config.instance_group.add(count=spec.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    params = {
        "onnx_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "context_length": str(spec.context_length),
        "eos_token_id": _ids(spec.eos_token_id),
        "bos_token_id": "" if spec.bos_token_id is None else str(spec.bos_token_id),
        "intra_op_threads": str(spec.intra_op_threads),
        "execution_providers": spec.execution_providers,
        **spec.limits.as_parameters(),
        **{f"export_{key}": value for key, value in spec.export_record.items()},
    }
    for key, value in params.items():
        config.parameters[key].string_value = value
    return config


def _ids(ids: int | tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ((ids,) if isinstance(ids, int) else ids))


def render_llm_config(spec: LlmFolderSpec) -> str:
    return text_format.MessageToString(llm_config(spec))


def read_parameters(folder: Path) -> dict[str, str]:
    """The string parameters of a model folder's config.pbtxt ({} when it has none)."""
    config = text_format.Parse((folder / CONFIG_FILE).read_text(), mc.ModelConfig())
    return {key: value.string_value for key, value in config.parameters.items()}


def write_llm_folder(folder: Path, spec: LlmFolderSpec, tokenizer_json: Path) -> None:
    """Write config.pbtxt and the tokenizer (export writes the graph into folder/1)."""
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(render_llm_config(spec))
    if tokenizer_json.resolve() != (version / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer_json, version / "tokenizer.json")
