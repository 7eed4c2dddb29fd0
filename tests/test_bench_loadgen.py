"""How the bench's load generator turns timed operations into throughput."""

from __future__ import annotations

import pytest

from bench.loadgen import work_within


def test_an_operation_across_an_edge_of_the_window_counts_for_the_part_inside() -> None:
    """Half inside counts a half; wholly inside one; wholly outside nothing."""
    spans = [(9.5, 10.5), (12.5, 13.5), (10.0, 11.0), (8.0, 9.0), (13.1, 14.0)]
    assert work_within(spans, 10.0, 13.0) == pytest.approx(2.0)


def test_operations_in_lockstep_give_the_sustained_rate_not_a_count_of_bursts() -> None:
    """32 users starting together, each op 0.84 s (a FastMCP flow): over a 3 s window the sustained rate
    is 32 / 0.84 = 38.1 ops/s. Counting completions sees 4 bursts of 32 in one window (42.7 ops/s) and 3
    in the same window opened 0.2 s earlier (32.0 ops/s): the two figures the bench used to print."""
    spans = [(index * 0.84, (index + 1) * 0.84) for _user in range(32) for index in range(10)]
    for opened, bursts in ((0.5, 4), (0.3, 3)):
        completions = sum(1 for _started, ended in spans if opened <= ended <= opened + 3.0)
        assert completions == bursts * 32
        assert work_within(spans, opened, opened + 3.0) / 3.0 == pytest.approx(32 / 0.84)
