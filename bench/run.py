"""The orchestrator: start every process of a run, ask the load generator for each figure, report.

Fairness on a small shared machine: every server (the ceiling, the bare baseline, the facade, its
`--workers 2` and variant twins) is started before the first figure and idles while another is
measured (an idle aiohttp process costs nothing); figures that are compared are measured in
interleaved rounds, the median kept; a window that other processes disturbed is measured again once
the machine is quiet. FastMCP, in its own venv, is started last.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import profile
from bench.cpu import group_seconds, machine_busy_seconds, process_tree
from bench.procs import LOOPBACK, Proc, Processes, StartError, free_port, start_redis, wait_http

Json = dict[str, Any]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
FASTMCP_VENV = HERE / ".fastmcp-venv"
FASTMCP_REQUIREMENTS = HERE / "fastmcp-requirements.txt"
UPSTREAM_CLIENT_ID = "bench-facade"
UPSTREAM_SECRET = "bench-upstream-secret"
DISCOVERY = "/.well-known/oauth-authorization-server"
EXCHANGE_STRETCH = 2.0  # the exchange figure is measured once, so over a longer window
DISTURBED_PCT = 10.0  # other load during a window above which it is measured again once the machine is quiet
QUIET_CORES = 0.10


@dataclass(frozen=True)
class Options:
    duration: float = 1.5
    warmup: float = 0.5
    rounds: int = 3
    concurrency: int = 32
    cap: int = 100_000
    fastmcp: bool = True
    workers: bool = True
    variants: bool = True
    profile: bool = False
    quiet_wait: float = 90.0
    results: Path = HERE / "results"
    command: str = "python -m bench"


def _versions() -> dict[str, str]:
    found = {}
    for name in ("oauth-facade", "aiohttp", "uvloop", "hiredis", "redis", "joserfc", "cryptography"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> Json:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    redis = shutil.which("redis-server") or "/usr/bin/redis-server"
    try:
        version = subprocess.run([redis, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
        redis_version = next((word[2:] for word in version if word.startswith("v=")), "unknown")
    except OSError:
        redis_version = "missing"
    return {"cores": os.cpu_count() or 1, "cpu": cpu, "python": platform.python_version(), "redis": redis_version,
            "libraries": _versions()}


def listeners(port: int) -> int:
    """How many sockets LISTEN on 127.0.0.1:port: one per `--workers` process with SO_REUSEPORT."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            count += 1
    return count


def extras_loaded(proc: Proc) -> str:
    """Which optional extras the serving processes really mapped, read from /proc/<pid>/maps."""
    loaded: set[str] = set()
    for pid in proc.tree():
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        loaded.update(name for name in ("uvloop", "hiredis") if f"/{name}/" in maps)
    return ", ".join(f"{name} {'yes' if name in loaded else 'no'}" for name in ("uvloop", "hiredis"))


def _shadow(directory: Path, modules: tuple[str, ...]) -> Path:
    """A directory whose modules make `import uvloop` / `import hiredis` fail, as if not installed.

    The facade and redis-py both fall back on ImportError, so putting it first on PYTHONPATH runs the
    unchanged facade without an extra; /proc/<pid>/maps then confirms the extension was not loaded.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for module in modules:
        (directory / f"{module}.py").write_text(f'raise ImportError("{module} disabled by the bench")\n')
    return directory


class Bench:
    """One run: the processes, the load generator, the measurements."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.logdir = Path(tempfile.mkdtemp(prefix="oauth-facade-bench-"))
        self.procs = Processes(self.logdir)
        self.results: dict[str, Json] = {}
        self.notes: list[str] = []
        self.profiles: dict[str, str] = {}
        self.run_info: Json = {}
        self.quiet_budget = options.quiet_wait
        self.waited = 0.0

    # -- processes ------------------------------------------------------------------------------
    def _python(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        port = free_port()
        proc = self.procs.start(name, [sys.executable, "-m", module, "--port", str(port), *args], env=env,
                                port=port, cwd=ROOT)
        wait_http(proc, f"http://{LOOPBACK}:{port}/healthz")
        return proc

    def start_facade(self, name: str, *, workers: int = 1, env: dict[str, str] | None = None,
                     without: tuple[str, ...] = ()) -> Proc:
        """`oauth-facade serve` as a user starts it, configured only through PROXY_* variables."""
        port = free_port()
        clean = {key: value for key, value in os.environ.items() if not key.startswith("PROXY_")}
        settings = {
            "PROXY_ISSUER": f"http://{LOOPBACK}:{port}", "PROXY_HOST": LOOPBACK, "PROXY_PORT": str(port),
            "PROXY_REDIS_URL": f"redis://{LOOPBACK}:{self.redis.port}/0",
            "PROXY_UPSTREAM_ISSUER": self.idp_url, "PROXY_UPSTREAM_CLIENT_ID": UPSTREAM_CLIENT_ID,
            "PROXY_UPSTREAM_CLIENT_SECRET": UPSTREAM_SECRET, "PROXY_CONSENT": "off", "PROXY_RATE_LIMITS": "off",
            "PROXY_LOG_LEVEL": "warning", **(env or {}),
        }
        if without:
            shadow = _shadow(self.logdir / ("no-" + "-".join(without)), without)
            settings["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), clean.get("PYTHONPATH")]))
        argv = [str(VENV_BIN / "oauth-facade"), "serve", "--workers", str(workers)]
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            # A work directory of its own, so a stray .env in the checkout cannot change the settings.
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**clean, **settings}, cwd=self.logdir)
        proc = Proc(name, process, log, port)
        self.procs.started.append(proc)
        wait_http(proc, f"http://{LOOPBACK}:{port}/readyz")
        deadline = time.monotonic() + 30
        while listeners(port) < workers:  # every worker must listen before connections are spread
            if time.monotonic() > deadline:
                raise StartError(f"{name}: {listeners(port)} of {workers} workers listen:\n{proc.tail()}")
            time.sleep(0.1)
        if workers > 1:
            for _ in range(workers * 4):  # each worker loads the shared keyset and answers
                wait_http(proc, f"http://{LOOPBACK}:{port}/readyz")
        return proc

    def ensure_fastmcp(self) -> str | None:
        """The FastMCP venv's python, creating bench/.fastmcp-venv on first use; None with a note on failure."""
        python = FASTMCP_VENV / "bin" / "python"
        marker = FASTMCP_VENV / ".installed"
        wanted = FASTMCP_REQUIREMENTS.read_text()
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return str(python)
        print("bench: installing FastMCP into bench/.fastmcp-venv (first run only)...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(FASTMCP_VENV)], check=True, capture_output=True,
                           timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                            str(FASTMCP_REQUIREMENTS)], check=True, capture_output=True, timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            tail = detail.decode(errors="replace").strip().splitlines()[-3:] if detail else [str(exc)]
            self.run_info["fastmcp_skipped"] = "FastMCP could not be installed: " + " / ".join(tail)
            return None
        marker.write_text(wanted)
        return str(python)

    # -- measuring -------------------------------------------------------------------------------
    def start_loadgen(self) -> None:
        log = (self.logdir / "loadgen.log").open("w")
        self.loadgen = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)

    def foreign_load(self, seconds: float = 0.3) -> float:
        """Cores used meanwhile by processes that are not this run's (this process and its descendants)."""
        mine = process_tree(os.getpid())
        busy, ours = machine_busy_seconds(), group_seconds(mine)
        time.sleep(seconds)
        return max(0.0, (machine_busy_seconds() - busy) - (group_seconds(mine) - ours)) / seconds

    def wait_quiet(self) -> None:
        """Wait, within the run's budget, until nothing else loads the machine."""
        announced = False
        while self.quiet_budget > 0:
            load = self.foreign_load()
            if load < QUIET_CORES:
                return
            if not announced:
                print(f"  (another process uses {load * 100:.0f} % of a core: waiting for it, at most "
                      f"{self.quiet_budget:.0f} s more in this run)", file=sys.stderr)
                announced = True
            time.sleep(1.0)
            self.quiet_budget -= 1.3
            self.waited += 1.3

    def measure(self, key: str, scenario: Json, server: Proc, *, duration: float | None = None) -> Json:
        """One window, measured again once the machine is quiet if something else ran meanwhile."""
        result = self._measure(key, scenario, server, duration=duration)
        if result.get("other_cpu_pct", 0.0) > DISTURBED_PCT and self.quiet_budget > 0:
            self.wait_quiet()
            again = self._measure(key, scenario, server, duration=duration)
            if again.get("other_cpu_pct", 100.0) < result["other_cpu_pct"]:
                result = again
        return result

    def _measure(self, key: str, scenario: Json, server: Proc, *, duration: float | None = None) -> Json:
        """One window of one figure; the answer gets per-operation CPU and the load around it."""
        options = self.options
        duration = duration or options.duration
        command = {"scenario": scenario, "concurrency": options.concurrency, "warmup": options.warmup,
                   "duration": duration, "cap": options.cap,
                   "groups": {"server": server.tree(), "redis": [self.redis.pid], "idp": [self.idp.pid]}}
        assert self.loadgen.stdin is not None and self.loadgen.stdout is not None
        self.loadgen.stdin.write(json.dumps(command) + "\n")
        self.loadgen.stdin.flush()
        ready, _, _ = select.select([self.loadgen.stdout], [], [], 120 + 4 * duration)
        line = self.loadgen.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the load generator did not answer for {key}; see {self.logdir}/loadgen.log")
        result: Json = json.loads(line)
        if "rate" in result:
            seconds = result["seconds"] or float("nan")
            ops = result.get("work", result["ops"]) or float("nan")  # CPU per op over the same work as the rate
            ours = sum(result["cpu"].values()) + result["client_cpu_s"]
            result["cpu_us_per_op"] = {name: value / ops * 1e6 for name, value in result["cpu"].items()}
            result["server_cpu_pct"] = result["cpu"]["server"] / seconds * 100
            result["client_cpu_pct"] = result["client_cpu_s"] / seconds * 100
            result["other_cpu_pct"] = max(0.0, result["machine_busy_s"] - ours) / seconds * 100
            result["disturbed"] = result["other_cpu_pct"] > DISTURBED_PCT
            print(f"  {key:30} {result['rate']:>9,.1f} ops/s  p50 {result['p50_ms']:7.2f} ms  "
                  f"p99 {result['p99_ms']:7.2f} ms  server {result['cpu_us_per_op']['server']:8,.0f} µs/op "
                  f"({result['server_cpu_pct']:3.0f} %)  client {result['client_cpu_pct']:3.0f} %  "
                  f"other {result['other_cpu_pct']:3.0f} %  errors {result['errors']}", file=sys.stderr)
        else:
            print(f"  {key:30} FAILED: {result.get('failed')}", file=sys.stderr)
        return result

    def spec(self, figure: str, server: Proc) -> Json:
        """The load generator's description of `figure` against `server`."""
        base = f"http://{LOOPBACK}:{server.port}"
        if figure == "hello":
            return {"kind": "get", "url": base + "/"}
        if figure == "discovery":
            return {"kind": "get", "url": base + DISCOVERY}
        if figure == "jwks":
            return {"kind": "get", "url": base + "/jwks"}
        if figure == "exchange":
            # Codes are minted by real flows before the clock; the window ends when they run out.
            duration = self.options.duration * EXCHANGE_STRETCH
            return {"kind": "exchange", "base": base, "pool": max(300, int(800 * duration)),
                    "mint_seconds": 3 * duration}
        return {"kind": figure, "base": base}

    def interleaved(self, targets: list[tuple[str, Proc, str]], rounds: int, duration: float | None = None) -> None:
        """Measure each (key, server, figure) `rounds` times, rotating the order each round.

        Throughput on a shared 2-core VM drifts by several % within a minute; interleaving puts every
        target under the same drift, and the median round of each is kept (all rounds stay in the JSON).
        """
        runs: dict[str, list[Json]] = {key: [] for key, _, _ in targets}
        for index in range(rounds):
            shift = index % len(targets)
            for key, proc, figure in targets[shift:] + targets[:shift]:
                runs[key].append(self.measure(key, self.spec(figure, proc), proc, duration=duration))
        for key, proc, _ in targets:
            good = sorted((run for run in runs[key] if "rate" in run), key=lambda run: run["rate"])
            chosen = dict(good[len(good) // 2]) if good else dict(runs[key][0])
            chosen["rounds"] = [round(run.get("rate", float("nan")), 1) for run in runs[key]]
            chosen["extras"] = extras_loaded(proc)
            self.results[key] = chosen

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> Json:
        started = time.monotonic()
        stamp = datetime.now(UTC)
        options = self.options
        rounds = options.rounds
        try:
            print(f"bench: logs in {self.logdir}", file=sys.stderr)
            self.redis = start_redis(self.procs)
            self.idp = self._python("stub-idp", "bench.servers.stub_idp", "--client-id", UPSTREAM_CLIENT_ID)
            self.idp_url = f"http://{LOOPBACK}:{self.idp.port}"
            hello = self._python("hello", "bench.servers.hello")
            # The same server with one middleware that does nothing: aiohttp then builds a handler chain
            # and adds its own current-app middleware to every request; no app with a middleware (the
            # facade's error rendering is one) can be faster than this on the static GETs.
            hello_mw = self._python("hello-middleware", "bench.servers.hello", "--middleware")
            bare = self._python("bare", "bench.servers.bare", "--redis-url",
                                f"redis://{LOOPBACK}:{self.redis.port}/0", "--upstream-issuer", self.idp_url,
                                "--client-id", UPSTREAM_CLIENT_ID, env={"BENCH_UPSTREAM_SECRET": UPSTREAM_SECRET})
            # Every facade of the run starts now and idles while the others are measured.
            facade = self.start_facade("facade")
            self.run_info["facade_extras"] = extras_loaded(facade)
            workers = self.start_facade("facade-workers2", workers=2) if options.workers else None
            variants: dict[str, Proc] = {}
            if options.variants:
                variants["no-uvloop"] = self.start_facade("facade-no-uvloop", without=("uvloop",))
                variants["no-hiredis"] = self.start_facade("facade-no-hiredis", without=("hiredis",))
                variants["es256"] = self.start_facade("facade-es256", env={
                    "PROXY_SIGNING_ALG": "ES256", "PROXY_REDIS_PREFIX": "oauthfacade-es256:"})
            self.start_loadgen()
            self.wait_quiet()

            def group(figure: str, *, bare_too: bool, variant_names: tuple[str, ...]) -> list[tuple[str, Proc, str]]:
                """The default facade, the bare baseline, --workers 2 and the variants, for one figure."""
                targets = [(f"facade.{figure}", facade, figure)]
                if bare_too:
                    targets.append((f"bare.{figure}", bare, figure))
                if workers is not None:
                    targets.append((f"workers2.{figure}", workers, figure))
                targets += [(f"variant.{name}.{figure}", variants[name], figure)
                            for name in variant_names if name in variants]
                return targets

            print(f"bench: the ceiling and the static GETs ({rounds} interleaved rounds)", file=sys.stderr)
            self.interleaved([("ceiling", hello, "hello")], 1)  # a first touch, so round one is not colder
            self.results.pop("ceiling")
            static = [("ceiling", hello, "hello"), ("ceiling.middleware", hello_mw, "hello"),
                      *group("discovery", bare_too=False, variant_names=("no-uvloop",))]
            static.insert(2, ("facade.jwks", facade, "jwks"))
            self.interleaved(static, rounds)
            print("bench: /register", file=sys.stderr)
            self.interleaved(group("register", bare_too=True, variant_names=("no-uvloop", "no-hiredis")), rounds)
            print("bench: full flow", file=sys.stderr)
            self.interleaved(group("flow", bare_too=True, variant_names=("no-uvloop", "no-hiredis", "es256")),
                             max(1, rounds - 1))
            print("bench: refresh", file=sys.stderr)
            self.interleaved(group("refresh", bare_too=True, variant_names=("no-hiredis", "es256")), rounds)
            print("bench: code exchange (codes minted by real flows before each window)", file=sys.stderr)
            self.interleaved([("facade.exchange", facade, "exchange"), ("bare.exchange", bare, "exchange")], 1,
                             duration=options.duration * EXCHANGE_STRETCH)
            if options.profile:
                self.profile_facade(facade)
            for proc in [facade, bare, hello, hello_mw, *([workers] if workers else []), *variants.values()]:
                self.procs.stop(proc)

            if options.fastmcp:
                self.fastmcp()
            else:
                self.run_info["fastmcp_skipped"] = "skipped with --no-fastmcp"
        finally:
            if hasattr(self, "loadgen") and self.loadgen.stdin is not None:
                self.loadgen.stdin.close()
                try:
                    self.loadgen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.loadgen.kill()
            self.procs.stop_all()
        self.notes.append("Every figure comes from one run on this machine; the ratios, not the absolute "
                          "numbers, are what compares across machines.")
        self.run_info["waited_for_quiet_s"] = round(self.waited, 1)
        return {"stamp": stamp.strftime("%Y%m%dT%H%M%SZ"), "started": stamp.strftime("%Y-%m-%d %H:%M UTC"),
                "command": options.command, "elapsed_s": time.monotonic() - started, "machine": machine(),
                "config": {"duration": options.duration, "warmup": options.warmup, "rounds": rounds,
                           "concurrency": options.concurrency, "cap": options.cap},
                "results": self.results, "notes": self.notes, "profiles": self.profiles, **self.run_info}

    def fastmcp(self) -> None:
        python = self.ensure_fastmcp()
        if python is None:
            print(f"bench: {self.run_info['fastmcp_skipped']}", file=sys.stderr)
            return
        version = subprocess.run([python, "-c", "import fastmcp; print(fastmcp.__version__)"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        self.run_info["fastmcp_version"] = version
        print(f"bench: FastMCP {version} OAuthProxy, full flow", file=sys.stderr)
        port = free_port()
        proc = self.procs.start("fastmcp", [
            python, str(HERE / "servers" / "fastmcp_app.py"), "--port", str(port), "--upstream-issuer",
            self.idp_url, "--client-id", UPSTREAM_CLIENT_ID, "--client-secret", UPSTREAM_SECRET,
            "--redis-url", f"redis://{LOOPBACK}:{self.redis.port}/1"], port=port, cwd=self.logdir)
        try:
            wait_http(proc, f"http://{LOOPBACK}:{port}{DISCOVERY}")
        except StartError as exc:
            self.run_info["fastmcp_skipped"] = f"FastMCP did not start: {str(exc).splitlines()[-1]}"
            self.procs.stop(proc)
            return
        # Slow flows: a longer window, so that the figure rests on more than a few dozen flows.
        self.results["fastmcp.flow"] = self.measure("fastmcp.flow", {"kind": "fastmcp_flow", "base": proc_base(proc)},
                                                    proc, duration=2 * self.options.duration)
        self.procs.stop(proc)

    def profile_facade(self, facade: Proc) -> None:
        """py-spy over the facade while the load generator replays figures; never inside a kept figure."""
        if profile.py_spy() is None:
            self.notes.append("--profile: py-spy is not installed in the venv (pip install py-spy)")
            return
        print("bench: profiling the facade with py-spy (these replays run under the profiler and are not kept)",
              file=sys.stderr)
        # No "exchange": its replay mints codes by flows first, which would swamp the profile; the /token
        # frames of the flow profile are the code exchange.
        for name in ("discovery", "register", "flow", "refresh"):
            with profile.Recorder(facade.pid, self.logdir / f"profile-{name}.txt") as recorder:
                self.measure(f"profiled.{name}", self.spec(name, facade), facade,
                             duration=max(5.0, self.options.duration))
            self.profiles[name] = recorder.summary()


def proc_base(proc: Proc) -> str:
    return f"http://{LOOPBACK}:{proc.port}"


def shell_command() -> str:
    return " ".join(shlex.quote(arg) for arg in ["python", "-m", "bench", *sys.argv[1:]])
