"""A short soak under faults is part of `make test` (issue 23 item 3; `make soak` runs the long one).

60 s of sign-ins, a refresh storm (with racing pairs) and gateway calls across two facade replicas on
Redis Sentinel, while a replica is SIGKILLed and restarted, replication is cut and the primary killed
(the promoted replica lacks the last rotations), and Redis is paused. It fails on a lost family, a
duplicate successor, or a 5xx outside the fault windows.
"""

from __future__ import annotations

from bench.soak import failed, soak


async def test_a_short_soak_loses_no_family_and_gives_no_5xx_outside_faults() -> None:
    """Every fault ran; no family lost, no duplicate successor, no 5xx outside a fault window, the
    gateway answered every call; and the failover really lost rotations (some family resumed)."""
    result = await soak(60, users=12, replicas=2, period_s=15)
    kinds = {entry.split(":")[0] for entry in result["faults"]}
    assert kinds == {"kill_facade", "failover", "pause_redis"}, result
    assert failed(result) == [], result
    assert result["families_resumed_after_failover"] > 0, result
    assert result["refreshes"] > 1000 and result["gateway_calls"] > 100 and result["signins"] > 12, result
