"""A short soak under faults is part of `make test` (issue 23 item 3; `make soak` runs the long one).

60 s of sign-ins, a refresh storm (with racing pairs) and gateway calls across two facade replicas on
Redis Sentinel, while a replica is SIGKILLed and restarted, replication is cut and the primary killed
(the promoted replica lacks the last rotations), and Redis is paused. It fails on a lost family, a
duplicate successor, or a 5xx outside the fault windows.
"""

from __future__ import annotations

import json

import pytest

from bench.soak import SETTLE_S, Tally, Window, failed, soak, summary


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
