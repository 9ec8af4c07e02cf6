"""serving_cpu's accounting: which threads count as decoding, and where the rest of the CPU is booked.

    .venv/bin/pytest tests/unit/test_serving_cpu.py -q
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from pointsman.loadtests.serving_cpu import counted, split_cpu, thread_cpu_ns

STUB, SERVER = 100, 200


def test_threads_busy_more_than_half_the_step_are_decoding_and_the_rest_is_booked_by_process() -> None:
    tokens, wall_ms = 10, 20.0  # a 20 ms step: a decoding thread spends more than 10 ms of CPU per token
    cpu = Counter({(STUB, "1"): 190_000_000, (STUB, "2"): 150_000_000,  # 19 and 15 ms per token: decoding
                   (STUB, "3"): 5_000_000, (STUB, "4"): 2_000_000,      # 500 and 200 µs: the outbox, the watch
                   (SERVER, "9"): 4_000_000, (SERVER, "10"): 1_000_000})
    split = split_cpu(cpu, STUB, tokens, wall_ms)
    assert split == {"decoding": 34_000.0, "other threads": 700.0, "other processes": 500.0, "decoding threads": 2.0}


def test_a_busy_thread_of_another_process_is_never_counted_as_decoding() -> None:
    split = split_cpu(Counter({(STUB, "1"): 150_000_000, (SERVER, "9"): 150_000_000}), STUB, 10, 20.0)
    assert split["decoding threads"] == 1.0 and split["other processes"] == 15_000.0


def test_counted_books_the_cpu_a_call_took_on_the_thread_that_ran_it() -> None:
    cpu: Counter = Counter()
    me = (os.getpid(), str(threading.get_native_id()))
    assert counted([os.getpid()], cpu, lambda: sum(i * i for i in range(200_000))) > 0
    assert cpu[me] > 0  # schedstat counts in ns: a call that computed anything shows
    assert me in thread_cpu_ns([os.getpid()])
