"""The experiment manager: actions of the experiments model, assignment, persistence, sharing."""

from __future__ import annotations

import json
import random

import pytest

from pointsman.errors import InvalidRequest
from pointsman.ops.experiments.manager import ACTIONS, ExperimentManager
from pointsman.ops.usage.store import StateStore

MODELS = {"gpt2", "distilgpt2", "codegen"}
CREATIVE = {"name": "creative-small", "filter": {"task": "creative"},
            "arms": [{"name": "gpt2", "model": "gpt2", "weight": 1}, {"name": "distil", "model": "distilgpt2",
                                                                        "weight": 1}],
            "stopping": {"min_samples_per_arm": 5, "max_samples_per_arm": 10, "auto_stop": True}}
POLICY = {"name": "analysers", "arms": [{"name": "lex", "policy": "lexical"}, {"name": "clf", "policy": "classifier"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(state_store, clock) -> ExperimentManager:
    return ExperimentManager(state_store, known_models=MODELS, clock=clock, rng=random.Random(1))


def test_create_list_pause_resume_stop_through_handle(manager) -> None:
    created = manager.handle("create", json.dumps(CREATIVE))
    assert created["status"] == "active" and created["source"] == "runtime"
    assert [a["requests"] for a in created["arms"]] == [0, 0]
    assert manager.handle("pause", '{"name": "creative-small"}')["status"] == "paused"
    assert manager.handle("pause", {"name": "creative-small"})["status"] == "paused"  # idempotent
    assert manager.handle("resume", {"name": "creative-small"})["status"] == "active"
    assert manager.handle("stop", {"name": "creative-small"})["status"] == "stopped"
    assert [e["name"] for e in manager.handle("list")["experiments"]] == ["creative-small"]


def test_a_stopped_experiment_cannot_be_resumed(manager) -> None:
    manager.create(CREATIVE)
    manager.stop("creative-small")
    with pytest.raises(InvalidRequest) as err:
        manager.resume("creative-small")
    assert err.value.field == "payload.name" and "stopped" in str(err.value)


@pytest.mark.parametrize(("action", "payload", "field", "phrase"), [
    ("delete", {}, "action", "must be one of create, pause, resume, stop, list, report, feedback"),
    (None, {}, "action", "must be one of"),
    ("pause", "{not json", "payload", "must be JSON text"),
    ("pause", {}, "payload.name", "is required"),
    ("pause", [1], "payload", "must be a JSON object"),
    ("pause", {"name": "nope"}, "payload.name", "unknown experiment 'nope'; known experiments: creative-small"),
    ("report", {"name": "x", "verbose": True}, "payload.verbose", "accepted fields: name"),
    ("feedback", {"request_id": "r1"}, "payload.score", "finite number"),
    ("feedback", {"request_id": "r1", "score": "good"}, "payload.score", "finite number"),
    ("feedback", {"score": 1}, "payload.request_id", "is required"),
    ("create", {"name": "creative-small", "arms": CREATIVE["arms"]}, "payload.name", "exists (status active)"),
    ("create", {"name": "x", "arms": [{"name": "a", "model": "gpt-9"}, {"name": "b", "model": "gpt2"}]},
     "payload.arms.0.model", "known models"),
])
def test_bad_actions_and_payloads_name_the_field(manager, action, payload, field, phrase) -> None:
    manager.create(CREATIVE)
    with pytest.raises(InvalidRequest) as err:
        manager.handle(action, payload)
    assert err.value.field == field
    assert phrase in str(err.value)


def test_actions_constant_lists_every_handled_action(manager) -> None:
    manager.create(CREATIVE)
    results = {}
    for action in ACTIONS:
        payload = {"create": POLICY, "list": None, "feedback": {"request_id": "r", "score": 1}}.get(
            action, {"name": "creative-small"})
        results[action] = manager.handle(action, payload)

    assert set(results) == set(ACTIONS)
    assert [e["name"] for e in results["list"]["experiments"]] == ["creative-small", POLICY["name"]]
    assert results["report"]["name"] == "creative-small" and results["feedback"]["matched"] is False


def test_assignment_is_sticky_per_user_and_only_for_matching_traffic(manager) -> None:
    manager.create(CREATIVE)
    first = manager.assign("auto", "creative", "alice")
    assert first is not None and first.experiment == "creative-small" and first.sticky
    assert all(manager.assign("auto", "creative", "alice") == first for _ in range(20))
    assert first.model == {"gpt2": "gpt2", "distil": "distilgpt2"}[first.arm]
    assert manager.assign("auto", "coding", "alice") is None
    assert manager.assign("manual", "", "alice") is None
    assert manager.assign("hybrid", "creative", "alice") is None  # filter default: auto only
    random_ones = {manager.assign("auto", "creative", None).arm for _ in range(50)}
    assert random_ones == {"gpt2", "distil"}
    assert not manager.assign("auto", "creative", None).sticky


def test_paused_and_stopped_experiments_assign_nothing(manager) -> None:
    manager.create(CREATIVE)
    manager.pause("creative-small")
    assert manager.assign("auto", "creative", "alice") is None
    manager.resume("creative-small")
    assert manager.assign("auto", "creative", "alice") is not None
    manager.stop("creative-small")
    assert manager.assign("auto", "creative", "alice") is None


def test_policy_experiment_matches_before_analysis(manager) -> None:
    manager.create(POLICY)
    assignment = manager.assign("auto", None, "bob")
    assert assignment.policy in ("lexical", "classifier") and assignment.model is None
    manager.create(CREATIVE)
    # the first active experiment that matches wins: the policy one, created first
    assert manager.assign("auto", "creative", "bob").experiment == "analysers"


def test_another_process_sees_changes_after_its_refresh_interval(tmp_path, clock) -> None:
    path = tmp_path / "pointsman.db"
    admin = ExperimentManager(StateStore(path), known_models=MODELS, clock=clock)
    router = ExperimentManager(StateStore(path), clock=clock, refresh_s=1.0)
    admin.create(CREATIVE)
    assert router.assign("auto", "creative", "u") is None  # checked less than refresh_s ago
    clock.now += 1.0
    assert router.assign("auto", "creative", "u") is not None
    admin.pause("creative-small")
    clock.now += 1.0
    assert router.assign("auto", "creative", "u") is None


def test_experiments_statuses_and_outcomes_survive_a_restart(tmp_path, clock, make_record) -> None:
    path = tmp_path / "pointsman.db"
    store = StateStore(path)
    before = ExperimentManager(store, known_models=MODELS, clock=clock)
    before.create(CREATIVE)
    before.create(POLICY)
    before.pause("analysers")
    arm = before.assign("auto", "creative", "carol").arm
    record = make_record(experiment="creative-small", arm=arm, user="carol")
    store.insert_records([record])
    before.feedback(record.request_id, 0.9)
    store.close()

    after = ExperimentManager(StateStore(path), known_models=MODELS, clock=clock)
    assert {e["name"]: e["status"] for e in after.list()} == {"creative-small": "active", "analysers": "paused"}
    assert after.assign("auto", "creative", "carol").arm == arm
    report = after.report("creative-small")
    arm_report = next(a for a in report["arms"] if a["name"] == arm)
    assert arm_report["requests"] == 1 and arm_report["metrics"]["feedback"]["mean"] == 0.9


def test_seed_adds_file_experiments_once_and_keeps_runtime_changes(tmp_path, manager, caplog) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text('[[experiments]]\nname = "seeded"\n[[experiments.arms]]\nname = "a"\nmodel = "gpt2"\n'
                    '[[experiments.arms]]\nname = "b"\nmodel = "codegen"\n')
    assert manager.seed(path) == ["seeded"]
    manager.pause("seeded")
    assert manager.seed(path) == []
    assert manager.list()[0]["status"] == "paused" and manager.list()[0]["source"] == "file"
    path.write_text(path.read_text().replace('"codegen"', '"distilgpt2"'))
    assert manager.seed(path) == []
    assert "differs from the one stored" in caplog.text
    assert manager.list()[0]["arms"][1]["model"] == "codegen"


def test_feedback_says_whether_the_request_is_known(manager, state_store, make_record) -> None:
    record = make_record()
    state_store.insert_records([record])
    assert manager.handle("feedback", {"request_id": record.request_id, "score": 4})["matched"] is True
    assert manager.handle("feedback", {"request_id": "unknown", "score": 1.5})["matched"] is False


def test_report_auto_stops_a_decided_experiment(manager, state_store, make_record) -> None:
    manager.create(CREATIVE)
    records = [make_record(experiment="creative-small", arm="gpt2", duration_s=1.0 + 0.01 * i) for i in range(6)]
    records += [make_record(experiment="creative-small", arm="distil", duration_s=0.5 + 0.01 * i) for i in range(6)]
    state_store.insert_records(records)
    report = manager.handle("report", {"name": "creative-small"})
    assert report["decision"]["state"] == "winner" and report["decision"]["winner"] == "distil"
    assert report["status"] == "stopped" and report["decision"]["auto_stopped"]
    assert manager.assign("auto", "creative", "x") is None
