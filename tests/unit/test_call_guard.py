"""A guarded model call ends at its deadline or when the model is known dead, never later."""

from __future__ import annotations

import threading
import time

import pytest

from pointsman.errors import DeadlineExceeded, Overloaded
from pointsman.policy.admission import Admission
from pointsman.policy.call_guard import CallerCheck, ModelDied, guarded


def hanging_call(release: threading.Event, first: str | None = "a"):
    """A call that yields once, then blocks like a BLS iterator whose model died."""

    def open_call(stop):
        if first is not None:
            yield first
        release.wait()
        yield "never seen" if not stop() else "after stop"

    return open_call


def test_items_pass_through_and_the_call_ends_normally():
    out = list(guarded(lambda stop: iter(["a", "b"]), deadline=time.monotonic() + 5, is_dead=lambda: None))
    assert out == ["a", "b"]


def test_an_error_in_the_call_reaches_the_caller():
    def failing(stop):
        yield "a"
        raise RuntimeError("model said no")

    with pytest.raises(RuntimeError, match="model said no"):
        list(guarded(failing, deadline=time.monotonic() + 5, is_dead=lambda: None))


def test_a_call_that_hangs_ends_at_the_deadline_naming_it():
    release = threading.Event()
    got = []
    with pytest.raises(DeadlineExceeded, match="max_response_time 0.2 s"):
        for item in guarded(hanging_call(release), deadline=time.monotonic() + 0.2, is_dead=lambda: None,
                            deadline_note="max_response_time 0.2 s", poll_s=0.02):
            got.append(item)
    release.set()
    assert got == ["a"]


def test_a_call_whose_model_is_found_dead_ends_with_the_reason():
    release = threading.Event()
    dead = threading.Event()
    calls = guarded(hanging_call(release), deadline=time.monotonic() + 60,
                    is_dead=lambda: "Stub process 'x' is not healthy." if dead.is_set() else None, poll_s=0.02)
    assert next(calls) == "a"
    dead.set()
    with pytest.raises(ModelDied, match="not healthy"):
        next(calls)
    release.set()


def test_a_quiet_call_asks_for_a_probe_once_per_stall():
    release = threading.Event()
    probes = []
    with pytest.raises(DeadlineExceeded):
        list(guarded(hanging_call(release, first=None), deadline=time.monotonic() + 0.35, is_dead=lambda: None,
                     on_stall=lambda: probes.append(time.monotonic()), poll_s=0.01, stall_s=0.1))
    release.set()
    assert 2 <= len(probes) <= 3  # one per 0.1 s of silence in 0.35 s, not one per poll


def test_giving_up_tells_the_reader_to_stop():
    release = threading.Event()
    seen_stop = threading.Event()

    def open_call(stop):
        yield "a"
        release.wait()
        if stop():
            seen_stop.set()
        yield "b"

    with pytest.raises(DeadlineExceeded):
        list(guarded(open_call, deadline=time.monotonic() + 0.1, is_dead=lambda: None, poll_s=0.02))
    release.set()
    assert seen_stop.wait(5)


def test_admission_refuses_past_the_bound_with_overloaded_retry():
    admission = Admission(max_in_flight=2)
    admission.admit()
    admission.admit()
    with pytest.raises(Overloaded, match=r"overloaded, retry: .* \(max_in_flight 2\)"):
        admission.admit()
    admission.release()
    admission.admit()
    assert admission.in_flight == 2


def test_the_deadline_is_max_response_time_when_given_else_the_default():
    admission = Admission(default_timeout_s=120.0)
    assert admission.deadline_for(2.5, arrived=10.0) == (12.5, "max_response_time 2.5 s")
    assert admission.deadline_for(None, arrived=10.0) == (130.0, "the router's request_timeout_s 120 s")


@pytest.mark.parametrize("kwargs", [{"max_in_flight": 0}, {"default_timeout_s": 0.0}])
def test_admission_refuses_a_bound_that_admits_nothing(kwargs):
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        Admission(**kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_caller_is_asked_at_most_once_per_interval_and_cancelled_stays_cancelled():
    answers, clock = [False, True, False], Clock()
    asked: list[float] = []

    def ask() -> bool:
        asked.append(clock.now)
        return answers[len(asked) - 1]

    check = CallerCheck(ask, every_s=0.02, clock=clock)
    assert check() is False and check() is False  # the second within the interval: not asked
    clock.now = 0.05
    assert check() is True
    clock.now = 1.0
    assert check() is True  # once True, never asked again
    assert asked == [0.0, 0.05]


def test_after_end_the_caller_is_never_asked_and_counts_as_gone():
    asked: list[int] = []
    check = CallerCheck(lambda: asked.append(1) or False, every_s=0.0)
    check.end()
    assert check() is True
    assert asked == []


def test_end_waits_for_a_question_under_way():
    """The router ends a request while a reader thread is asking Triton about it: the end must wait."""
    inside, release = threading.Event(), threading.Event()

    def ask() -> bool:
        inside.set()
        release.wait(timeout=10)
        return False

    check = CallerCheck(ask, every_s=0.0)
    reader = threading.Thread(target=check)
    reader.start()
    assert inside.wait(timeout=10)
    ended = threading.Thread(target=check.end)
    ended.start()
    ended.join(timeout=0.2)  # bounded: a correct end() stays blocked whatever the timing
    still_waiting = ended.is_alive()
    release.set()
    reader.join(timeout=10)
    ended.join(timeout=10)
    assert still_waiting, "end() returned while the caller was being asked"
    assert check() is True
