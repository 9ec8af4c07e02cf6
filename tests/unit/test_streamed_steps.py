"""Per-token latency from a stream whose pieces can hold several tokens (loadtests.bench_serving.Streamed).

Run: .venv/bin/pytest tests/unit/test_streamed_steps.py -q
"""

from __future__ import annotations

import pytest

from pointsman.loadtests.bench_serving import Streamed


def test_each_piece_is_dated_by_its_token_count_not_by_its_position() -> None:
    # 10 tokens, one step every 2 s; the first piece waited for token 3 (a character's last
    # byte) and tokens 9 and 10 never got a piece of their own
    answer = Streamed(sent=0.0, arrivals=[6.0, 8.0, 10.0, 12.0, 14.0, 16.0], counts=[3, 4, 5, 6, 7, 8], tokens=10)

    assert answer.step_s() == pytest.approx(2.0)
    assert (answer.arrivals[-1] - answer.arrivals[0]) / (answer.tokens - 1) == pytest.approx(10 / 9)  # the old figure


def test_a_stream_without_counts_or_with_one_piece_is_refused_rather_than_guessed() -> None:
    with pytest.raises(SystemExit, match="no token counts"):
        Streamed(0.0, [1.0, 2.0], [None, None], 2).step_s()
    with pytest.raises(SystemExit, match="one piece"):
        Streamed(0.0, [1.0, 1.5], [4, 4], 4).step_s()
