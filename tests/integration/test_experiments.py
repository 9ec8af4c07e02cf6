"""The experiments and usage models against a real tritonserver, and (once wired) through the router.

    pytest tests/integration/test_experiments.py

The store is the server's own SQLite file ($POINTSMAN_STATE_DIR/pointsman.db, the
session's temporary state folder): tests write request records into it exactly as the
router does, then read reports and summaries back over HTTP, and check the statistics
against values computed here from the same numbers.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.store import StateStore, default_db_path
from tests.integration.experiment_waits import router_applies
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# The lead flips this once the router writes a RequestRecord per request and applies experiments.
ROUTER_WIRED = True
needs_router = pytest.mark.skipif(not ROUTER_WIRED, reason="router does not record usage or apply experiments yet "
                                                           "(issue 6 wiring): set ROUTER_WIRED = True")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def experiments(triton, action: str, payload: Any = None) -> tuple[int, Any]:
    """Call the experiments model; (status, decoded result) or (status, error body)."""
    body: dict[str, Any] = {"action": action}
    if payload is not None:
        body["payload"] = payload if isinstance(payload, str) else json.dumps(payload)
    status, answer = triton.generate("experiments", body)
    if status == 200 and isinstance(answer, dict) and "result" in answer:
        return status, json.loads(answer["result"])
    return status, answer


def usage(triton, **fields) -> tuple[int, Any]:
    status, answer = triton.generate("usage", fields)
    if status == 200 and isinstance(answer, dict) and "summary" in answer:
        return status, json.loads(answer["summary"])
    return status, answer


@pytest.fixture(scope="module")
def store(triton):
    """The server's own store, opened from the test process (WAL: both may use it at once)."""
    opened = StateStore(default_db_path(triton.server.state_dir))
    yield opened
    opened.close()


def creative_experiment(name: str, **stopping) -> dict:
    return {"name": name, "filter": {"task": "creative"},
            "arms": [{"name": "gpt2", "model": "gpt2", "weight": 50},
                     {"name": "distilgpt2", "model": "distilgpt2", "weight": 50}],
            "stopping": {"min_samples_per_arm": 10, "max_samples_per_arm": 100, **stopping}}


def record(**fields) -> RequestRecord:
    base = dict(request_id=uuid.uuid4().hex, timestamp=time.time(), selection_mode="auto", selected_model="gpt2",
                task="creative", analyzer="lexical", fallback_used=False, fallback_reason=None, selection_ms=0.3,
                ttft_s=0.05, duration_s=1.0, tokens=16, error_kind=None)
    return RequestRecord(**(base | fields))


# -- experiments model --------------------------------------------------------------------

def test_the_example_experiment_from_the_file_is_listed_paused(triton):
    status, result = experiments(triton, "list")
    assert status == 200, result
    example = next(e for e in result["experiments"] if e["name"] == "creative-gpt2-vs-distilgpt2")
    assert example["status"] == "paused" and example["source"] == "file"
    assert [(a["model"], a["weight"]) for a in example["arms"]] == [("gpt2", 50.0), ("distilgpt2", 50.0)]


def test_create_pause_resume_stop_through_the_model(triton):
    name = unique("lifecycle")
    status, created = experiments(triton, "create", creative_experiment(name))
    assert status == 200 and created["status"] == "active" and created["source"] == "runtime", created
    for action, expected in (("pause", "paused"), ("resume", "active"), ("stop", "stopped")):
        status, result = experiments(triton, action, {"name": name})
        assert status == 200 and result["status"] == expected, result
    status, listed = experiments(triton, "list")
    assert {e["name"]: e["status"] for e in listed["experiments"]}[name] == "stopped"


@pytest.mark.parametrize(("body", "field", "phrase"), [
    ({"action": "delete"}, "action", "create, pause, resume, stop, list, report, feedback"),
    ({"payload": "{}"}, "action", "is required"),
    ({"action": "pause", "payload": "{oops"}, "payload", "must be JSON text"),
    ({"action": "pause", "payload": '{"name": "no-such-experiment"}'}, "payload.name", "unknown experiment"),
    ({"action": "report", "payload": '{"nmae": "x"}'}, "payload.nmae", "accepted fields: name"),
    ({"action": "create", "payload": '{"name": "x", "arms": [{"name": "a", "model": "gpt-9"}, '
                                     '{"name": "b", "model": "gpt2"}]}'}, "payload.arms.0.model", "known models"),
    ({"action": "feedback", "payload": '{"request_id": "r", "score": "great"}'}, "payload.score", "number"),
    ({"action": "list", "verbose": True}, "verbose", "accepted fields: action, payload"),
])
def test_bad_requests_get_400_naming_the_field(triton, body, field, phrase):
    status, answer = triton.generate("experiments", body)
    assert status == 400, answer
    assert f"'{field}'" in answer["error"] and phrase in answer["error"], answer["error"]


@pytest.fixture(autouse=True)
def no_experiment_left_active(triton):
    """Stop whatever a test left active: experiments must not split other tests' traffic."""
    yield
    status, listed = experiments(triton, "list")
    for experiment in listed.get("experiments", []) if status == 200 else []:
        if experiment["status"] == "active":
            experiments(triton, "stop", {"name": experiment["name"]})


@pytest.fixture
def stats_experiment(triton):
    """An experiment for records written by hand; stopped afterwards so no router traffic joins it."""
    name = unique("stats")
    assert experiments(triton, "create", creative_experiment(name))[0] == 200
    yield name
    experiments(triton, "stop", {"name": name})


def test_report_statistics_match_an_independent_computation(triton, store, stats_experiment):
    name = stats_experiment
    rng = np.random.default_rng(2024)
    slow, fast = rng.normal(1.2, 0.2, 40).clip(0.05), rng.normal(0.9, 0.25, 45).clip(0.05)
    records = [record(experiment=name, arm="gpt2", duration_s=float(d), user=f"u{i}") for i, d in enumerate(slow)]
    records += [record(experiment=name, arm="distilgpt2", duration_s=float(d)) for d in fast]
    records += [record(experiment=name, arm="distilgpt2", error_kind="generation_failed", tokens=0)] * 2
    store.insert_records(records)

    status, report = experiments(triton, "report", {"name": name})
    assert status == 200, report
    control, treatment = report["arms"]
    assert (control["requests"], treatment["requests"], treatment["errors"]) == (40, 47, 2)
    half = sps.t.ppf(0.975, len(slow) - 1) * slow.std(ddof=1) / math.sqrt(len(slow))
    assert control["metrics"]["duration_s"]["mean"] == pytest.approx(slow.mean())
    assert control["metrics"]["duration_s"]["ci_low"] == pytest.approx(slow.mean() - half)
    assert treatment["metrics"]["tokens_per_s"]["mean"] == pytest.approx((16 / fast).mean())
    duration = report["comparisons"][0]["metrics"]["duration_s"]
    # mSPRT by hand: the records were stamped in order (every gpt2 one first), one look per record
    # from the burn-in (10 per arm) on; p is the smallest 1/Lambda over those looks
    tau2, looks = (0.1 * slow.mean()) ** 2, []
    for k in range(10, len(fast) + 1):
        se2 = slow.var(ddof=1) / len(slow) + fast[:k].var(ddof=1) / k
        diff = fast[:k].mean() - slow.mean()
        looks.append(math.sqrt((se2 + tau2) / se2) * math.exp(-tau2 * diff**2 / (2 * se2 * (se2 + tau2))))
    assert duration["test"] == "msprt" and duration["p"] == pytest.approx(min(1.0, *looks), rel=1e-6)
    assert duration["diff"] == pytest.approx(fast.mean() - slow.mean())
    assert report["comparisons"][0]["metrics"]["error_rate"]["diff"] == pytest.approx(2 / 47)
    assert report["decision"]["state"] == "winner" and report["decision"]["winner"] == "distilgpt2"
    assert report["comparisons"][0]["plan"]["samples_per_arm"] >= 2


def test_feedback_by_request_id_reaches_the_report(triton, store):
    name = unique("feedback")
    assert experiments(triton, "create", creative_experiment(name, metric="feedback"))[0] == 200
    rows = [record(experiment=name, arm=arm) for arm in ("gpt2", "distilgpt2") for _ in range(3)]
    store.insert_records(rows)
    for row, score in zip(rows, (1, 2, 3, 4, 5, 5), strict=True):
        status, result = experiments(triton, "feedback", {"request_id": row.request_id, "score": score})
        assert status == 200 and result["matched"], result
    status, report = experiments(triton, "report", {"name": name})
    assert [a["metrics"]["feedback"]["mean"] for a in report["arms"]] == pytest.approx([2.0, 14 / 3])
    assert report["decision"]["state"] == "collecting"  # 3 scores per arm, 10 needed


def test_reloading_the_model_keeps_experiments_statuses_and_outcomes(triton, store):
    name = unique("restart")
    assert experiments(triton, "create", creative_experiment(name))[0] == 200
    assert experiments(triton, "pause", {"name": name})[0] == 200
    store.insert_records([record(experiment=name, arm="gpt2")])
    for step in ("unload", "load"):
        status, body = triton.post(f"/v2/repository/models/experiments/{step}")
        assert status == 200, body
    assert wait_until(lambda: triton.get("/v2/models/experiments/ready")[0] == 200, timeout=60)
    status, listed = experiments(triton, "list")
    assert status == 200, listed
    mine = next(e for e in listed["experiments"] if e["name"] == name)
    assert mine["status"] == "paused" and mine["arms"][0]["requests"] == 1


# -- usage model ---------------------------------------------------------------------------

def test_usage_summary_counts_the_window_and_suggests_from_the_data(triton, store):
    probe = unique("probe-model")
    now = time.time()
    store.insert_records([record(selected_model=probe, timestamp=now - 7200) for _ in range(5)])  # outside
    store.insert_records([record(selected_model=probe, timestamp=now - 5) for _ in range(24)]
                         + [record(selected_model=probe, timestamp=now - 5, error_kind="generation_failed", tokens=0)
                            for _ in range(6)])
    status, summary = usage(triton, window_s=3600)
    assert status == 200, summary
    figures = summary["per_model"][probe]
    assert (figures["requests"], figures["errors"], figures["error_rate"]) == (30, 6, 0.2)
    assert figures["tokens"] == 24 * 16
    assert summary["routing_table"]["creative"]["requests"] >= 30
    [advice] = [s for s in summary["suggestions"] if s["rule"] == "error_rate_high" and s["evidence"]["model"] == probe]
    assert f"{probe}: 20% of requests failed (6 of 30; generation_failed 6)" in advice["message"]
    status, everything = usage(triton)
    assert everything["per_model"][probe]["requests"] == 35


@pytest.mark.parametrize(("body", "field"), [({"window_s": -5}, "window_s"), ({"window": 60}, "window")])
def test_usage_bad_input_gets_400_naming_the_field(triton, body, field):
    status, answer = triton.generate("usage", body)
    assert status == 400 and f"'{field}'" in answer["error"], answer


# -- through the router (enable with ROUTER_WIRED) -----------------------------------------

def router_records(store: StateStore, request_ids: list[str], timeout: float = 10.0) -> dict[str, RequestRecord]:
    """The records the router wrote for these requests (its writer flushes in the background)."""
    def found() -> dict[str, RequestRecord]:
        return {r.request_id: r for r in store.records(since=time.time() - 600) if r.request_id in request_ids}

    wait_until(lambda: len(found()) == len(request_ids), timeout=timeout)
    return found()


def route(triton, user: str | None, prompt: str = "Write a short poem about the sea") -> str:
    body = {"text_input": prompt, "max_tokens": 1, "auto_select": True}
    if user is not None:
        body["user"] = user
    status, answer = triton.generate("router", body)
    assert status == 200 and "error" not in answer, answer
    return answer["request_id"]


@pytest.fixture
def running_experiment(triton):
    name = unique("routed")
    assert experiments(triton, "create", creative_experiment(name))[0] == 200
    assert router_applies(triton, name)
    yield name
    experiments(triton, "stop", {"name": name})


@needs_router
def test_router_assignment_is_sticky_per_user(triton, store, running_experiment):
    ids = [route(triton, "alice") for _ in range(5)]
    found = router_records(store, ids)
    assert len(found) == 5
    arms = {r.arm for r in found.values()}
    assert len(arms) == 1 and {r.experiment for r in found.values()} == {running_experiment}
    arm = arms.pop()
    assert {r.selected_model for r in found.values()} == {arm}  # model arms are named after their model


@needs_router
def test_router_honours_the_weights_over_many_users(triton, store, running_experiment):
    n = 120
    ids = [route(triton, f"user-{i}") for i in range(n)]
    found = router_records(store, ids, timeout=30)
    share = sum(r.arm == "gpt2" for r in found.values()) / len(found)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / n), share  # 4 sigma of a fair split


@needs_router
def test_metrics_endpoint_shows_router_metrics_after_traffic(triton):
    route(triton, None)
    # time to first token is measured where tokens arrive one by one: a streamed request
    events = triton.generate_stream("router_stream", {"text_input": "Tell me a story", "max_tokens": 3, "stream": True})
    assert "error" not in events[-1], events[-1]
    import urllib.request

    families = ("pointsman_requests_total", "pointsman_selection_seconds_bucket", "pointsman_tokens_total",
                "pointsman_time_to_first_token_seconds_count", "pointsman_request_duration_seconds_sum")

    def missing() -> list[str]:
        with urllib.request.urlopen(triton.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        return [family for family in families if family not in text]

    # metrics are applied by a background thread
    assert wait_until(lambda: not missing(), timeout=10), missing()


@needs_router
def test_usage_summary_reflects_router_traffic(triton, store):
    before = usage(triton, window_s=600)[1]["by_mode"]["auto"]
    ids = [route(triton, None) for _ in range(3)]
    assert len(router_records(store, ids)) == 3
    assert usage(triton, window_s=600)[1]["by_mode"]["auto"] >= before + 3


def test_database_lives_in_the_servers_state_dir(triton):
    assert Path(default_db_path(triton.server.state_dir)).exists()
