"""The CUDA and TensorRT execution-provider paths, checked by their configuration (no GPU here).

    .venv/bin/pytest -q tests/unit/test_execution_providers.py
"""

from __future__ import annotations

import pytest

from pointsman.engine.decoder import choose_providers

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(("requested", "expected"), [
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]),  # TensorRT is opt-in
    ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("cpu", ["CPUExecutionProvider"]),
])
def test_a_gpu_build_of_onnxruntime_gets_cuda_first_with_cpu_behind(requested, expected):
    assert choose_providers(requested, GPU_BUILD, "/models/m/1") == expected


def test_tensorrt_caches_its_engines_in_the_model_folder():
    assert choose_providers("tensorrt", GPU_BUILD, "/models/m/1") == [
        ("TensorrtExecutionProvider", {"trt_engine_cache_enable": True, "trt_engine_cache_path": "/models/m/1"}),
        "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_cpu_build_falls_back_to_cpu_whatever_is_asked():
    assert choose_providers("tensorrt", ["CPUExecutionProvider"], "/m") == ["CPUExecutionProvider"]


def test_an_unknown_provider_request_names_the_accepted_values():
    with pytest.raises(ValueError, match="execution_providers must be auto, tensorrt, cuda or cpu"):
        choose_providers("rocm", GPU_BUILD, "/m")
