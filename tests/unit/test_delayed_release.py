"""DelayedRelease holds what it is given for at least hold_s, and lets go of it at a later keep."""

from __future__ import annotations

import gc
import weakref

from pointsman.triton_adapters.delayed_release import DelayedRelease
from tests.unit.test_call_guard import Clock


class Iterator:
    """Stands in for a response iterator: only its lifetime matters here."""


def test_a_kept_iterator_outlives_its_last_outside_reference_until_hold_s_has_passed():
    clock = Clock()
    clock.now = 100.0
    release = DelayedRelease(hold_s=10.0, clock=clock)
    first = Iterator()
    alive = weakref.ref(first)
    release.keep(first)
    del first
    gc.collect()
    assert alive() is not None  # held: the outside reference was not the last

    clock.now += 9.9
    release.keep(Iterator())
    assert alive() is not None and len(release) == 2  # not yet hold_s

    clock.now += 0.1
    release.keep(Iterator())
    assert alive() is None  # let go, by the keep that came after hold_s
    assert len(release) == 2


def test_it_lets_go_in_the_order_kept_and_only_of_those_held_long_enough():
    clock = Clock()
    clock.now = 100.0
    release = DelayedRelease(hold_s=5.0, clock=clock)
    kept = []
    for _ in range(3):
        thing = Iterator()
        kept.append(weakref.ref(thing))
        release.keep(thing)
        del thing
        clock.now += 2.0  # kept at 100, 102, 104
    clock.now = 107.0
    release.keep(Iterator())
    assert [ref() is None for ref in kept] == [True, True, False]  # 7 and 5 s old go; 3 s old stays
