"""Discovery: the catalog follows the repository index and the served configs, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pointsman.policy.catalog import Catalog
from pointsman.policy.routing_metadata import routing_parameters
from pointsman.policy.selection import live
from pointsman.policy.selection.discovery import Discovery
from pointsman.policy.selection.status import StatusBoard

SCORES = {"coding": 0.9, "creative": 0.2, "qa": 0.5, "reasoning": 0.3}


def config(name: str, interface: str = "pointsman", public: str | None = None, coding: float = 0.9,
           **extra: str) -> dict:
    """A served config as Triton's HTTP API answers it (parameters as {key: {string_value}})."""
    params = routing_parameters(interface=interface, scores={**SCORES, "coding": coding}, capabilities=("general",),
                                quality_prior=0.5, context_length=512, name=public)
    params.update(extra)
    return {"name": name, "max_batch_size": 0, "model_transaction_policy": {"decoupled": True},
            "input": [{"name": "text_input", "data_type": "TYPE_STRING", "dims": [1]}],
            "output": [{"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]}],
            "parameters": {k: {"string_value": v} for k, v in params.items()}}


class Repository:
    """The index and configs a fake Triton serves; tests load, unload and edit models."""

    def __init__(self) -> None:
        self.configs: dict[str, dict] = {"router": {"name": "router", "parameters": {}}}
        self.states: dict[str, str] = {"router": "READY"}
        self.now = 0.0

    def load(self, cfg: dict) -> None:
        self.configs[cfg["name"]], self.states[cfg["name"]] = cfg, "READY"

    def index(self) -> list[dict]:
        return [{"name": n, "state": s} for n, s in self.states.items()]

    def fetch(self, name: str) -> dict:
        if self.states.get(name) != "READY":
            raise OSError(f"model {name} is not loaded")
        return self.configs[name]


@pytest.fixture
def repo() -> Repository:
    return Repository()


def discovery(repo: Repository, overlay: Path | None = None) -> tuple[Catalog, Discovery]:
    catalog = Catalog()
    return catalog, Discovery(catalog, repo.fetch, overlay, refresh_s=0.5, clock=lambda: repo.now)


def test_a_loaded_model_with_metadata_joins_and_one_without_does_not(repo) -> None:
    catalog, found = discovery(repo)
    repo.load(config("llama", "vllm"))

    assert found.update(repo.index()) == {"router", "llama"}
    assert catalog.names == ["llama"] and catalog["llama"].interface == "vllm"
    assert catalog["llama"].signature.decoupled and catalog["llama"].signature.input("text_input")


def test_an_unloaded_model_stays_known_but_not_ready_and_leaves_with_its_folder(repo) -> None:
    catalog, found = discovery(repo)
    repo.load(config("llama", "vllm"))
    found.update(repo.index())
    repo.states["llama"] = "UNAVAILABLE"

    assert "llama" not in found.update(repo.index())
    assert "llama" in catalog  # hybrid requests naming it fall back with "not loaded"
    del repo.states["llama"]
    found.update(repo.index())
    assert "llama" not in catalog


def test_a_reloaded_model_shows_its_new_metadata_after_one_refresh(repo) -> None:
    catalog, found = discovery(repo)
    repo.load(config("llama", "vllm", coding=0.9))
    found.update(repo.index())
    repo.load(config("llama", "vllm", coding=0.1))  # Triton keeps it READY through a reload

    found.update(repo.index())
    assert catalog["llama"].specialization_score["coding"] == 0.9  # not re-read yet
    repo.now += 0.5
    found.update(repo.index())
    assert catalog["llama"].specialization_score["coding"] == 0.1


def test_an_engine_is_routed_under_its_public_name(repo) -> None:
    catalog, found = discovery(repo)
    repo.load(config("gpt2_stream", public="gpt2"))
    repo.load({"name": "gpt2", "parameters": {"forward_to": {"string_value": "gpt2_stream"}}})  # the twin
    found.update(repo.index())

    assert catalog.names == ["gpt2"] and catalog["gpt2"].call_name == "gpt2_stream"


def test_broken_metadata_leaves_the_model_out_and_says_why(repo, caplog) -> None:
    catalog, found = discovery(repo)
    repo.load(config("llama", "vllm", **{"pointsman.quality_prior": "great"}))
    repo.load(config("mistral", "tensorrtllm"))
    found.update(repo.index())

    assert catalog.names == ["mistral"]
    assert "model 'llama', key 'pointsman.quality_prior'" in found.problems["llama"]
    assert "model 'llama', key 'pointsman.quality_prior'" in caplog.text


def test_two_models_claiming_one_name_keep_the_first(repo) -> None:
    catalog, found = discovery(repo)
    repo.load(config("a_stream", public="chat"))
    repo.load(config("b_stream", public="chat"))
    found.update(repo.index())

    assert catalog["chat"].call_name == "a_stream"
    assert "key 'pointsman.name': 'chat' is already the name of model 'a_stream'" in found.problems["b_stream"]


def test_the_overlay_file_is_followed_when_it_changes(repo, tmp_path) -> None:
    overlay = tmp_path / "pointsman_models.toml"
    catalog, found = discovery(repo, overlay)
    repo.load(config("llama", "vllm"))
    repo.load({"name": "plain", "parameters": {}})  # a config nobody edited
    found.update(repo.index())
    assert catalog.names == ["llama"]

    overlay.write_text('[llama]\nquality_prior = 0.99\n'
                       '[plain]\ninterface = "tensorrtllm"\ncapabilities = "general"\nquality_prior = 0.4\n'
                       'context_length = 1024\n'
                       'task_score = { coding = 0.1, creative = 0.2, qa = 0.3, reasoning = 0.4 }\n')
    found.update(repo.index())
    assert catalog.names == ["llama", "plain"] and catalog["llama"].quality_prior == 0.99
    overlay.write_text("[llama\n")  # broken: the last good overlay stays, the problem is reported
    found.update(repo.index())
    assert catalog.names == ["llama", "plain"] and str(overlay) in found.problems


class _Answer:
    def __init__(self, body: str) -> None:
        self.body = body.encode()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def read(self) -> bytes:
        return self.body


def test_poller_follows_engines_readiness_and_each_conventions_load_metrics(monkeypatch, repo) -> None:
    repo.load(config("gpt2_stream", public="gpt2"))
    repo.load({"name": "gpt2", "parameters": {}})
    repo.load(config("llama", "vllm"))
    repo.load(config("mistral", "tensorrtllm", **{"pointsman.metrics_model": "tensorrt_llm"}))
    metrics = ('pointsman_engine_queued{model="gpt2_stream"} 3\n'
               'nv_inference_pending_request_count{model="gpt2_stream",version="1"} 2\n'
               'vllm:num_requests_waiting{model="llama",version="1"} 4\n'
               'vllm:num_requests_running{model="llama",version="1"} 6\n'
               'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 7\n'
               'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 5\n'
               'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512\n')

    def urlopen(request, timeout=0):
        url = request if isinstance(request, str) else request.full_url
        if url.endswith("/index"):
            return _Answer(json.dumps(repo.index()))
        if url.endswith("/config"):
            return _Answer(json.dumps(repo.fetch(url.split("/")[-2])))
        return _Answer(metrics)

    monkeypatch.setattr(live.urllib.request, "urlopen", urlopen)
    board = StatusBoard(Catalog())
    poller = live.StatusPoller(board, live.Endpoints())
    poller.poll_once()
    repo.states["gpt2_stream"] = "UNAVAILABLE"  # its engine unloaded
    poller.poll_once()
    status = board.snapshot()

    assert sorted(board.ready_models()) == ["llama", "mistral"]  # gpt2's twin is READY, its engine is not
    assert status["gpt2"].pending == 5
    assert (status["llama"].pending, status["llama"].active) == (4, 6)
    assert (status["mistral"].pending, status["mistral"].active) == (7, 5)


def test_queue_time_is_the_mean_over_requests_finished_since_the_last_poll() -> None:
    poller = live.StatusPoller(StatusBoard(Catalog()), live.Endpoints())
    first = {live.QUEUE_US: 1_000_000.0, live.SUCCESSES: 10.0}
    assert poller._queue_seconds("m", first) is None
    assert poller._queue_seconds("m", {live.QUEUE_US: 1_600_000.0, live.SUCCESSES: 13.0}) == pytest.approx(0.2)
    assert poller._queue_seconds("m", {live.QUEUE_US: 1_600_000.0, live.SUCCESSES: 13.0}) is None
