"""Fixtures of the usage and experiments tests: a record factory and a fresh state store.

    def test_x(make_record, state_store):
        state_store.insert_records([make_record(selected_model="codegen", task="coding")])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from pointsman.ops.usage.records import RequestRecord
from pointsman.ops.usage.store import StateStore

_IDS = itertools.count()


def build_record(**overrides) -> RequestRecord:
    """A successful auto request on gpt2 unless overridden; ids are unique."""
    fields = dict(request_id=f"req-{next(_IDS)}", timestamp=1_000.0, selection_mode="auto", selected_model="gpt2",
                  task="creative", analyzer="lexical", fallback_used=False, fallback_reason=None, selection_ms=0.5,
                  ttft_s=0.05, duration_s=1.0, tokens=20, error_kind=None)
    fields.update(overrides)
    return RequestRecord(**fields)


@pytest.fixture
def make_record() -> Callable[..., RequestRecord]:
    return build_record


@pytest.fixture
def state_store(tmp_path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state" / "pointsman.db")
    yield store
    store.close()
