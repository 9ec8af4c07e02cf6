"""The GPU path, checked statically: a compose profile and a k8s variant on Triton's vLLM image.

    .venv/bin/pytest tests/deploy/test_vllm_deploy.py -q

Both serve the router and control models (the project's image) plus one vLLM backend
model in its own format (config.pbtxt with backend "vllm", 1/model.json of engine
arguments) from docker/vllm/model_repository. Nothing here runs vLLM: no GPU.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from pointsman.policy.routing_metadata import entry_from_parameters
from tests.deploy.test_deploy_files import DOCKER, K8S, K8S_VERSIONS, compose, dockerfile, load_yaml_docs

VLLM_MODEL = DOCKER / "vllm" / "model_repository" / "vllm_model"
VLLM_IMAGE = re.compile(r"^nvcr\.io/nvidia/tritonserver:(\d{2}\.\d{2})-vllm-python-py3$")


def vllm_config() -> mc.ModelConfig:
    return text_format.Parse((VLLM_MODEL / "config.pbtxt").read_text(), mc.ModelConfig())


def engine_args() -> dict:
    return json.loads((VLLM_MODEL / "1" / "model.json").read_text())


def triton_release() -> str:
    """The yy.mm of the project's image (its TRITON_IMAGE default)."""
    (value,) = [v for v in dockerfile().structure
                if v["instruction"] == "ARG" and v["value"].startswith("TRITON_IMAGE=")]
    return re.search(r":(\d{2}\.\d{2})-py3$", value["value"]).group(1)


def test_vllm_model_is_in_the_vllm_backends_own_format() -> None:
    config = vllm_config()
    args = engine_args()

    assert config.backend == "vllm" and not config.input and not config.output  # the backend completes them
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_MODEL
    assert isinstance(args["model"], str) and args["model"]
    assert config.parameters["REPORT_CUSTOM_METRICS"].string_value == "true"  # engine gauges for live load


def test_vllm_models_routing_metadata_is_valid_and_matches_its_engine_arguments() -> None:
    params = {k: v.string_value for k, v in vllm_config().parameters.items()}
    entry = entry_from_parameters("vllm_model", params)

    assert entry is not None and entry.interface == "vllm"
    assert entry.context_length == engine_args()["max_model_len"]


def test_compose_vllm_profile_builds_the_project_image_on_the_same_triton_release() -> None:
    service = compose()["services"]["pointsman-vllm"]
    match = VLLM_IMAGE.match(service["build"]["args"]["TRITON_IMAGE"])

    assert service["profiles"] == ["vllm"]
    assert match and match.group(1) == triton_release()
    assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == \
        (DOCKER / "Dockerfile").resolve()
    assert {"--model-repository=/models", "--model-repository=/vllm-models"} <= set(service["command"])
    assert "./vllm/model_repository:/vllm-models:ro" in service["volumes"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_compose_vllm_profile_leaves_the_default_services_alone() -> None:
    services = compose()["services"]
    published = {p.split(":")[0] for s in services.values() for p in s.get("ports", [])}
    assert len(published) == sum(len(s.get("ports", [])) for s in services.values())  # no port taken twice
    assert all("profiles" not in s for name, s in services.items() if name != "pointsman-vllm")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_vllm_variant_validates_against_the_kubernetes_schema(version: str) -> None:
    for doc in load_yaml_docs(K8S / "deployment-vllm.yaml"):
        kubernetes_validate.validate(doc, version, strict=True)


def test_k8s_vllm_variant_mounts_the_same_model_folder_the_compose_profile_serves() -> None:
    config_map, deployment = load_yaml_docs(K8S / "deployment-vllm.yaml")
    assert config_map["data"]["config.pbtxt"] == (VLLM_MODEL / "config.pbtxt").read_text()
    assert json.loads(config_map["data"]["model.json"]) == engine_args()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "vllm-model"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert {i["path"] for i in volume["configMap"]["items"]} == {"config.pbtxt", "1/model.json"}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "vllm-model"]
    assert Path(mount["mountPath"]).parent == Path("/vllm-models")
    assert "--model-repository=/vllm-models" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
