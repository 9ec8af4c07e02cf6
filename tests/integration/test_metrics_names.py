"""The metrics the dashboard and the autoscaler query exist on a real server's /metrics.

    .venv/bin/pytest tests/integration/test_metrics_names.py -q

docker/metrics.txt lists every metric name that docker/grafana/dashboards/pointsman.json
and docker/k8s (HPA, prometheus-adapter rules) use; tests/deploy checks they use no
other. Here a real tritonserver gets a few requests (direct, then through the router in
each mode, one that falls back and one that fails) and each listed name must appear on
its metrics port. Several metrics appear only once something happened (a label set is
created on first use), hence the traffic, and the polling: the router publishes its
counters from a background thread.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
METRICS_LIST = ROOT / "docker" / "metrics.txt"
PROMPT = "def add(a, b):"
APPEAR_TIMEOUT_S = 20.0
# unloaded for a moment so that a hybrid request falls back and a manual one fails
SPARE_MODEL = "distilgpt2"
SPARE_ENGINE = "distilgpt2_stream"  # the router follows the engine model's readiness


def listed(*sources: str) -> set[str]:
    names = set()
    for line in METRICS_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, source, *_ = line.split()
            if source in sources:
                names.add(name)
    return names


def exported_names(triton) -> set[str]:
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    return {m.group(0) for line in text.splitlines() if not line.startswith("#")
            for m in [re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)] if m}


def missing_after_waiting(triton, wanted: set[str]) -> set[str]:
    wait_until(lambda: not wanted - exported_names(triton), timeout=APPEAR_TIMEOUT_S, interval=0.5)
    return wanted - exported_names(triton)


def router_loaded(triton) -> bool:
    return triton.get("/v2/models/router/ready")[0] == 200


def wait_ready(triton, model: str, timeout: float = 120.0) -> None:
    assert wait_until(lambda: triton.get(f"/v2/models/{model}/ready")[0] == 200, timeout=timeout), \
        f"{model} did not come back"


def generate_ok(triton, model: str, body: dict) -> dict:
    status, answer = triton.generate(model, {"text_input": PROMPT, "max_tokens": 4, **body})
    assert status == 200 and "error" not in answer, answer
    return answer


def test_server_exports_the_triton_and_engine_metrics_the_deployment_files_use(triton):
    for _ in range(3):
        generate_ok(triton, "gpt2", {"ignore_eos": True})

    missing = missing_after_waiting(triton, listed("triton", "engine"))

    assert not missing, f"listed in docker/metrics.txt but not exported: {sorted(missing)}"


def test_server_exports_the_router_metrics_the_deployment_files_use(triton):
    if not router_loaded(triton):
        pytest.skip("the router model is not loaded: its metrics cannot appear")
    for body in ({"model": "gpt2"}, {"auto_select": True}, {"preferred_model": "gpt2"}):
        generate_ok(triton, "router", body)
    # time to first token is measured on streamed requests
    events = triton.generate_stream("router_stream", {"text_input": PROMPT, "max_tokens": 4, "model": "gpt2",
                                                     "stream": True})
    assert events and not any("error" in e for e in events), events
    status, _ = triton.post(f"/v2/repository/models/{SPARE_ENGINE}/unload")
    assert status == 200
    try:
        assert wait_until(lambda: triton.get(f"/v2/models/{SPARE_ENGINE}/ready")[0] != 200, timeout=60), \
            f"{SPARE_MODEL} did not unload"
        # the router's status poller notices the unload: its hybrid requests fall back
        assert wait_until(lambda: generate_ok(triton, "router", {"preferred_model": SPARE_MODEL,
                                                                 "fallback_mode": "auto"})["fallback_used"] is True,
                          timeout=10)
        status, answer = triton.generate("router", {"text_input": PROMPT, "max_tokens": 4, "model": SPARE_MODEL})
        assert status == 400 and SPARE_MODEL in answer["error"], answer
    finally:
        status, body = triton.post(f"/v2/repository/models/{SPARE_ENGINE}/load")
        assert status == 200, body
        wait_ready(triton, SPARE_ENGINE)
        # and notices it is back, before the next test routes to it
        assert wait_until(lambda: triton.generate("router", {"text_input": PROMPT, "max_tokens": 1,
                                                             "model": SPARE_MODEL})[0] == 200, timeout=10)

    missing = missing_after_waiting(triton, listed("router"))

    assert not missing, f"listed in docker/metrics.txt but not exported: {sorted(missing)}"
