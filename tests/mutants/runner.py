"""The defence-mutant runner behind `make test-mutants` (issue 22; how to add a mutant: docs/mutants.md).

A mutant removes or weakens one check that protects a user. The catalogue (tests/mutants/catalogue.toml)
names, for each, the file, the exact original text, its replacement, what the defence protects and the
pytest node ids that must fail once it is gone. The runner:

1. checks the catalogue: unique ids, every field present, and every `original` occurring exactly once in
   its file, so a mutant whose code moved fails loudly ("drifted") instead of silently passing;
2. copies the tree into scratch directories under the system temp dir, one per worker, so an interrupted
   run can never leave a mutant behind in the working tree;
3. runs every named test once on the unmutated copies: a test that fails without a mutant proves nothing;
4. applies each mutant in turn, runs only its tests (`-x`: the first failure kills it), puts the file back;
5. prints and writes a report (build/mutants/report.md and .json): the mutation score and every mutant
   that survived. Exit status 0 only when every mutant is killed, except those marked `equivalent` (with
   the reason why no test can tell them apart), which must survive; one that is killed is an error too,
   since its mark is then wrong.

Pytest exit codes: 0 the mutant survived; 1 (tests failed) or 2 (collection failed on the mutant) killed
it; anything else (no tests, a node id that does not exist) is an error in the catalogue.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path(__file__).resolve().parent / "catalogue.toml"
FORKSERVER = Path(__file__).resolve().parent / "forkserver.py"
REPORT_DIR = Path("build") / "mutants"
# Not copied into the scratch trees: nothing a unit test reads, and large.
IGNORED = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache",
                                 "build", "dist", "*.egg-info", ".mutants-*")
REQUIRED = ("id", "file", "original", "replacement", "protects", "tests")
# Source roots of the repository's other distributions (verifier/: oauth-facade-verifier). The venv installs
# them editable from wherever it was built, possibly another checkout: the scratch copies of these roots go
# first on the forked pytest's path, so the code the tests import is the scratch copy, mutant included.
SOURCE_ROOTS = ("verifier",)
TIMEOUT_S = 300


class CatalogueError(Exception):
    """The catalogue cannot be run as written (a drifted mutant, a missing field...)."""


@dataclass
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    protects: str
    tests: list[str]
    equivalent: str | None = None
    survives: str | None = None  # a known survivor: the test still to write (the list may only shrink)


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | equivalent | equivalent-killed | known-survivor | survivor-killed | error
    seconds: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("killed", "equivalent", "known-survivor")


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    baseline_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.mutant.equivalent is None]

    @property
    def killed(self) -> int:
        return sum(1 for o in self.counted if o.status == "killed")

    @property
    def score(self) -> float:
        return 100.0 * self.killed / len(self.counted) if self.counted else 100.0

    @property
    def ok(self) -> bool:
        return not self.baseline_failures and all(o.ok for o in self.outcomes)


def load(catalogue: Path, root: Path) -> list[Mutant]:
    """The catalogue's mutants, or CatalogueError naming every entry that cannot run as written."""
    data = tomllib.loads(catalogue.read_text(encoding="utf-8"))
    entries = data.get("mutant", [])
    problems: list[str] = []
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = entry.get("id", f"entry #{index + 1}")
        missing = [key for key in REQUIRED if key not in entry or (key != "replacement" and not entry[key])]
        unknown = sorted(set(entry) - {*REQUIRED, "equivalent", "survives"})
        if missing or unknown:
            problems.append(f"{name}: missing {missing}" if missing else f"{name}: unknown keys {unknown}")
            continue
        if name in seen:
            problems.append(f"{name}: id used twice")
        seen.add(name)
        if entry["original"] == entry["replacement"]:
            problems.append(f"{name}: the replacement equals the original")
        if not isinstance(entry["tests"], list) or not all(isinstance(t, str) for t in entry["tests"]):
            problems.append(f"{name}: tests must be a list of pytest node ids")
            continue
        path = root / entry["file"]
        if not path.is_file():
            problems.append(f"{name}: {entry['file']} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(entry["original"])
        if count != 1:
            problems.append(f"{name}: drifted: the original text occurs {count} times in {entry['file']} "
                            "(it must occur exactly once; update the mutant to the code as it is now)")
            continue
        mutants.append(Mutant(**entry))
    if problems:
        raise CatalogueError("\n".join(problems))
    return mutants


def python_path(tree: Path) -> list[str]:
    """The scratch tree's import roots, first on the path: the tree itself and each of SOURCE_ROOTS it has
    (ahead of site-packages, whose editable finders point at the checkout the venv was built from)."""
    return [str(tree), *(str(tree / name) for name in SOURCE_ROOTS if (tree / name).is_dir())]


class Worker:
    """A pytest runner for one scratch tree: tests/mutants/forkserver.py, which imports the third-party
    libraries once and forks a fresh pytest per job (the product and the tests are imported by each job,
    so each sees the tree as it is then, mutant included)."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path(tree)), "PYTHONDONTWRITEBYTECODE": "1"}
        self.process = subprocess.Popen([sys.executable, str(FORKSERVER)], cwd=tree, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.log = tree.parent / f"{tree.name}.log"

    def pytest(self, node_ids: list[str]) -> tuple[int, str]:
        """(pytest's exit code or -1 on timeout, its output)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"tests": node_ids, "log": str(self.log), "timeout": TIMEOUT_S}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the mutant worker died")
        rc = int(json.loads(answer)["rc"])
        output = self.log.read_text(encoding="utf-8", errors="replace").strip()
        return rc, output if rc != -1 else f"timed out after {TIMEOUT_S} s\n{output}"

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _last_lines(text: str, count: int = 12) -> str:
    return "\n".join(text.splitlines()[-count:])


def _run_one(worker: Worker, mutant: Mutant) -> Outcome:
    path = worker.tree / mutant.file
    original = path.read_text(encoding="utf-8")
    started = time.monotonic()
    try:
        path.write_text(original.replace(mutant.original, mutant.replacement, 1), encoding="utf-8")
        rc, output = worker.pytest(mutant.tests)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    killed = rc in (1, 2, -1)  # -1: a test hung on the mutant (pytest-timeout did not fire first)
    if rc not in (0, 1, 2, -1):
        return Outcome(mutant, "error", seconds, f"pytest exit code {rc}:\n{_last_lines(output)}")
    if mutant.equivalent is not None:
        status = "equivalent-killed" if killed else "equivalent"
    elif mutant.survives is not None:
        status = "survivor-killed" if killed else "known-survivor"
    else:
        status = "killed" if killed else "survived"
    return Outcome(mutant, status, seconds,
                   "" if status in ("killed", "equivalent", "known-survivor") else _last_lines(output))


def _baseline(worker: Worker, node_ids: list[str]) -> list[str]:
    """Node ids that do not pass on the unmutated tree (with pytest's words), or []."""
    if not node_ids:
        return []
    rc, output = worker.pytest(["--maxfail=1000", *node_ids])
    return [] if rc == 0 else [f"pytest exit code {rc}:\n{_last_lines(output, 30)}"]


def run(mutants: list[Mutant], root: Path, jobs: int, echo: Callable[[str], None] = print) -> Run:
    """Apply every mutant in scratch copies of `root`, `jobs` at a time."""
    started = time.monotonic()
    result = Run()
    jobs = max(1, min(jobs, len(mutants)))
    scratch = Path(tempfile.mkdtemp(prefix="oauth-facade-mutants-"))
    workers: list[Worker] = []
    try:
        for index in range(jobs):
            tree = scratch / f"tree{index}"
            shutil.copytree(root, tree, ignore=IGNORED, symlinks=True)
            workers.append(Worker(tree))
        node_ids = sorted({node for mutant in mutants for node in mutant.tests})
        halves = [node_ids[index::jobs] for index in range(jobs)]
        echo(f"baseline: {len(node_ids)} tests on the unmutated tree")
        failures: list[list[str]] = [[] for _ in workers]
        threads = [threading.Thread(target=lambda i=i: failures[i].extend(_baseline(workers[i], halves[i])))
                   for i in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.baseline_failures = [line for part in failures for line in part]
        if result.baseline_failures:
            result.seconds = time.monotonic() - started
            return result
        work: queue.Queue[Mutant] = queue.Queue()
        for mutant in mutants:
            work.put(mutant)
        lock = threading.Lock()

        def drain(worker: Worker) -> None:
            while True:
                try:
                    mutant = work.get_nowait()
                except queue.Empty:
                    return
                outcome = _run_one(worker, mutant)
                with lock:
                    result.outcomes.append(outcome)
                    echo(f"[{len(result.outcomes):>3}/{len(mutants)}] {outcome.status:<17} "
                         f"{outcome.seconds:5.1f}s  {mutant.id}")

        threads = [threading.Thread(target=drain, args=(worker,)) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for worker in workers:
            worker.close()
        shutil.rmtree(scratch, ignore_errors=True)
    order = {mutant.id: index for index, mutant in enumerate(mutants)}
    result.outcomes.sort(key=lambda o: order[o.mutant.id])
    result.seconds = time.monotonic() - started
    return result


def report(result: Run) -> str:
    lines = ["# Defence mutants", ""]
    if result.baseline_failures:
        lines += ["FAILED: the named tests do not all pass on the unmutated tree, so no mutant was run.", "",
                  *result.baseline_failures, ""]
        return "\n".join(lines)
    equivalents = [o for o in result.outcomes if o.mutant.equivalent is not None]
    lines += [f"Mutation score: {result.score:.1f}% ({result.killed} of {len(result.counted)} killed; "
              f"{len(equivalents)} documented equivalent(s) not counted); {result.seconds:.0f} s wall time.", ""]
    bad = [o for o in result.outcomes if not o.ok]
    if bad:
        lines += ["## Not killed as required", ""]
        for o in bad:
            what = {"survived": "SURVIVED: no listed test fails without this defence; write the test",
                    "equivalent-killed": "KILLED although marked equivalent: remove the `equivalent` mark",
                    "survivor-killed": "KILLED although marked `survives`: remove the mark (the test exists now)",
                    "error": "ERROR running its tests"}[o.status]
            lines += [f"- {o.mutant.id} ({o.mutant.file}): {what}", f"  protects: {o.mutant.protects}"]
            if o.detail:
                lines += ["  " + line for line in o.detail.splitlines()]
        lines.append("")
    known = [o for o in result.outcomes if o.status == "known-survivor"]
    if known:
        lines += [f"## Known survivors: {len(known)} tests still to write (counted as not killed)", ""]
        lines += [f"- {o.mutant.id} ({o.mutant.file}): {o.mutant.survives}" for o in known]
        lines.append("")
    lines += ["## Every mutant", "", "| status | seconds | id | protects |", "|---|---|---|---|"]
    for o in result.outcomes:
        lines.append(f"| {o.status} | {o.seconds:.1f} | {o.mutant.id} | {o.mutant.protects} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply each defence mutant and require a test to kill it.")
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE)
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree to copy and mutate")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutant ids")
    parser.add_argument("--report-dir", type=Path, default=None, help="default: ROOT/build/mutants")
    parser.add_argument("--check", action="store_true", help="only check the catalogue (no tests run)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the scratch trees are removed on the way out
    root = args.root.resolve()
    try:
        mutants = load(args.catalogue, root)
    except CatalogueError as exc:
        print(f"the mutant catalogue cannot run as written:\n{exc}", file=sys.stderr)
        return 2
    if args.only is not None:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            print(f"no such mutant(s): {sorted(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in args.only]
    if args.check:
        print(f"{len(mutants)} mutants, every original text found exactly once")
        return 0
    print(f"{len(mutants)} mutants, {args.jobs} at a time")
    result = run(mutants, root, args.jobs)
    text = report(result)
    print(text)
    report_dir = args.report_dir or root / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.md").write_text(text, encoding="utf-8")
    (report_dir / "report.json").write_text(json.dumps({
        "score": round(result.score, 1), "killed": result.killed, "counted": len(result.counted),
        "seconds": round(result.seconds, 1), "baseline_failures": result.baseline_failures,
        "mutants": [{"id": o.mutant.id, "file": o.mutant.file, "status": o.status, "seconds": round(o.seconds, 1),
                     "protects": o.mutant.protects} for o in result.outcomes],
    }, indent=2) + "\n", encoding="utf-8")
    print(f"report written to {report_dir / 'report.md'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
