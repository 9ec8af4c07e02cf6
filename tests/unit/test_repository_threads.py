"""intra_op_spinning auto's evidence: the threads of every engine model in a repository, read from its folders.

    .venv/bin/pytest -q tests/unit/test_repository_threads.py
"""

from __future__ import annotations

from pathlib import Path

from pointsman.engine.decoder import BYTES_PER_THREAD
from pointsman.export.repository import LlmFolderSpec, render_llm_config, write_twin_folder
from pointsman.triton_adapters.repository_threads import engine_threads


def engine_folder(repository: Path, name: str, graph_bytes: int, versions: tuple[int, ...] = (1,),
                  **spec) -> Path:
    folder = repository / name
    for version in versions:
        (folder / str(version)).mkdir(parents=True)
        (folder / str(version) / "model.onnx").write_bytes(b"\0" * (graph_bytes if version == max(versions) else 1))
    (folder / "config.pbtxt").write_text(render_llm_config(LlmFolderSpec(name=name, context_length=64,
                                                                        eos_token_id=0, **spec)))
    return folder


def test_every_engine_instance_counts_with_its_threads_and_twins_and_other_backends_do_not(tmp_path) -> None:
    engine_folder(tmp_path, "big_stream", 3 * BYTES_PER_THREAD)                 # auto: 3 threads, capped at 2 cores
    engine_folder(tmp_path, "small_stream", 10, instances=2)                    # auto: 1 thread, twice
    engine_folder(tmp_path, "pinned_stream", 10, intra_op_threads=3)            # the config's own count
    write_twin_folder(tmp_path, "big")                                          # forwards: no engine
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "config.pbtxt").write_text('backend: "python"\n')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text("backend: {")            # Triton refuses it itself

    assert engine_threads(tmp_path, cores=2) == [2, 3, 1, 1]  # folders in name order


def test_the_graph_that_counts_is_the_highest_version_as_triton_serves_it(tmp_path) -> None:
    engine_folder(tmp_path, "m_stream", 2 * BYTES_PER_THREAD, versions=(1, 3))  # version 1 is 1 byte

    assert engine_threads(tmp_path, cores=4) == [2]


def test_one_model_with_every_core_is_what_the_repository_of_a_single_export_holds(tmp_path) -> None:
    engine_folder(tmp_path, "llama_stream", 10 * BYTES_PER_THREAD)
    write_twin_folder(tmp_path, "llama")

    assert engine_threads(tmp_path, cores=2) == [2]
