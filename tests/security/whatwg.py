"""Node's WHATWG `URL`, the parser browsers implement, as a second opinion on redirect URIs.

One node process per test session answers batches over a pipe (`whatwg_url.mjs`), so a corpus or a
Hypothesis run costs one process start, not one per URI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.programs import program

SCRIPT = Path(__file__).with_name("whatwg_url.mjs")


class WhatwgUrl:
    """`parse(uris)` -> for each URI, node's `new URL(uri)` fields or `{"error": ...}`."""

    def __init__(self) -> None:
        node = program("node")
        self.process = subprocess.Popen([node, str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, encoding="utf-8")
        self.version = subprocess.run([node, "-p", "process.versions.node + ' ada ' + process.versions.ada"],
                                      capture_output=True, text=True, check=True).stdout.strip()

    def parse(self, uris: list[str]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(uris) + "\n")  # ASCII: lone surrogates travel as \ud800
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"node stopped (exit {self.process.poll()})")
        parsed: list[dict[str, Any]] = json.loads(answer)
        assert len(parsed) == len(uris)
        return parsed

    def parse_one(self, uri: str) -> dict[str, Any]:
        return self.parse([uri])[0]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
