"""`--profile`: sample the facade with py-spy while a figure is replayed, and name its hot spots.

The profiled replays are never kept as figures (the sampler costs the process some time); they exist
to answer "where does the facade spend its CPU" with the facade's own functions, by self time and by
inclusive time, from py-spy's raw (collapsed-stack) output.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

TOP = 18
PROXY_DIR = str(Path(__file__).resolve().parent.parent / "proxy") + "/"


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`edge (/…/proxy/web/middleware.py:42)` → `edge (proxy/web/middleware.py)`: one row per function.

    The facade's files are named from the checkout (`proxy/…`), libraries from site-packages, the
    standard library from its lib directory, so the facade's own frames can be picked out.
    """
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith(PROXY_DIR):
        path = "proxy/" + path[len(PROXY_DIR):]
    elif "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{name} ({path})"


def summarize(raw: str) -> str:
    """Top frames by self and inclusive samples, as Markdown; the facade's own frames are marked."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples (is py-spy allowed to ptrace?)"
    lines = [f"{total} samples of the facade's CPU time", "", "| self % | function |", "|---:|---|"]
    lines += [f"| {count / total * 100:.1f} | {name} |" for name, count in own.most_common(TOP)]
    lines += ["", "| inclusive % | facade function (proxy/) |", "|---:|---|"]
    entry = ("(proxy/__main__.py)", "(proxy/serve.py)")  # on every stack: they say nothing
    facade = [(name, count) for name, count in inclusive.most_common()
              if "(proxy/" in name and not name.endswith(entry)]
    lines += [f"| {count / total * 100:.1f} | {name} |" for name, count in facade[:TOP]]
    return "\n".join(lines)


class Recorder:
    """py-spy record on one pid for the duration of a `with` block."""

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Recorder:
        binary = py_spy()
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "200", "--full-filenames",
             "--output",
             str(self.output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attach before the load starts
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def summary(self) -> str:
        try:
            return summarize(self.output.read_text())
        except OSError as exc:
            return f"no profile: {exc}"
