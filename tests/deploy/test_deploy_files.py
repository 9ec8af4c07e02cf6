"""The deployment files under docker/, checked without a docker engine or a cluster.

    .venv/bin/pytest tests/deploy -q

Dockerfile: parsed with dockerfile-parse (pinned base, HEALTHCHECK, numpy 1.x, ports, the
runtime it installs against pyproject's). Compose: validated against the compose-spec
JSON schema that check-jsonschema vendors. Kubernetes: validated against the API schemas
that kubernetes-validate ships (KServe's and the Prometheus Operator's CRDs are not among
them: their pod parts are validated as a Pod, the rest structurally). Every PromQL query
of the dashboard and the adapter rules parses (promql-parser) and names only metrics in
docker/metrics.txt, which tests/integration/test_metrics_names.py finds on a real server.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import tomllib
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "pointsman.json"
TRITON_IMAGE = re.compile(r"^nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3$")
TRITON_PORTS = {"8000", "8001", "8002"}
# kubernetes-validate ships schemas per release: an older one clusters still run, and the newest
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
# pyproject dependencies the image does not install, and why
NOT_IN_IMAGE = {
    "nvidia-pytriton": "the image is tritonserver itself",
}
GATEWAY_PORT = "9000"
IMAGE_REPLACES = {"onnxruntime": "onnxruntime-gpu"}


# -- helpers ------------------------------------------------------------------------------------


@cache
def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DOCKER / "Dockerfile"), cache_content=True)


def final_stage() -> list[dict[str, Any]]:
    """Instructions of the last stage: the image that ships."""
    structure = dockerfile().structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def instructions(name: str, stage: list[dict[str, Any]] | None = None) -> list[str]:
    return [ins["value"] for ins in (stage if stage is not None else dockerfile().structure)
            if ins["instruction"] == name]


def pip_requirements(run_value: str) -> list[Requirement]:
    """Return the requirement arguments of a `pip install` RUN line (options and paths skipped)."""
    words = shlex.split(run_value.split("&&")[0])
    start = words.index("install") + 1
    return [Requirement(w) for w in words[start:] if not w.startswith("-") and w != "."]


def image_requirements() -> dict[str, Requirement]:
    reqs: dict[str, Requirement] = {}
    for value in instructions("RUN", final_stage()):
        if "pip install" in value:
            reqs.update({canonicalize_name(r.name): r for r in pip_requirements(value)})
    return reqs


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest(name: str) -> dict[str, Any]:
    (doc,) = load_yaml_docs(K8S / name)
    return doc


@cache
def listed_metrics() -> dict[str, str]:
    """docker/metrics.txt: metric name -> source (triton, engine, router)."""
    out = {}
    for line in (DOCKER / "metrics.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, source, *_ = line.split()
            out[name] = source
    return out


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$model": ".*"}


def metric_names(query: str) -> set[str]:
    """Metric names a PromQL query selects; raises ValueError when it does not parse."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    names: set[str] = set()

    def visit(node) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(query), visit)
    return names


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def dashboard_variable_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    names = set()
    for variable in board["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
        assert match, f"variable {variable['name']}: unexpected query {query!r}"
        names.add(match.group(1))
    return names


def adapter_rules() -> list[dict[str, Any]]:
    config = manifest("prometheus-adapter-rules.yaml")["data"]["config.yaml"]
    return yaml.safe_load(config)["rules"]


def adapter_query(template: str) -> str:
    """Fill a prometheus-adapter metricsQuery template as the adapter would."""
    return (template.replace("<<.GroupBy>>", "pod")
            .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"pointsman-.*"'))


# -- Dockerfile ----------------------------------------------------------------------------------


def test_image_is_built_on_a_pinned_triton_py3_image():
    assert TRITON_IMAGE.match(dockerfile().baseimage), dockerfile().baseimage


def test_no_stage_uses_an_unpinned_or_latest_image():
    stages = {v.split(" AS ")[-1].strip() for v in instructions("FROM") if " AS " in v}
    for image in dockerfile().parent_images:
        if image == "scratch" or image in stages:
            continue
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"unpinned image {image}"


def test_image_has_a_healthcheck_on_readiness():
    (check,) = instructions("HEALTHCHECK", final_stage())
    assert "/v2/health/ready" in check and "8000" in check


def test_image_pins_numpy_1_for_the_python_backend_stub():
    numpy = image_requirements()["numpy"]
    assert numpy.specifier.contains("1.26.4") and not numpy.specifier.contains("2.0.0"), numpy
    (project_numpy,) = [Requirement(d) for d in pyproject()["project"]["dependencies"] if d.startswith("numpy")]
    assert str(numpy.specifier) == str(project_numpy.specifier), "image and pyproject must pin the same numpy"


def test_image_exposes_triton_http_grpc_and_metrics_ports():
    exposed = {port for value in instructions("EXPOSE", final_stage()) for port in value.split()}
    assert exposed >= TRITON_PORTS


def test_image_starts_tritonserver_loading_every_model_explicitly():
    (cmd,) = instructions("CMD", final_stage())
    args = json.loads(cmd)  # exec form: tritonserver gets the signals, not a shell
    assert args[0] == "tritonserver"
    assert {"--model-repository=/models", "--model-control-mode=explicit", "--load-model=*"} <= set(args)


def test_image_runs_as_the_non_root_triton_user():
    users = instructions("USER", final_stage())
    assert users and users[-1] not in ("root", "0")


def test_image_sets_execution_providers_from_availability_by_default():
    args = [v for v in instructions("ARG", final_stage()) if v.startswith("EXECUTION_PROVIDERS")]
    assert args == ["EXECUTION_PROVIDERS=auto"]
    assert any("configure_models.py /models --execution-providers" in v for v in instructions("RUN", final_stage()))


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_image_installs_every_runtime_dependency_of_the_project():
    installed = image_requirements()
    for dependency in pyproject()["project"]["dependencies"]:
        name = canonicalize_name(Requirement(dependency).name)
        if name in NOT_IN_IMAGE:
            continue
        wanted = IMAGE_REPLACES.get(name, name)
        assert wanted in installed, f"{dependency} is a runtime dependency but the image does not install {wanted}"


FIRST_PARTY = {"pointsman", "triton_python_backend_utils"}


def served_imports() -> set[str]:
    """Top-level modules that router_backend/ and the committed model.py adapters import."""
    files = [*(ROOT / "router_backend").rglob("*.py"), *(ROOT / "model_repository").glob("*/1/model.py")]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - FIRST_PARTY - {"__future__"}


def test_image_installs_every_library_the_served_code_imports():
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    installed = image_requirements()
    for module in sorted(served_imports()):
        names = [canonicalize_name(d) for d in distributions.get(module, [module])]
        names = [IMAGE_REPLACES.get(n, n) for n in names]
        assert any(n in installed for n in names), f"the models import {module} ({names}) but the image lacks it"


def test_image_installs_the_language_model_backend_where_triton_looks_for_backends():
    from pointsman.launcher.tritonserver import LLM_BACKEND, LLM_BACKEND_SOURCE

    source = LLM_BACKEND_SOURCE.relative_to(ROOT)
    runs = " ".join(instructions("RUN", final_stage()))
    assert f"cp {source} /opt/tritonserver/backends/{LLM_BACKEND}/model.py" in runs


def test_image_installs_the_package_itself_without_its_dependencies():
    runs = [v for v in instructions("RUN", final_stage()) if "pip install" in v and " ." in v]
    assert runs and all("--no-deps" in v for v in runs), "the pinned runtime must not be replaced by pyproject's"
    assert not any(canonicalize_name(n) in image_requirements() for n in ("torch", "transformers"))


def dockerignore_allows(path: str) -> bool:
    """Whether docker/Dockerfile.dockerignore lets `path` into the context (last match wins)."""
    allowed = True
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(regex, path) or re.match(regex + "/", path):
            allowed = negate
    return allowed


def test_every_copied_path_exists_and_reaches_the_build_context():
    for value in instructions("COPY"):
        words = [w for w in value.split() if not w.startswith("--")]
        if "--from=" in value:
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists() or source == "model_repository", f"COPY {source}: missing"
            assert dockerignore_allows(source), f"COPY {source}: excluded by Dockerfile.dockerignore"


@pytest.mark.parametrize("path", [".venv", "build/checkpoints/gpt2/model.safetensors", "reports/benchmark.md",
                                  ".pointsman", "tests/unit", "model_repository/gpt2/1/__pycache__",
                                  "model_repository/gpt2/1/TensorrtExecutionProvider_cache.engine"])
def test_build_context_leaves_out_local_state_and_caches(path):
    assert not dockerignore_allows(path)


def test_configure_models_sets_execution_providers_of_language_models_only(tmp_path):
    from google.protobuf import text_format

    from pointsman.export.repository import LlmFolderSpec, llm_config, write_twin_folder

    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.pbtxt").write_text(text_format.MessageToString(
        llm_config(LlmFolderSpec(name="gpt2", context_length=512, eos_token_id=0, execution_providers="cpu"))))
    (tmp_path / "router").mkdir()
    router_text = 'name: "router"\nbackend: "python"\n'
    (tmp_path / "router" / "config.pbtxt").write_text(router_text)
    twin = write_twin_folder(tmp_path, "codegen")  # a twin loads no engine: nothing to configure
    twin_text = (twin / "config.pbtxt").read_text()

    done = subprocess.run([sys.executable, str(DOCKER / "configure_models.py"), str(tmp_path),
                           "--execution-providers", "auto"], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    config = text_format.Parse((tmp_path / "gpt2" / "config.pbtxt").read_text(), llm_config(
        LlmFolderSpec(name="x", context_length=1, eos_token_id=0)).__class__())
    assert config.parameters["execution_providers"].string_value == "auto"
    assert (tmp_path / "router" / "config.pbtxt").read_text() == router_text
    assert (twin / "config.pbtxt").read_text() == twin_text


@pytest.mark.parametrize("value", ["auto", "tensorrt", "cuda", "cpu", "rocm"])
def test_configure_models_accepts_exactly_what_the_engine_accepts(tmp_path, value):
    from pointsman.engine.decoder import choose_providers

    try:
        choose_providers(value, ["CPUExecutionProvider"], str(tmp_path))
        engine_accepts = True
    except ValueError:
        engine_accepts = False
    done = subprocess.run([sys.executable, str(DOCKER / "configure_models.py"), str(tmp_path),
                           "--execution-providers", value], capture_output=True, text=True, check=False)
    # an empty repository is refused too, but with its own message
    assert ("must be one of" not in done.stderr) == engine_accepts, done.stderr


def test_exported_language_models_default_to_auto_execution_providers():
    from pointsman.export.repository import LlmFolderSpec, llm_config

    config = llm_config(LlmFolderSpec(name="gpt2", context_length=512, eos_token_id=0))
    assert config.parameters["execution_providers"].string_value == "auto"


# -- compose, Prometheus, Grafana --------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_file_validates_against_the_compose_spec():
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, errors


def test_compose_runs_pointsman_with_prometheus_and_grafana():
    services = compose()["services"]
    assert {"pointsman", "prometheus", "grafana"} <= set(services)
    pointsman = services["pointsman"]
    assert (DOCKER / pointsman["build"]["context"] / pointsman["build"]["dockerfile"]).resolve() == \
        (DOCKER / "Dockerfile").resolve()
    assert {p.split(":")[-1] for p in pointsman["ports"]} == TRITON_PORTS
    (device,) = pointsman["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    for name, service in services.items():
        if "image" in service and "build" not in service:
            assert not service["image"].endswith(":latest") and ":" in service["image"], name


def test_compose_replicas_share_the_postgres_service_once_it_is_healthy():
    services = compose()["services"]
    postgres, pointsman = services["postgres"], services["pointsman"]
    url = pointsman["environment"]["POINTSMAN_DATABASE_URL"]
    env = postgres["environment"]
    assert url == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/"
                   f"{env['POSTGRES_DB']}")
    assert pointsman["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


@pytest.mark.parametrize("name", ["deployment.yaml", "kserve-inferenceservice.yaml"])
def test_pods_read_the_database_url_from_the_secret_and_name_themselves(name):
    env = {e["name"]: e for e in container(manifest(name))["env"]}
    (secret,) = load_yaml_docs(K8S / "postgres-secret.yaml")
    ref = env["POINTSMAN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert secret["stringData"][ref["key"]].startswith("postgresql://")
    assert env["POINTSMAN_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_compose_bind_mounts_point_at_files_in_docker():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"


def test_prometheus_scrapes_the_triton_metrics_port_of_the_pointsman_service():
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "pointsman:8002" in targets
    assert "/etc/prometheus/prometheus.yml" in " ".join(compose()["services"]["prometheus"]["volumes"])


def test_grafana_provisions_the_datasource_and_the_dashboard_the_compose_file_mounts():
    provisioning = DOCKER / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "pointsman.yaml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"] if v.startswith("."))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    board = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in board["panels"] if "datasource" in p}
    assert uids == {datasource["uid"]}


def test_dashboard_panels_have_unique_ids_and_every_query_a_ref_id():
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)) and all(refs), panel["title"]


@pytest.mark.parametrize("title,query", list(dashboard_queries()))
def test_dashboard_query_parses_and_names_only_listed_metrics(title, query):
    names = metric_names(query)
    assert names, f"{title}: the query selects no metric"
    assert names <= set(listed_metrics()), f"{title}: {sorted(names - set(listed_metrics()))} not in docker/metrics.txt"


def test_dashboard_variables_name_only_listed_metrics():
    assert dashboard_variable_metrics() <= set(listed_metrics())


def test_every_listed_metric_is_used_by_the_dashboard_or_the_autoscaler():
    used = set().union(*(metric_names(q) for _, q in dashboard_queries()), dashboard_variable_metrics(),
                       *(metric_names(adapter_query(r["metricsQuery"])) for r in adapter_rules()))
    assert set(listed_metrics()) == used, f"listed but unused: {sorted(set(listed_metrics()) - used)}"


def test_metrics_list_names_a_source_per_metric():
    assert set(listed_metrics().values()) <= {"triton", "engine", "router"}
    for name, source in listed_metrics().items():
        assert name.startswith("nv_" if source == "triton" else "pointsman_"), name


# -- Kubernetes ----------------------------------------------------------------------------------


CORE_MANIFESTS = ("deployment.yaml", "service.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml",
                  "postgres-secret.yaml")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", CORE_MANIFESTS)
def test_manifest_validates_against_the_kubernetes_schema(name, version):
    for doc in load_yaml_docs(K8S / name):
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]["predictor"]
    return spec["containers"]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    """The tritonserver container (a Deployment also runs the gateway beside it)."""
    (triton,) = [c for c in containers(doc) if c["name"] != "gateway"]
    return triton


def named_port(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return number


@pytest.mark.parametrize("name", ["deployment.yaml", "kserve-inferenceservice.yaml"])
def test_probes_ask_triton_for_readiness_and_liveness_on_its_http_port(name):
    doc = manifest(name)
    c = container(doc)
    http_flag = [a for a in c["args"] if a.startswith("--http-port=")]
    http_port = int(http_flag[0].split("=")[1]) if http_flag else 8000
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert named_port(c, c[probe]["httpGet"]["port"]) == http_port, probe


@pytest.mark.parametrize("name", ["deployment.yaml", "kserve-inferenceservice.yaml"])
def test_pod_runs_the_image_command_with_resources_and_an_optional_gpu(name):
    c = container(manifest(name))
    (cmd,) = instructions("CMD", final_stage())
    assert set(json.loads(cmd)) <= set(c["args"]), "the pod must start tritonserver as the image does"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert "nvidia.com/gpu" not in c["resources"]["limits"], "the GPU request stays optional (commented)"
    assert "# nvidia.com/gpu: 1" in (K8S / name).read_text()


def launcher_environment() -> set[str]:
    """POINTSMAN_* variables pointsman.launcher.tritonserver gives a local server."""
    launcher = ROOT / "router_backend" / "launcher" / "tritonserver.py"
    return set(re.findall(r'env\["(POINTSMAN_\w+)"\]', launcher.read_text()))


def test_image_sets_every_variable_the_local_launcher_sets():
    image_env = " ".join(instructions("ENV", final_stage()))
    assert launcher_environment() and all(f"{name}=" in image_env for name in launcher_environment())
    assert "POINTSMAN_HTTP_URL=http://127.0.0.1:8000" in image_env
    assert "POINTSMAN_METRICS_URL=http://127.0.0.1:8002/metrics" in image_env
    assert "POINTSMAN_GRPC_URL=127.0.0.1:8001" in image_env


def test_image_gives_malloc_huge_pages_as_the_local_launcher_does():
    from pointsman.launcher.tritonserver import with_huge_pages

    image_env = " ".join(instructions("ENV", final_stage()))
    assert f"GLIBC_TUNABLES={with_huge_pages('')}" in image_env.split()


@pytest.mark.parametrize("name", ["deployment.yaml", "kserve-inferenceservice.yaml"])
def test_pod_points_the_router_at_its_own_ports(name):
    c = container(manifest(name))
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert launcher_environment() <= set(env)
    flags = dict(a.split("=", 1) for a in c["args"] if a.startswith("--") and "=" in a)
    http, metrics = flags.get("--http-port", "8000"), flags.get("--metrics-port", "8002")
    assert env["POINTSMAN_HTTP_URL"] == f"http://127.0.0.1:{http}"
    assert env["POINTSMAN_GRPC_URL"] == f"127.0.0.1:{flags.get('--grpc-port', '8001')}"
    assert env["POINTSMAN_METRICS_URL"] == f"http://127.0.0.1:{metrics}/metrics"


def test_deployment_and_kserve_serve_the_same_image():
    deployment, isvc = manifest("deployment.yaml"), manifest("kserve-inferenceservice.yaml")
    assert container(deployment)["image"] == container(isvc)["image"]


def test_service_balances_the_deployment_pods_on_their_named_ports():
    deployment, service = manifest("deployment.yaml"), manifest("service.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    names = {p["name"] for c in containers(deployment) for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    assert {p["port"] for p in service["spec"]["ports"]} == {int(p) for p in (*TRITON_PORTS, GATEWAY_PORT)}


def test_hpa_scales_the_deployment_on_metrics_the_adapter_serves():
    hpa, deployment = manifest("hpa.yaml"), manifest("deployment.yaml")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    served = {rule["name"]["as"] for rule in adapter_rules()}
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert "triton_queue_time_per_request_us" in wanted
    assert wanted <= served
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


@pytest.mark.parametrize("index", [0, 1])
def test_adapter_rule_queries_parse_and_name_only_listed_metrics(index):
    rule = adapter_rules()[index]
    series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
    names = metric_names(adapter_query(rule["metricsQuery"]))
    assert series in names and names <= set(listed_metrics())
    assert re.fullmatch(rule["name"]["matches"], series)
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kserve_predictor_is_a_valid_pod_spec(version):
    isvc = manifest("kserve-inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    predictor = dict(isvc["spec"]["predictor"])
    replicas = {k: predictor.pop(k) for k in ("minReplicas", "maxReplicas")}
    assert 1 <= replicas["minReplicas"] <= replicas["maxReplicas"]
    # a PredictorSpec is a PodSpec plus KServe's own fields
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pointsman-predictor"}, "spec": predictor}
    kubernetes_validate.validate(pod, version, strict=True)
    c = container(isvc)
    assert c["name"] == "kserve-container"
    assert {p["containerPort"] for p in c["ports"]} == {8080} and "--http-port=8080" in c["args"]


def test_podmonitor_scrapes_the_metrics_port_of_the_deployment_pods():
    monitor, deployment = manifest("podmonitor.yaml"), manifest("deployment.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert named_port(container(deployment), endpoint["port"]) == 8002 and endpoint["path"] == "/metrics"


# -- the gateway: a second container of the same image ------------------------------------------


def gateway_args(argv: list[str]) -> Any:
    """The gateway's command line, parsed by the gateway's own parser (a typo fails here)."""
    import argparse

    from pointsman.gateway.server import add_arguments

    parser = add_arguments(argparse.ArgumentParser(exit_on_error=False))
    return parser.parse_args(argv)


def test_compose_runs_the_gateway_from_the_pointsman_image_against_its_grpc_port():
    services = compose()["services"]
    gateway, pointsman = services["gateway"], services["pointsman"]
    assert gateway["image"] == pointsman["image"] and "build" not in gateway
    command = gateway["command"]
    assert command[:3] == ["python3", "-m", "pointsman.gateway"]
    args = gateway_args(command[3:])
    host, port = args.triton_grpc.split(":")
    assert host == "pointsman" and f"{port}:{port}" in pointsman["ports"] and port == "8001"
    assert args.host == "0.0.0.0" and f"{args.port}:{args.port}" in gateway["ports"]
    assert "pointsman" in gateway["depends_on"]
    assert f"127.0.0.1:{args.port}/health/ready" in " ".join(gateway["healthcheck"]["test"])


def test_deployment_runs_the_gateway_beside_triton_over_the_pods_loopback():
    deployment = manifest("deployment.yaml")
    (gateway,) = [c for c in containers(deployment) if c["name"] == "gateway"]
    triton = container(deployment)
    assert gateway["image"] == triton["image"]
    assert gateway["command"] == ["python3", "-m", "pointsman.gateway"]
    args = gateway_args(gateway["args"])
    assert args.triton_grpc == f"127.0.0.1:{named_port(triton, 'grpc')}"
    assert args.host == "0.0.0.0" and args.port == named_port(gateway, "gateway") == int(GATEWAY_PORT)
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe"):
        assert named_port(gateway, gateway[probe]["httpGet"]["port"]) == args.port


def test_image_exposes_the_gateway_port():
    exposed = " ".join(instructions("EXPOSE", final_stage())).split()
    assert GATEWAY_PORT in exposed


# -- the admin key (issue 12) -----------------------------------------------------------------


def test_compose_starts_the_image_command_keyed_with_the_admin_key_secret():
    from pointsman.launcher.keyed_triton import KEY_FILE_ENV

    config = compose()
    pointsman = config["services"]["pointsman"]
    (cmd,) = instructions("CMD", final_stage())
    assert pointsman["command"][:3] == ["python3", "-m", "pointsman.launcher.keyed_triton"]
    assert pointsman["command"][3:] == json.loads(cmd), "compose must run the image's own tritonserver command"
    assert pointsman["secrets"] == ["pointsman_admin_key"]
    assert pointsman["environment"][KEY_FILE_ENV] == "/run/secrets/pointsman_admin_key"
    assert config["secrets"]["pointsman_admin_key"] == {"environment": "POINTSMAN_ADMIN_KEY"}


@pytest.mark.parametrize("name", ["deployment.yaml", "kserve-inferenceservice.yaml"])
def test_pods_restrict_the_admin_apis_with_the_key_from_the_secret(name):
    from pointsman.policy.admin import ADMIN_KEY_ENV, triton_restriction_flags

    c = container(manifest(name))
    env = {e["name"]: e for e in c["env"]}
    (secret,) = load_yaml_docs(K8S / "admin-key-secret.yaml")
    ref = env[ADMIN_KEY_ENV]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert "optional" not in ref, "without the Secret the literal $(...) would become the key"
    # Kubernetes expands $(POINTSMAN_ADMIN_KEY) in args: the same flags `pointsman serve` passes
    expected = triton_restriction_flags(f"$({ADMIN_KEY_ENV})")
    assert [a for a in c["args"] if a in expected] == expected


def test_keyed_triton_appends_the_restriction_flags_from_the_key_file(tmp_path):
    from pointsman.launcher.keyed_triton import admin_key, keyed_command
    from pointsman.policy.admin import triton_restriction_flags

    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    key = admin_key({"POINTSMAN_ADMIN_KEY_FILE": str(key_file), "POINTSMAN_ADMIN_KEY": "other"})
    assert key == "s3cret"
    assert keyed_command(["tritonserver", "--x"], key) == ["tritonserver", "--x", *triton_restriction_flags("s3cret")]
    assert admin_key({"POINTSMAN_ADMIN_KEY": "k"}) == "k"
    assert keyed_command(["tritonserver"], admin_key({})) == ["tritonserver"]
    key_file.write_text("  \n")
    with pytest.raises(SystemExit, match="is empty"):
        admin_key({"POINTSMAN_ADMIN_KEY_FILE": str(key_file)})
