"""`python -m bench.redis_client` runs on a fresh machine: it starts its redis-server, measures both
clients, prints one line per client and stops its server. (Its figures are for bench/README; no speed
is asserted here.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^  (redis-py|facade)\s+(\d+\.\d) µs   (\d+\.\d)(?: / \d+\.\d)*$", re.MULTILINE)


def test_the_redis_client_benchmark_reports_both_clients() -> None:
    """Both clients answered every SET (the run would raise otherwise) and each has a median figure."""
    done = subprocess.run([sys.executable, "-m", "bench.redis_client", "--rounds", "2", "--commands", "64",
                           "--concurrency", "4"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    reported = {match[0]: float(match[1]) for match in LINE.findall(done.stdout)}
    assert set(reported) == {"redis-py", "facade"}, done.stdout
    assert all(value > 0 for value in reported.values())
