"""The health state machine: when a model leaves selection, when it is reloaded, and the back-off."""

from __future__ import annotations

import pytest

from pointsman.policy.health import (
    HealthPolicy,
    HealthRegistry,
    HealthState,
    Reason,
    backoff_s,
    is_dead_stub,
    is_overloaded,
)

DEAD = "Stub process 'gpt2_stream_0_0' is not healthy."


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock) -> HealthRegistry:
    return HealthRegistry(HealthPolicy(failure_threshold=3, backoff_base_s=1.0, backoff_max_s=8.0,
                                       stable_after_s=30.0, saturated_cooldown_s=1.0), clock=clock)


@pytest.mark.parametrize(("message", "dead"), [
    (DEAD, True),
    ("Failed to communicate with the stub process", True),
    ("generation failed: onnxruntime error", False),
    ("invalid 'max_tokens': must be an integer from 1 to 4096", False),
])
def test_a_dead_stub_is_told_from_other_errors(message, dead):
    assert is_dead_stub(message) is dead


def test_overload_is_told_from_other_errors():
    assert is_overloaded("overloaded, retry: 128 requests already wait for this model (max_queued 128)")
    assert not is_overloaded(DEAD)


def test_a_model_never_judged_is_available(health):
    assert health.available("gpt2")
    assert health.get("gpt2").state is HealthState.READY


def test_a_dead_stub_takes_the_model_out_of_selection_at_once_and_is_due_for_reload(health):
    assert health.record_failure("gpt2", DEAD) is True
    assert not health.available("gpt2")
    state = health.get("gpt2")
    assert (state.state, state.reason, state.detail) == (HealthState.UNHEALTHY, Reason.DEAD_STUB, DEAD)
    assert health.due_reloads() == ["gpt2"]  # the first reload waits for nothing
    assert health.unavailable() == frozenset({"gpt2"})


def test_other_failures_count_only_in_a_row(health):
    assert not health.record_failure("gpt2", "generation failed: x")
    assert not health.record_failure("gpt2", "generation failed: x")
    health.record_success("gpt2")
    assert not health.record_failure("gpt2", "generation failed: x")
    assert not health.record_failure("gpt2", "generation failed: x")
    assert health.available("gpt2")
    assert health.record_failure("gpt2", "generation failed: x") is True
    assert health.get("gpt2").reason is Reason.REPEATED_FAILURES


def test_a_failure_while_out_changes_nothing(health):
    health.record_failure("gpt2", DEAD)
    epoch = health.epoch("gpt2")
    assert health.record_failure("gpt2", DEAD) is False
    assert health.epoch("gpt2") == epoch


def test_going_unhealthy_bumps_the_epoch_that_in_flight_calls_watch(health):
    before = health.epoch("gpt2")
    health.record_failure("gpt2", DEAD)
    assert health.epoch("gpt2") == before + 1


def test_reload_walks_unhealthy_reloading_ready(health):
    health.record_failure("gpt2", DEAD)
    health.reload_started("gpt2")
    assert health.get("gpt2").state is HealthState.RELOADING
    assert health.due_reloads() == []
    assert not health.available("gpt2")
    health.reload_finished("gpt2", ok=True)
    state = health.get("gpt2")
    assert (state.state, state.reason, state.reloads) == (HealthState.READY, Reason.NONE, 1)
    assert health.available("gpt2")


def test_a_failed_reload_waits_the_back_off_before_the_next(health, clock):
    health.record_failure("gpt2", DEAD)
    health.reload_started("gpt2")
    health.reload_finished("gpt2", ok=False, detail="reload failed: HTTP 400")
    state = health.get("gpt2")
    assert (state.state, state.reason) == (HealthState.UNHEALTHY, Reason.RELOAD_FAILED)
    assert health.due_reloads() == []
    assert health.next_due_in() == pytest.approx(1.0)
    clock.now += 1.0
    assert health.due_reloads() == ["gpt2"]


def test_a_model_that_keeps_dying_backs_off_exponentially_up_to_the_max(health, clock):
    waits = []
    for _ in range(6):
        health.record_failure("gpt2", DEAD)
        waits.append(health.next_due_in())
        clock.now += waits[-1]
        health.reload_started("gpt2")
        health.reload_finished("gpt2", ok=True)
        clock.now += 5.0  # dies again well before stable_after_s
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_a_model_stable_long_enough_starts_the_back_off_over(health, clock):
    for _ in range(3):
        health.record_failure("gpt2", DEAD)
        clock.now += health.next_due_in()
        health.reload_started("gpt2")
        health.reload_finished("gpt2", ok=True)
    clock.now += 31.0
    health.record_failure("gpt2", DEAD)
    assert health.next_due_in() == 0.0


def test_an_overloaded_answer_steers_selection_away_briefly_without_a_reload(health, clock):
    assert health.record_failure("gpt2", "overloaded, retry: 128 requests already wait") is False
    assert not health.available("gpt2")
    assert health.get("gpt2").state is HealthState.READY
    assert health.due_reloads() == []
    clock.now += 1.0
    assert health.available("gpt2")


@pytest.mark.parametrize(("in_row", "wait"), [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)])
def test_backoff_doubles_from_the_base_up_to_the_max(in_row, wait):
    assert backoff_s(HealthPolicy(backoff_base_s=1.0, backoff_max_s=60.0), in_row) == wait


def test_a_failure_of_a_call_begun_before_the_reload_does_not_count_against_the_new_instance(health):
    began = health.epoch("gpt2")
    health.record_failure("gpt2", DEAD)
    health.reload_started("gpt2")
    health.reload_finished("gpt2", ok=True)
    for _ in range(5):  # the calls the death caught, answered only when the old instance was unloaded
        assert health.record_failure("gpt2", "generation failed: x", epoch=began) is False
    assert health.get("gpt2").state is HealthState.READY and health.get("gpt2").failures_in_row == 0


@pytest.mark.parametrize(("message", "model"), [
    ("Stub process 'gpt2_stream_0_0' is not healthy.", "gpt2_stream"),
    ("Stub process 'router_0_0' is not healthy.", "router"),
    ("invalid 'max_tokens': must be an integer", None),
])
def test_the_dead_stub_is_named_by_its_model(message, model):
    from pointsman.policy.health import dead_stub_model

    assert dead_stub_model(message) == model


@pytest.mark.parametrize("message", [
    "Model gpt2_stream - Error when running inference: Failed for execute the inference request. Model "
    "'gpt2_stream' is not ready.",
    "Request for unknown model: 'gpt2_stream' has no available version",
])
def test_an_unloaded_model_is_never_counted_as_failing_so_an_operators_unload_stands(health, message):
    for _ in range(5):
        assert health.record_failure("gpt2", message) is False
    assert health.get("gpt2").state is HealthState.READY and health.due_reloads() == []
