"""Write a language model's two Triton folders: the engine's and its non-decoupled twin's.

    write_llm_folder(Path("model_repository/gpt2_stream"), LlmFolderSpec(name="gpt2_stream", ...), tokenizer_json)
    write_twin_folder(Path("model_repository"), "gpt2")   # model_repository/gpt2 -> gpt2_stream

The engine folder (<name>_stream) holds config.pbtxt, the tokenizer and the tokenizer's
config, whose chat template the backend renders chats with (export adds the ONNX graph);
the twin folder (<name>) holds config.pbtxt only. Both name the `pointsman_llm` backend
and hold nothing else: no model.py (the
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
from pointsman.policy.contract import stream_model
from pointsman.policy.routing_metadata import PREFIX as ROUTING_PREFIX

BACKEND = "pointsman_llm"
CONFIG_FILE = "config.pbtxt"


def engine_name(name: str) -> str:
    """The engine model's name for a user-visible model name: gpt2 -> gpt2_stream (decoupled, holds the engine)."""
    return stream_model(name)


@dataclass(frozen=True)
class LlmFolderSpec:
    name: str
    context_length: int
    eos_token_id: int | tuple[int, ...]  # several: any of them ends generation
    bos_token_id: int | None = None  # prepended to every prompt when the tokenizer config says so
    instances: int = 1
    intra_op_threads: int | str = "auto"  # auto: engine.decoder.default_threads (cores and model size)
    # auto: threads spin within a step when the repository's engines have a core per thread
    intra_op_spinning: str = "auto"
    execution_providers: str = "auto"
    limits: EngineLimits = EngineLimits()
    export_record: dict[str, str] = field(default_factory=dict)  # digest and parity figures, as parameters
    routing: dict[str, str] = field(default_factory=dict)  # pointsman.* routing metadata (policy.routing_metadata)
    # penalties for requests that leave them out (engine.sampling.model_defaults): default_<field>
    sampling_defaults: dict[str, float] = field(default_factory=dict)


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
        "intra_op_spinning": spec.intra_op_spinning,
        "execution_providers": spec.execution_providers,
        **spec.limits.as_parameters(),
        **{f"export_{key}": value for key, value in spec.export_record.items()},
        **spec.routing,
        **{f"default_{key}": f"{value:g}" for key, value in spec.sampling_defaults.items()},
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


def set_routing_parameters(folder: Path, routing: dict[str, str]) -> None:
    """Replace the `pointsman.*` parameters of a config.pbtxt (an up-to-date export keeps its graph)."""
    path = folder / CONFIG_FILE
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    for key in [k for k in config.parameters if k.startswith(ROUTING_PREFIX)]:
        del config.parameters[key]
    for key, value in routing.items():
        config.parameters[key].string_value = value
    path.write_text(text_format.MessageToString(config))


# what transformers' save_pretrained writes that the chat template lives in (the .jinja
# file when it keeps the template apart); pointsman.engine.chat_template reads them
CHAT_TEMPLATE_FILES = ("tokenizer_config.json", "chat_template.jinja")


def twin_config(name: str, target: str) -> mc.ModelConfig:
    """The twin: same backend, non-decoupled, forwards over loopback gRPC to `target` and loads no engine."""
    config = mc.ModelConfig(name=name, backend=BACKEND)
    config.model_transaction_policy.decoupled = False  # tritonclient infer() and HTTP /infer work
    config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    config.parameters["forward_to"].string_value = target
    return config


def write_twin_folder(repository: Path, name: str) -> Path:
    """Write model_repository/<name>: config.pbtxt (and the empty version folder Triton requires)."""
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(text_format.MessageToString(twin_config(name, engine_name(name))))
    return folder


def write_llm_folder(folder: Path, spec: LlmFolderSpec, tokenizer_json: Path) -> None:
    """Write config.pbtxt, the tokenizer and its chat template (export writes the graph into folder/1)."""
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(render_llm_config(spec))
    for source in (tokenizer_json, *(tokenizer_json.with_name(name) for name in CHAT_TEMPLATE_FILES)):
        if source.exists() and source.resolve() != (version / source.name).resolve():
            shutil.copyfile(source, version / source.name)
