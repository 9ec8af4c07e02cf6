"""bench_gateway's table: the difference and ratio it prints come from the two paths of the same run."""

from __future__ import annotations

import numpy as np

from pointsman.loadtests.bench_gateway import report


def test_report_prints_median_difference_ratio_and_the_verdict():
    times = {"direct": np.full(10, 0.010), "gateway": np.full(10, 0.0105)}
    table = report([(1, times, 0.02)], tokens=1, stream=False)
    row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:6] == ["10.00", "10.50", "+0.50", "1.05x"]
    assert cells[-1] == "2.00"  # 20 ms of gateway CPU over 10 requests
    assert table.splitlines()[-1].endswith("+0.50 ms (met)")


def test_report_says_missed_when_the_gateway_adds_more_than_a_millisecond():
    times = {"direct": np.full(4, 0.010), "gateway": np.full(4, 0.013)}
    assert report([(1, times, 0.0)], tokens=1, stream=True).splitlines()[-1].endswith("(missed)")
