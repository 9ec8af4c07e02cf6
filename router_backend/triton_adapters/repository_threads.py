"""The intra-op threads every engine model of a Triton repository will run: intra_op_spinning auto's evidence.

    threads = engine_threads(Path("model_repository"), usable_cores())   # [2] for one 300 MB model
    spinning = resolve_spinning("auto", fits=spinning_fits(threads, usable_cores()))

Read from the folders' config.pbtxt and graph files when a model loads, before the server
has finished loading the others, so every model of the repository counts whether or not it
is loaded yet (explicit model control loads fewer: the count errs towards not spinning).
Engines of another server on the same cores are not seen; docs/families.md says so.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from pathlib import Path

from google.protobuf import text_format

from pointsman.engine.decoder import graph_bytes, resolve_threads
from pointsman.launcher.tritonserver import LLM_BACKEND

LOGGER = logging.getLogger(__name__)
FORWARD_TO = "forward_to"  # the parameter that makes a folder a twin: it runs no engine of its own


def engine_threads(repository: Path, cores: int) -> list[int]:
    """One entry per engine instance in the repository: the intra-op threads it will run."""
    threads: list[int] = []
    model_config = _model_config_message()
    for path in sorted(repository.glob("*/config.pbtxt")):
        try:
            config = text_format.Parse(path.read_text(), model_config())
        except (OSError, text_format.ParseError) as exc:  # Triton refuses that folder itself
            LOGGER.warning("%s: not counted (%s)", path, exc)
            continue
        params = {key: value.string_value for key, value in config.parameters.items()}
        if config.backend != LLM_BACKEND or params.get(FORWARD_TO):
            continue
        graph = _graph(path.parent, params.get("onnx_file", "model.onnx"))
        size = graph_bytes(str(graph)) if graph else 0
        try:
            count = resolve_threads(params.get("intra_op_threads", "auto"), size, cores)
        except ValueError:  # that model's own load reports the bad value
            count = cores
        instances = sum(max(group.count, 1) for group in config.instance_group) or 1
        threads += [count] * instances
    return threads


def _graph(folder: Path, onnx_file: str) -> Path | None:
    """The graph Triton serves by default: the highest numbered version's."""
    versions = sorted((int(v.name) for v in folder.iterdir() if v.name.isdigit() and (v / onnx_file).exists()),
                      reverse=True)
    return folder / str(versions[0]) / onnx_file if versions else None


@functools.cache
def _model_config_message() -> type:
    """The ModelConfig message tritonclient generates, loaded from its own file.

    Importing it as tritonclient.grpc.model_config_pb2 runs tritonclient.grpc's __init__,
    which loads grpc and numpy helpers (a quarter of a second) into an engine stub that
    needs neither. The file itself imports only protobuf, and protobuf shares its
    descriptors with a later normal import.
    """
    loaded = sys.modules.get("tritonclient.grpc.model_config_pb2")
    if loaded is None:
        package = importlib.util.find_spec("tritonclient")
        path = Path(package.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
        spec = importlib.util.spec_from_file_location("pointsman_model_config_pb2", path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
    return loaded.ModelConfig
