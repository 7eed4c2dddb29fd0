"""`python -m bench`: run the whole benchmark suite once and write bench/results/<stamp>-<cores>core.{md,json}."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench.procs import StartError
from bench.report import render, write
from bench.run import HERE, Bench, Options, shell_command


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds of each measured window (default 1.5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per figure, the median is kept (default 3; flows: one fewer)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of load before each window (default 0.5)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent virtual users (default 32)")
    parser.add_argument("--cap", type=int, default=100_000, help="operations that end a window early")
    parser.add_argument("--no-fastmcp", action="store_true", help="skip the FastMCP OAuthProxy comparison")
    parser.add_argument("--no-workers", action="store_true", help="skip the --workers 2 figures")
    parser.add_argument("--no-variants", action="store_true",
                        help="skip the facades without uvloop, without hiredis, with ES256 keys")
    parser.add_argument("--profile", action="store_true", help="also sample the facade with py-spy (slower)")
    parser.add_argument("--quiet-wait", type=float, default=90.0,
                        help="seconds the run may wait for other processes to stop loading the machine, in total, "
                             "before re-measuring a disturbed window (default 90; 0 never waits)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where to write the report")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.concurrency < 1 or args.cap < 1 or args.rounds < 1:
        parser.error("--duration, --rounds, --concurrency and --cap must be positive, --warmup not negative")
    return Options(duration=args.duration, warmup=args.warmup, rounds=args.rounds, concurrency=args.concurrency,
                   cap=args.cap,
                   fastmcp=not args.no_fastmcp, workers=not args.no_workers, variants=not args.no_variants,
                   profile=args.profile, quiet_wait=args.quiet_wait, results=args.results, command=shell_command())


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    bench = Bench(options)
    try:
        run = bench.run()
    except (StartError, RuntimeError) as exc:
        print(f"bench: {exc}\nbench: logs kept in {bench.logdir}", file=sys.stderr)
        return 1
    print(render(run))
    markdown, raw = write(run, options.results)
    if run.get("profiles"):
        profiles = markdown.with_name(markdown.stem + "-profile.md")
        profiles.write_text("\n\n".join(f"## {name}\n\n{text}" for name, text in run["profiles"].items()) + "\n")
        print(f"bench: profiles in {profiles}", file=sys.stderr)
    print(f"bench: wrote {markdown} and {raw}", file=sys.stderr)
    shutil.rmtree(bench.logdir, ignore_errors=True)  # kept only when a run fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
