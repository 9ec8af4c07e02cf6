"""The keeper reloads what the health registry marks, unload then load, and publishes why."""

from __future__ import annotations

from types import SimpleNamespace

from pointsman.policy.health import HealthRegistry, HealthState, Reason
from pointsman.triton_adapters.model_keeper import HealthGauges, ModelKeeper, RepositoryError, TwinWatch
from tests.unit.test_router_metrics import FakeMetricFamily

DEAD = "Stub process 'gpt2_stream_0_0' is not healthy."


class FakeRepository:
    """The repository calls a reload makes, recorded; `fail_load` answers load as Triton refuses one."""

    def __init__(self, fail_load: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_load = fail_load

    def unload(self, model: str) -> None:
        self.calls.append(("unload", model))

    def load(self, model: str) -> None:
        self.calls.append(("load", model))
        if self.fail_load:
            raise RepositoryError("load_model: StatusCode.INTERNAL failed to load 'gpt2_stream'")


def keeper(repository, gauges=None) -> tuple[ModelKeeper, HealthRegistry]:
    health = HealthRegistry()
    return ModelKeeper(health, target_of=lambda name: f"{name}_stream", repository=repository, gauges=gauges), health


def test_a_reload_unloads_then_loads_the_engine_model_and_returns_it_to_selection():
    repository = FakeRepository()
    k, health = keeper(repository)
    health.record_failure("gpt2", DEAD)
    assert k.reload("gpt2") is True
    assert repository.calls == [("unload", "gpt2_stream"), ("load", "gpt2_stream")]
    assert health.get("gpt2").state is HealthState.READY and health.available("gpt2")


def test_a_failed_reload_leaves_the_model_out_with_the_reason():
    k, health = keeper(FakeRepository(fail_load=True))
    health.record_failure("gpt2", DEAD)
    assert k.reload("gpt2") is False
    state = health.get("gpt2")
    assert (state.state, state.reason) == (HealthState.UNHEALTHY, Reason.RELOAD_FAILED)
    assert state.detail == "reload failed: load_model: StatusCode.INTERNAL failed to load 'gpt2_stream'"


def test_the_gauges_show_state_reason_and_reloads():
    FakeMetricFamily.created = families = {}
    gauges = HealthGauges(api=SimpleNamespace(MetricFamily=FakeMetricFamily))
    k, health = keeper(FakeRepository(fail_load=True), gauges)
    health.record_failure("gpt2", DEAD)
    k.reload("gpt2")
    gauges.publish(health.snapshot())
    values = {(f.name, tuple(sorted(m.labels.items()))): m.total for f in families.values() for m in f.metrics}
    assert values[("pointsman_model_health_state", (("model", "gpt2"),))] == 1.0  # unhealthy
    assert values[("pointsman_model_health_reason", (("model", "gpt2"), ("reason", "reload_failed")))] == 1.0
    assert values[("pointsman_model_health_reason", (("model", "gpt2"), ("reason", "stub_not_healthy")))] == 0.0
    assert values[("pointsman_model_reloads_total", (("model", "gpt2"),))] == 1.0


def test_every_catalog_model_is_shown_ready_with_no_reloads_before_it_is_judged():
    FakeMetricFamily.created = families = {}
    gauges = HealthGauges(api=SimpleNamespace(MetricFamily=FakeMetricFamily))
    health = HealthRegistry()
    k = ModelKeeper(health, target_of=lambda name: f"{name}_stream", repository=FakeRepository(), gauges=gauges,
                    models=lambda: ["gpt2", "codegen"])
    health.record_failure("gpt2", DEAD)
    k._publish()
    values = {(f.name, tuple(sorted(m.labels.items()))): m.total for f in families.values() for m in f.metrics}
    assert values[("pointsman_model_health_state", (("model", "codegen"),))] == 0.0  # ready, never judged
    assert values[("pointsman_model_reloads_total", (("model", "codegen"),))] == 0.0  # exported from zero
    assert values[("pointsman_model_health_state", (("model", "gpt2"),))] == 1.0  # the verdict wins


def test_the_twin_watch_marks_a_twin_whose_probe_finds_a_dead_stub():
    health = HealthRegistry()
    answers = {"router": DEAD.replace("gpt2_stream", "router"), "gpt2": "invalid 'max_tokens': must be ..."}
    TwinWatch(health, ["router", "gpt2"], probe=answers.get).check_once()
    assert health.get("router").state is HealthState.UNHEALTHY
    assert health.get("gpt2").state is HealthState.READY


def test_the_twin_watch_never_reloads_a_twin_that_is_only_slow_to_answer():
    import threading

    never = threading.Event()
    health = HealthRegistry()
    watch = TwinWatch(health, ["router"], probe=lambda twin: never.wait(30) and None, timeout_s=0.05)
    for _ in range(health.policy.failure_threshold + 1):
        watch.check_once()
    never.set()
    assert health.get("router").state is HealthState.READY  # a reload would drop the requests it holds


def test_the_twin_watch_leaves_a_twin_alone_when_only_its_engine_is_dead():
    health = HealthRegistry()
    TwinWatch(health, ["gpt2"], probe=lambda twin: DEAD).check_once()  # gpt2 forwards to the dead gpt2_stream
    assert health.get("gpt2").state is HealthState.READY
