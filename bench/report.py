"""Turning a run's measurements into the tables `make bench` prints and writes to bench/results/.

Every throughput is shown as a ratio to the hello-JSON ceiling of the same run, because absolute
requests/s say more about the machine than about the facade; the targets bench/README.md lists
are checked here, in one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A goal: `figure` (a measurement id) at least `ratio` × the ceiling."""

    figure: str
    label: str
    ratio: float


# Ratios to the hello ceiling, one run, one facade process.
CEILING_TARGETS = (
    Target("facade.discovery", "discovery GET", 0.95),
    Target("facade.jwks", "/jwks GET", 0.95),
    Target("facade.register", "/register", 0.20),
    Target("facade.flow", "full flow (register → authorize → IdP → callback → token)", 0.025),
    Target("facade.exchange", "code exchange (/token authorization_code)", 0.10),
    Target("facade.refresh", "refresh (/token refresh_token)", 0.10),
)
# Facade / bare ≥ 0.85 for DCR, a whole flow and refresh (code exchange shown too): issue 23 item 5.
BARE_GOAL = 0.85
BARE_FIGURES = (("register", "/register", True), ("flow", "full flow", True),
                ("exchange", "code exchange", False), ("refresh", "refresh", True))
FASTMCP_GOAL = 10.0


def pct(ratio: float) -> str:
    if math.isnan(ratio):
        return "n/a"
    return f"{ratio * 100:.2f} %" if ratio < 0.1 else f"{ratio * 100:.1f} %"


def num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def mark(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "**MISSED**")


def ceiling_rate(results: dict[str, Json]) -> float:
    m = results.get("ceiling")
    return float(m["rate"]) if m is not None and "rate" in m else float("nan")


def spread(m: Json) -> str:
    """The rounds' rates, so a reader sees how much a figure moved within the run."""
    rounds = m.get("rounds") or []
    return " / ".join(num(rate) for rate in rounds) if len(rounds) > 1 else ""


def by_cpu(results: dict[str, Json], m: Json) -> float:
    """Ceiling server CPU per request / the figure's server CPU per operation."""
    ceiling = results.get("ceiling", {}).get("cpu_us_per_op", {}).get("server")
    mine = m.get("cpu_us_per_op", {}).get("server")
    return ceiling / mine if ceiling and mine else float("nan")


def _usable(m: Json | None) -> bool:
    return m is not None and "rate" in m and m.get("errors", 0) == 0


def _rate(results: dict[str, Json], key: str) -> float:
    m = results.get(key)
    return float(m["rate"]) if m is not None and "rate" in m else float("nan")


def _us(m: Json, group: str) -> str:
    value = m.get("cpu_us_per_op", {}).get(group)
    return num(value) if value is not None else "n/a"


def _row_stats(m: Json) -> str:
    """p50 | p99 | server µs/op | server CPU % | redis µs/op | IdP µs/op | client % | other % | errors"""
    return " | ".join([
        num(m["p50_ms"], 2), num(m["p99_ms"], 2), _us(m, "server"), num(m["server_cpu_pct"]),
        _us(m, "redis"), _us(m, "idp"), num(m["client_cpu_pct"]), num(m["other_cpu_pct"]),
        str(m["errors"]) + (f" ({m['error_sample'][0][:80]})" if m.get("error_sample") else ""),
    ])


STATS_HEAD = ("p50 ms | p99 ms | server CPU µs/op | server CPU % | redis µs/op | IdP µs/op | client CPU % "
              "| other load % | errors")


def evaluate(results: dict[str, Json]) -> list[Json]:
    """Every goal with its figure and verdict (None when the figure is missing or had errors)."""
    ceiling = ceiling_rate(results)
    verdicts: list[Json] = []
    for target in CEILING_TARGETS:
        m = results.get(target.figure)
        ratio = _rate(results, target.figure) / ceiling
        verdicts.append({"goal": f"{target.label} ≥ {pct(target.ratio)} of the ceiling", "figure": ratio,
                         "met": ratio >= target.ratio if _usable(m) else None})
    for name, label, goal in BARE_FIGURES:
        if not goal:
            continue
        facade, bare = results.get(f"facade.{name}"), results.get(f"bare.{name}")
        ratio = _rate(results, f"facade.{name}") / _rate(results, f"bare.{name}")
        verdicts.append({"goal": f"{label}: facade ≥ {BARE_GOAL} × bare", "figure": ratio,
                         "met": ratio >= BARE_GOAL if _usable(facade) and _usable(bare) else None})
    fastmcp = results.get("fastmcp.flow")
    ratio = _rate(results, "facade.flow") / _rate(results, "fastmcp.flow")
    verdicts.append({"goal": f"full flow: facade ≥ {FASTMCP_GOAL:.0f} × FastMCP OAuthProxy", "figure": ratio,
                     "met": ratio >= FASTMCP_GOAL if _usable(fastmcp) and _usable(results.get("facade.flow"))
                     else None})
    return verdicts


def render(run: Json) -> str:
    """The whole report as Markdown (the same text is printed and written to bench/results/)."""
    results: dict[str, Json] = run["results"]
    ceiling = ceiling_rate(results)
    machine, config = run["machine"], run["config"]
    out: list[str] = []
    out.append(f"# oauth-facade bench — {run['started']} — {machine['cores']} cores")
    out.append("")
    out.append(f"- machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
               f"redis-server {machine['redis']}")
    out.append(f"- libraries: {', '.join(f'{k} {v}' for k, v in machine['libraries'].items())}")
    out.append(f"- load: {config['concurrency']} concurrent virtual users, {config['warmup']} s warm-up, "
               f"then a window of at most {config['duration']} s or {config['cap']:,} operations; the load "
               "generator is its own process (its CPU is the *client CPU %* column)")
    out.append(f"- every figure is measured in {config.get('rounds', 1)} rounds (flows one fewer, the code exchange "
               "once over a longer window) interleaved with the figures it is compared to; the median round is "
               "shown, all rounds are listed")
    out.append("- facade started as users do: `oauth-facade serve` with PROXY_CONSENT=off PROXY_RATE_LIMITS=off "
               "**PROXY_LOG_LEVEL=warning** (no per-request log line) and a real redis-server")
    out.append(f"- extras loaded by the facade (from /proc/<pid>/maps): {run.get('facade_extras', 'n/a')}")
    out.append(f"- command: `{run['command']}`; run time {run['elapsed_s']:.0f} s")
    disturbed = sorted(key for key, m in results.items() if m.get("disturbed"))
    if disturbed:
        out.append(f"- **disturbed**: other processes loaded the machine (> 10 % of a core) during {len(disturbed)} "
                   f"kept figure(s): {', '.join(disturbed)}; treat those numbers with care")
    out.append(f"- waited {run.get('waited_for_quiet_s', 0)} s in all for other processes to stop loading the machine")
    out.append("")
    out.append("CPU columns are µs of CPU per operation (utime+stime from /proc over the window); *server* is "
               "the process tree measured (facade, bare, ceiling or FastMCP), *IdP* the stub upstream. "
               "*other load* is CPU used on the machine during the window by processes not in the run: "
               "above ~10 % the figures are disturbed.")
    out.append("")

    out.append("## Ceiling: bare aiohttp hello-JSON, one process")
    out.append("")
    out.append(f"| figure | req/s | rounds (req/s) | {STATS_HEAD} |")
    out.append("|---|---:|---|" + "---:|" * 9)
    m = results.get("ceiling", {})
    if "rate" in m:
        out.append(f"| hello JSON (the ceiling) | **{num(m['rate'])}** | {spread(m)} | {_row_stats(m)} |")
    else:
        out.append(f"| hello JSON | failed: {m.get('failed', 'not run')} | | | | | | | | | | |")
    floor = results.get("ceiling.middleware", {})
    if "rate" in floor and "rate" in m:
        out.append(f"| the same with one pass-through middleware ({pct(floor['rate'] / m['rate'])} of the ceiling) "
                   f"| {num(floor['rate'])} | {spread(floor)} | {_row_stats(floor)} |")
    out.append("")
    if "rate" in floor and "rate" in m:
        out.append("The second row is the floor of any aiohttp app with a middleware (the facade renders its "
                   "errors in one): aiohttp then wraps every handler in a chain and its own current-app "
                   "middleware. No such app can be expected above it, so it bounds what the static GETs' 95 % "
                   "goal can show on this machine.")
        out.append("")
    out.append("## Targets: facade, one process, as a ratio to the ceiling")
    out.append("")
    out.append(f"| figure | ops/s | × ceiling | target | verdict | × ceiling by CPU | rounds (ops/s) | {STATS_HEAD} |")
    out.append("|---|---:|---:|---:|---|---:|---|" + "---:|" * 9)
    for target in CEILING_TARGETS:
        m = results.get(target.figure)
        if m is None or "rate" not in m:
            out.append(f"| {target.label} | failed: {(m or {}).get('failed', 'not run')} |" + " |" * 14)
            continue
        ratio = m["rate"] / ceiling
        out.append(f"| {target.label} | {num(m['rate'])} | {pct(ratio)} | ≥ {pct(target.ratio)} | "
                   f"{mark(ratio >= target.ratio if _usable(m) else None)} | {pct(by_cpu(results, m))} | "
                   f"{spread(m)} | {_row_stats(m)} |")
    out.append("")
    out.append("*× ceiling by CPU* is the ceiling's server CPU per request divided by the figure's: the ratio the "
               "facade would reach with a core to itself, whatever shares the machine (a cross-check that other "
               "load moves much less than throughput).")
    out.append("")
    out.append("A flow is one operation of 6 HTTP requests (register, authorize, the IdP's authorize, callback, "
               "the facade's upstream /token call, token); its latency is the whole flow's.")
    out.append("")

    out.append("## Facade vs a bare implementation doing only the same Redis commands, upstream calls and signatures")
    out.append("")
    out.append("| figure | facade ops/s | bare ops/s | facade / bare | goal | verdict | facade µs/op | bare µs/op "
               "| bare × ceiling | bare rounds (ops/s) |")
    out.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for name, label, goal in BARE_FIGURES:
        facade, bare = results.get(f"facade.{name}"), results.get(f"bare.{name}")
        if facade is None or bare is None or "rate" not in facade or "rate" not in bare:
            out.append(f"| {label} | not measured | | | | | | | | |")
            continue
        ratio = facade["rate"] / bare["rate"]
        verdict = mark(ratio >= BARE_GOAL if _usable(facade) and _usable(bare) else None) if goal else "(info)"
        out.append(f"| {label} | {num(facade['rate'])} | {num(bare['rate'])} | {ratio:.2f} | "
                   f"{'≥ ' + str(BARE_GOAL) if goal else '—'} | {verdict} | {_us(facade, 'server')} | "
                   f"{_us(bare, 'server')} | {pct(bare['rate'] / ceiling)} | {spread(bare)} |")
    out.append("")

    workers = {k: v for k, v in results.items() if k.startswith("workers2.")}
    if workers:
        out.append("## Scale out: `oauth-facade serve --workers 2` (SO_REUSEPORT) on this machine")
        out.append("")
        out.append(f"| figure | ops/s | × ceiling | vs 1 worker | rounds (ops/s) | {STATS_HEAD} |")
        out.append("|---|---:|---:|---:|---|" + "---:|" * 9)
        for key, m in workers.items():
            name = key.split(".", 1)[1]
            if "rate" not in m:
                out.append(f"| {name} | failed: {m.get('failed')} |" + " |" * 12)
                continue
            out.append(f"| {name} | {num(m['rate'])} | {pct(m['rate'] / ceiling)} | "
                       f"{m['rate'] / _rate(results, 'facade.' + name):.2f} × | {spread(m)} | {_row_stats(m)} |")
        out.append("")
        out.append(f"{machine['cores']} cores are shared by the 2 workers, redis, the stub IdP and the load "
                   "generator, so the gain is bounded by what those leave free.")
        out.append("")

    variants = {k: v for k, v in results.items() if k.startswith("variant.")}
    if variants:
        out.append("## Optional extras: the facade without uvloop, without hiredis (and with ES256 keys)")
        out.append("")
        out.append("| variant | figure | ops/s | vs default facade | server CPU µs/op | default µs/op "
                   "| extras loaded | rounds (ops/s) |")
        out.append("|---|---|---:|---:|---:|---:|---|---|")
        for key, m in variants.items():
            _, variant, name = key.split(".", 2)
            if "rate" not in m:
                out.append(f"| {variant} | {name} | failed: {m.get('failed')} | | | | | |")
                continue
            base = results.get("facade." + name, {})
            relative = m["rate"] / _rate(results, "facade." + name)
            out.append(f"| {variant} | {name} | {num(m['rate'])} | {relative:.2f} × | {_us(m, 'server')} "
                       f"| {_us(base, 'server') if base else 'n/a'} | {m.get('extras', 'n/a')} | {spread(m)} |")
        out.append("")

    fastmcp = results.get("fastmcp.flow")
    out.append("## FastMCP OAuthProxy: the same full flow against the same stub IdP and redis-server")
    out.append("")
    if fastmcp is None:
        out.append(f"Not measured: {run.get('fastmcp_skipped', 'skipped')}.")
    elif "rate" not in fastmcp:
        out.append(f"Failed: {fastmcp.get('failed')}")
    else:
        ratio = _rate(results, "facade.flow") / fastmcp["rate"]
        out.append(f"| FastMCP {run.get('fastmcp_version', '')} flows/s | facade flows/s | facade / FastMCP | goal "
                   f"| verdict | {STATS_HEAD} |")
        out.append("|---:|---:|---:|---:|---|" + "---:|" * 9)
        out.append(f"| {num(fastmcp['rate'], 1)} | {num(_rate(results, 'facade.flow'))} | {ratio:.1f} × | "
                   f"≥ {FASTMCP_GOAL:.0f} × | {mark(ratio >= FASTMCP_GOAL if _usable(fastmcp) else None)} | "
                   f"{_row_stats(fastmcp)} |")
        out.append("")
        out.append("FastMCP runs under uvicorn (uvloop, httptools) with consent off like the facade, its state in "
                   "the same redis-server; it signs HS256 and checks no upstream id_token, so it does less "
                   "cryptography per flow than the facade.")
    out.append("")

    out.append("## Verdicts")
    out.append("")
    out.append("| goal | figure | verdict |")
    out.append("|---|---:|---|")
    for verdict in evaluate(results):
        figure = verdict["figure"]
        shown = pct(figure) if "ceiling" in verdict["goal"] else (f"{figure:.2f}" if not math.isnan(figure) else "n/a")
        out.append(f"| {verdict['goal']} | {shown} | {mark(verdict['met'])} |")
    out.append("")
    for note in run.get("notes", []):
        out.append(f"- {note}")
    return "\n".join(out).rstrip() + "\n"


def write(run: Json, directory: Path) -> tuple[Path, Path]:
    """bench/results/<timestamp>-<cores>core.md and .json."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{run['stamp']}-{run['machine']['cores']}core"
    markdown, raw = directory / f"{stem}.md", directory / f"{stem}.json"
    markdown.write_text(render(run))
    raw.write_text(json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    return markdown, raw
