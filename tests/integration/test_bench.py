"""`hubbub bench --size tiny` runs every scenario (and the Node.js `ws` peer when it can) and
writes well-formed results. Nothing here asserts on speed: only on shape, counts and signs."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hubbub import bench

SCENARIOS = ["fanout", "echo", "connections", "recovery", "presence"]
SUITE = bench.find_suite()
PEERS_DIR = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[3] / "shared" / "peers",
            Path("/work/shared/peers"),
        )
        if (p / "servers" / "ws_node.js").exists()
    ),
    None,
)

pytestmark = [
    pytest.mark.skipif(SUITE is None, reason="benchmarks/ not found (not a clone of the repo)"),
    pytest.mark.skipif(shutil.which("node") is None, reason="the load generator needs Node.js"),
    pytest.mark.timeout(300),
]


def _node_modules_ready() -> bool:
    """The load generator's packages: installed by scripts/test (npm ci), else here."""
    assert SUITE is not None
    if (SUITE / "node_modules" / "ws" / "package.json").exists():
        return True
    npm = shutil.which("npm")
    if npm is None:
        return False
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=SUITE, capture_output=True, timeout=240
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not _node_modules_ready():
        pytest.skip("npm ci in benchmarks/ failed or npm is missing")
    out = tmp_path_factory.mktemp("bench")
    peers = "node-ws" if PEERS_DIR is not None else "none"
    argv = ["--size", "tiny", "--reps", "1", "--out", str(out), "--peers", peers, "--no-plot"]
    if PEERS_DIR is not None:
        argv += ["--peers-dir", str(PEERS_DIR)]
    done = subprocess.run(
        [sys.executable, "-m", "hubbub.bench", *argv],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _median(results: dict[str, Any], scenario: str, metric: str, target: str = "hubbub") -> Any:
    return results["summary"][scenario][target][metric]["median"]


def test_the_results_are_well_formed(results: dict[str, Any]) -> None:
    for key in (
        "suite",
        "started",
        "size",
        "reps",
        "scenarios",
        "params",
        "client",
        "machine",
        "versions",
        "summary",
        "comparison",
        "targets",
        "errors",
        "runs",
    ):
        assert key in results, key
    assert results["suite"] == "hubbub-bench" and results["size"] == "tiny"
    assert results["scenarios"] == SCENARIOS
    assert results["errors"] == []
    assert "loadgen.js" in results["client"]
    assert {t["id"] for t in results["targets"]} == set(range(1, 8))
    for run in results["runs"]:
        assert run["result"]["closed_unexpectedly"] == 0, run["result"]


def test_fanout_reports_throughput_latency_and_server_cpu(results: dict[str, Any]) -> None:
    for metric in (
        "max.deliveries_per_s",
        "max.server_cpu_util",
        "max.server_us_per_delivery",
        "rate20.deliveries_per_s",
        "rate20.p50_ms",
        "rate20.p99_ms",
        "rate20.p999_ms",
    ):
        assert _positive(_median(results, "fanout", metric)), metric
    run = next(r for r in results["runs"] if r["scenario"] == "fanout" and r["target"] == "hubbub")
    assert run["result"]["gaps"] == 0 and run["result"]["seq_gaps"] == 0
    assert all(p["missing_publishes_after_drain"] == 0 for p in run["result"]["phases"])


def test_echo_reports_round_trips_on_one_and_many_connections(results: dict[str, Any]) -> None:
    for metric in ("c1.msgs_per_s", "c1.p99_ms", "c10.msgs_per_s", "c10.server_us_per_msg"):
        assert _positive(_median(results, "echo", metric)), metric


def test_connections_reports_memory_per_connection(results: dict[str, Any]) -> None:
    assert _median(results, "connections", "conns") == 100
    assert _positive(_median(results, "connections", "bytes_per_conn"))
    assert _positive(_median(results, "connections", "connects_per_s"))


def test_recovery_brings_every_client_back(results: dict[str, Any]) -> None:
    assert _median(results, "recovery", "recovered") == 50
    assert _median(results, "recovery", "not_recovered") == 0
    assert _median(results, "recovery", "seq_gaps") == 0
    assert _positive(_median(results, "recovery", "recover_secs"))
    assert _positive(_median(results, "recovery", "replayed_events"))


def test_presence_reaches_every_member(results: dict[str, Any]) -> None:
    assert _median(results, "presence", "members") == 20
    assert _median(results, "presence", "presence_get_members") == 20
    assert _positive(_median(results, "presence", "converge_secs"))
    assert _positive(_median(results, "presence", "presence_events_delivered"))


def test_the_node_peer_runs_the_same_scenarios_and_gets_ratios(results: dict[str, Any]) -> None:
    if "node-ws" not in results["peers"]:
        pytest.skip("the node-ws peer did not run: " + json.dumps(results["peers_skipped"]))
    for scenario in ("fanout", "echo", "connections"):
        assert "node-ws" in results["summary"][scenario]
    assert "node-ws" not in results["summary"]["recovery"]
    assert _positive(_median(results, "fanout", "max.deliveries_per_s", "node-ws"))
    ratios = {(r["scenario"], r["metric"]): r["ratio"] for r in results["comparison"]}
    assert _positive(ratios[("fanout", "max.deliveries_per_s")])
    assert _positive(ratios[("echo", "c10.msgs_per_s")])
    assert _positive(ratios[("connections", "bytes_per_conn")])


def test_suite_arguments_are_passed_on() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--scenarios", "echo", "--reps", "2", "--size", "tiny", "--set", "echo.conns=1,5"]
    )
    argv = bench.suite_argv(args)
    assert argv[:6] == ["--scenarios", "echo", "--peers", "node-ws", "--size", "tiny"]
    assert "--reps" in argv and "2" in argv and ["--set", "echo.conns=1,5"] == argv[-2:]
