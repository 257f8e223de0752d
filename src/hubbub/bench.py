"""`hubbub bench`: find the benchmark suite (`benchmarks/` in a clone of the repository) and run it.

The suite itself lives in `benchmarks/` (its orchestrator `run.py` and its Node.js load generator
`loadgen.js`), not in the installed package: it needs Node.js, the peers of `../shared/peers/`
and a clone of the repository. This module only finds it and hands it the options; see
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = ("fanout", "echo", "connections", "recovery", "presence")
SIZES = ("tiny", "medium", "full")
SUITE_ENV = "HUBBUB_BENCHMARKS"


def find_suite(explicit: str | None = None) -> Path | None:
    """The `benchmarks/` directory: `--suite`, `$HUBBUB_BENCHMARKS`, the clone this package was
    installed from (editable install), or `./benchmarks`."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get(SUITE_ENV)
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2] / "benchmarks")
    candidates.append(Path.cwd() / "benchmarks")
    for path in candidates:
        if (path / "run.py").is_file() and (path / "loadgen.js").is_file():
            return path.resolve()
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `hubbub bench` (passed on to benchmarks/run.py)."""
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated, from: " + ",".join(SCENARIOS),
    )
    p.add_argument(
        "--peers",
        default="node-ws",
        help="servers to compare with, from ../shared/peers: node-ws, aiohttp, websockets, "
        "picows, socketio (comma-separated), or none",
    )
    p.add_argument("--reps", type=int, help="repetitions; medians are over them (default 3)")
    p.add_argument("--size", choices=SIZES, default="full", help="tiny takes ~30 s")
    p.add_argument("--out", help="output directory (default benchmarks/results/<date>-<size>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SCENARIO.KEY=VALUE",
        help="override a parameter of the size, e.g. connections.conns=50000",
    )
    p.add_argument("--client", choices=("raw", "ws"), help="the load generator's WebSocket client")
    p.add_argument("--peer-python", help="the Python that runs the Python peers")
    p.add_argument("--peers-dir", help="the peers directory (default ../shared/peers)")
    p.add_argument("--suite", help=f"the benchmarks/ directory (or ${SUITE_ENV})")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and load generator")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")


def suite_argv(args: argparse.Namespace) -> list[str]:
    """The command-line arguments of benchmarks/run.py for `args`."""
    argv = ["--scenarios", args.scenarios, "--peers", args.peers, "--size", args.size]
    if args.reps is not None:
        argv += ["--reps", str(args.reps)]
    for flag, value in (
        ("--out", args.out),
        ("--client", args.client),
        ("--peer-python", args.peer_python),
        ("--peers-dir", args.peers_dir),
    ):
        if value:
            argv += [flag, value]
    for item in args.set:
        argv += ["--set", item]
    if args.no_pin:
        argv.append("--no-pin")
    if args.no_plot:
        argv.append("--no-plot")
    return argv


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the suite with this interpreter (it starts `python -m hubbub serve` with it too)."""
    suite = find_suite(args.suite)
    if suite is None:
        print(
            "hubbub bench: the benchmark suite was not found; run it from a clone of the "
            f"repository, or pass --suite DIR (or set {SUITE_ENV})",
            file=sys.stderr,
        )
        return 2
    cmd = [sys.executable, str(suite / "run.py"), *suite_argv(args)]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    """`python -m hubbub.bench`: the same as `hubbub bench`."""
    parser = argparse.ArgumentParser(
        prog="hubbub bench", description="Run the Hubbub benchmark suite (benchmarks/)."
    )
    add_arguments(parser)
    return cmd_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
