"""A short soak under faults is part of `make test` (issue 23 item 3; `make soak` runs the long one).

60 s of sign-ins, a refresh storm (with racing pairs) and gateway calls across two facade replicas on
Redis Sentinel, while a replica is SIGKILLed and restarted, replication is cut and the primary killed
(the promoted replica lacks the last rotations), and Redis is paused. It fails on a lost family, a
duplicate successor, or a 5xx outside the fault windows.
"""

from __future__ import annotations

import json

import pytest

from bench.soak import SETTLE_S, MasterWatch, Tally, Window, failed, soak, summary
from tests.sentinels import DOWN_AFTER_MS


async def test_a_short_soak_loses_no_family_and_gives_no_5xx_outside_faults() -> None:
    """Every fault ran; no family lost, no duplicate successor, no 5xx outside a fault window, the
    gateway answered every call; and the failover really lost rotations (some family resumed)."""
    result = await soak(60, users=12, replicas=2, period_s=15)
    kinds = {entry.split(":")[0] for entry in result["faults"]}
    assert kinds == {"kill_facade", "failover", "pause_redis"}, result
    if failed(result):
        pytest.fail("goals missed: " + ", ".join(failed(result)) + "\n" + json.dumps(result, indent=1))
    assert result["families_resumed_after_failover"] > 0, result
    assert result["refreshes"] > 1000 and result["gateway_calls"] > 100 and result["signins"] > 12, result


def test_a_5xx_counts_against_the_fault_it_was_in_flight_during() -> None:
    """A request sent just before Redis paused and answered 503 a second later is the pause's; a 5xx
    answered before the fault began, or sent after the settle time, is a stray (counted and placed)."""
    tally = Tally(windows=[Window("pause_redis", start=100.0, end=102.5)])
    tally.errors_5xx = [(99.98, 101.0, "in flight when the pause began"),
                        (99.0, 99.5, "before the pause"),
                        (102.5 + SETTLE_S + 0.1, 102.5 + SETTLE_S + 0.2, "after the settle time")]
    tally.latencies = [(sent, answered) for sent, answered, _ in tally.errors_5xx]
    result = summary(tally, 10.0, ["pause_redis: 2.5 s"])
    assert result["5xx_in_faults"] == 1
    assert result["5xx_outside_faults"] == 2
    assert result["5xx_outside_faults_sample"][0].startswith("before the pause (sent -1.00 s from the start of")
    assert failed(result) == ["5xx_outside_faults"]


def test_a_failover_the_schedule_did_not_cause_becomes_a_fault_window() -> None:
    """Sentinels promoting the replica on their own (a starved primary) open a window from DOWN_AFTER_MS
    before the last poll that saw the old primary to the poll that saw the new one: a 503 sent in it is
    the failover's, and a sign-in made then counts as lost in a failover, not as a lost family. A change
    inside a scheduled failover, or no change, opens none."""
    tally = Tally(windows=[Window("failover", start=50.0, end=60.0)])
    watch = MasterWatch(tally, primary=7000, now=0.0)
    assert watch.observe(7000, 10.0) is None
    assert watch.observe(7001, 55.0) is None  # the scheduled failover's own promotion
    assert watch.observe(7001, 80.0) is None
    window = watch.observe(7000, 80.5)
    assert window is not None and window.kind == "unscheduled_failover"
    assert (window.start, window.end) == (80.0 - DOWN_AFTER_MS / 1000, 80.5)
    tally.errors_5xx = [(78.0, 79.0, "during the unscheduled failover")]
    tally.latencies = [(78.0, 79.0)]
    assert summary(tally, 100.0, [])["5xx_outside_faults"] == 0
    assert tally.failover_covers(79.0) and not tally.failover_covers(70.0)
