"""RoutingService when models die, hang, or refuse work: cooldown, retry elsewhere, deadlines, overload."""

from __future__ import annotations

import threading
import time

from pointsman.errors import DeadlineExceeded, GenerationFailed, ModelUnavailable, Overloaded
from pointsman.policy.admission import Admission
from pointsman.policy.health import HealthState
from pointsman.policy.routing import ModelCallError, RoutingService
from tests.unit.test_routing import Done, FakeModels, Sink
from tests.unit.test_selection import make_selector
from tests.waiting import wait_until

DEAD = "Stub process 'gpt2_stream_0_0' is not healthy."


class HangingModel:
    """call_model fake: `hung` models block like a BLS iterator whose stub died; others answer."""

    def __init__(self, hung: set[str]):
        self.hung = hung
        self.release = threading.Event()
        self.calls: list[str] = []

    def __call__(self, model, fields, is_cancelled):
        self.calls.append(model)
        if model in self.hung:
            self.release.wait(30)
            return
        yield "", Done(f"{model} answered", 2)


def service_for(models, selector=None, probe=None, admission=None):
    selector = selector or make_selector(task="creative")
    return RoutingService(selector, models, admission=admission, probe=probe), selector


def handle(service, **fields):
    sink = Sink()
    outcome = service.handle({"text_input": "a poem please", "max_tokens": 2, **fields}, sink)
    return sink, outcome


def test_a_dead_stub_takes_the_model_out_of_selection_at_once():
    models = FakeModels(failing={"gpt2": ModelCallError(DEAD)})
    service, selector = service_for(models)
    sink, _ = handle(service, preferred_model="gpt2")
    assert sink.result.decision.model != "gpt2" and sink.result.decision.fallback_used
    assert selector.health.get("gpt2").state is HealthState.UNHEALTHY
    calls_before = len(models.calls)
    sink, _ = handle(service, preferred_model="gpt2")
    assert "gpt2" not in [m for m, _ in models.calls[calls_before:]]  # the cooldown: not even tried
    assert "preferred model gpt2 is unhealthy" in sink.result.decision.reason


def test_auto_never_picks_an_unhealthy_model():
    service, selector = service_for(FakeModels())
    for model in ("gpt2", "distilgpt2"):
        selector.health.record_failure(model, DEAD)
    for _ in range(5):
        sink, _ = handle(service, auto_select=True)
        assert sink.result.decision.model == "codegen"


def test_a_manual_request_for_an_unhealthy_model_is_told_it_is_being_reloaded():
    service, selector = service_for(FakeModels())
    selector.health.record_failure("gpt2", DEAD)
    sink, _ = handle(service, model="gpt2")
    assert isinstance(sink.error, ModelUnavailable)
    assert str(sink.error) == ("model 'gpt2' is not ready: unhealthy (stub_not_healthy), the router is reloading "
                               "it; retry shortly")


def test_a_manual_call_that_fails_with_a_dead_stub_is_a_server_fault_not_retried():
    service, selector = service_for(FakeModels(failing={"gpt2": ModelCallError(DEAD)}))
    sink, _ = handle(service, model="gpt2")
    assert isinstance(sink.error, GenerationFailed)
    assert "not healthy" in str(sink.error)


def test_a_call_hung_on_a_model_found_dead_elsewhere_is_retried_on_another_model():
    models = HangingModel(hung={"gpt2"})
    service, selector = service_for(models)
    done = {}
    worker = threading.Thread(target=lambda: done.update(sink=handle(service, preferred_model="gpt2")[0]))
    began = time.monotonic()
    worker.start()
    assert wait_until(lambda: "gpt2" in models.calls, timeout=5)
    selector.health.record_failure("gpt2", DEAD)  # what another request (or a probe) finds
    worker.join(5)
    models.release.set()
    sink = done["sink"]
    assert sink.error is None and sink.result.decision.model != "gpt2"
    assert "gpt2 failed (model 'gpt2' died mid-generation" in sink.result.decision.reason
    assert time.monotonic() - began < 2.0


def test_a_hung_call_is_probed_and_ends_once_the_probe_finds_the_stub_dead():
    models = HangingModel(hung={"gpt2"})
    probed = []

    def probe(engine):
        probed.append(engine)
        return DEAD

    service, selector = service_for(models, probe=probe)
    sink, outcome = handle(service, model="gpt2")
    models.release.set()
    assert probed and probed[0] == "gpt2"  # the fixed catalog has no engine_model: the entry's name
    assert isinstance(sink.error, GenerationFailed) and "died mid-generation" in str(sink.error)
    assert selector.health.get("gpt2").state is HealthState.UNHEALTHY


def test_a_live_model_answering_the_probe_is_left_alone_until_the_deadline():
    models = HangingModel(hung={"gpt2"})
    service, selector = service_for(models, probe=lambda engine: "invalid 'max_tokens': must be an integer")
    sink, _ = handle(service, model="gpt2", max_response_time=0.6)
    models.release.set()
    assert isinstance(sink.error, DeadlineExceeded)
    assert str(sink.error) == ("deadline exceeded: no complete answer within max_response_time 0.6 s; retry, or "
                               "allow more time")
    assert selector.health.get("gpt2").state is HealthState.READY  # slow is not broken


def test_every_request_gets_the_default_deadline():
    models = HangingModel(hung={"gpt2"})
    service, _ = service_for(models, admission=Admission(default_timeout_s=0.3))
    sink, _ = handle(service, model="gpt2")
    models.release.set()
    assert isinstance(sink.error, DeadlineExceeded) and "request_timeout_s 0.3 s" in str(sink.error)


def test_an_overloaded_model_sends_auto_elsewhere_and_manual_callers_a_retry():
    overloaded = ModelCallError("overloaded, retry: 128 requests already wait for this model (max_queued 128)")
    service, selector = service_for(FakeModels(failing={"gpt2": overloaded}))
    sink, _ = handle(service, preferred_model="gpt2")
    assert sink.result.decision.model != "gpt2"
    assert selector.health.get("gpt2").state is HealthState.READY  # busy, not broken: no reload
    assert "gpt2" in selector.health.unavailable()  # but auto steers away for the cooldown
    sink, _ = handle(service, model="gpt2")
    assert isinstance(sink.error, Overloaded) and "overloaded, retry" in str(sink.error)


def test_a_success_after_failures_resets_the_count():
    service, selector = service_for(FakeModels())
    selector.health.record_failure("codegen", "generation failed: x")
    handle(service, model="codegen")
    assert selector.health.get("codegen").failures_in_row == 0
