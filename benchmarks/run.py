#!/usr/bin/env python3
"""The Hubbub benchmark suite: runs the scenarios against Hubbub and the reference peers.

For every repetition, scenario and target (Hubbub, then each peer) it starts a fresh server
pinned to CPU 0 (`taskset -c 0`), runs one load-generator process pinned to CPU 1
(`taskset -c 1 node loadgen.js ...`), samples the server's CPU time and RSS (process tree,
psutil) at the load generator's phase markers, and stops the server's process group. At the
end it writes `results.json` (every run, medians over the repetitions, Hubbub/peer ratios, the
targets of issue 5) and `bench.png` (when matplotlib is installed) into the output directory,
and prints a summary.

Hubbub runs with its full semantics: JWT auth on every connection (tokens signed here with
PyJWT), sequenced channels with history, bounded send queues, rate limiting (with a limit
raised so that it never refuses: see docs/benchmarks.md).

Usage (normally through `hubbub bench`):
  python benchmarks/run.py [--scenarios fanout,echo,connections,recovery,presence]
                           [--peers node-ws,socketio,...|none] [--reps N]
                           [--size tiny|medium|full] [--out DIR] [--set scenario.key=value]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOADGEN = HERE / "loadgen.js"
JWT_SECRET = "hubbub-bench-secret-0123456789abcdef-0123456789"
API_KEY = "hubbub-bench-api-key"

SCENARIOS = ["fanout", "echo", "connections", "recovery", "presence"]
PEER_SCENARIOS = {"fanout", "echo", "connections"}  # the bare peers have no recovery/presence
PEERS = ["node-ws", "aiohttp", "websockets", "picows", "socketio"]

# Parameters per size. Durations in seconds.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "fanout": {
            "subs": 20,
            "rates": "0,20",
            "window": 32,
            "warmup": 0.3,
            "duration": 1.0,
            "drain": 1.0,
        },
        "echo": {"conns": "1,10", "warmup": 0.2, "duration": 0.8, "op": "ping"},
        "connections": {"conns": 100, "settle": 0.5, "cpu_window": 0.3, "src_addrs": 1},
        "recovery": {"conns": 50, "missed": 5, "drop": "api"},
        "presence": {"conns": 20},
    },
    "medium": {
        "fanout": {
            "subs": 1000,
            "rates": "0,5,50",
            "window": 32,
            "warmup": 2.0,
            "duration": 5.0,
            "drain": 3.0,
        },
        "echo": {"conns": "1,100", "warmup": 1.0, "duration": 4.0, "op": "ping"},
        "connections": {"conns": 5000, "settle": 3.0, "cpu_window": 2.0, "src_addrs": 1},
        "recovery": {"conns": 2000, "missed": 20, "drop": "api"},
        "presence": {"conns": 500},
    },
    "full": {
        "fanout": {
            "subs": 1000,
            "rates": "0,5,50",
            "window": 32,
            "warmup": 2.0,
            "duration": 8.0,
            "drain": 3.0,
        },
        "echo": {"conns": "1,100", "warmup": 1.0, "duration": 5.0, "op": "ping"},
        "connections": {"conns": 10000, "settle": 3.0, "cpu_window": 2.0, "src_addrs": 1},
        "recovery": {"conns": 5000, "missed": 20, "drop": "api"},
        "presence": {"conns": 1000},
    },
}

CHANNELS = {
    "fanout": "bench:fanout",
    "echo": "bench:echo",
    "connections": "bench:idle",
    "recovery": "bench:rec",
    "presence": "room:bench",  # a namespace with the defaults: presence on
}

# Hubbub's settings for the benchmark: the `bench` namespace has presence off (so that 1,000
# subscribers joining do not send each other a million presence events before the measurement);
# the per-connection rate limit still runs on every frame but is raised so it never refuses
# (one echo connection sends ~10k frames/s, a tiny fan-out publisher more).
HUBBUB_TOML = """\
rate_per_second = 1000000.0
rate_burst = 1000000
rate_strikes = 1000000

[namespaces.bench]
presence = false
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ process helpers


def tree(pid: int) -> list[Any]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> float:
    import psutil

    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def tree_rss(pid: int) -> int:
    import psutil

    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return int(total)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def raise_nofile(wanted: int) -> int:
    """Raise the open-files limit (inherited by the server and the load generator)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted > hard and os.geteuid() == 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------ targets (servers)


@dataclass
class Target:
    name: str
    cmd: list[str]
    path: str
    proto: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None


def find_peers(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("HUBBUB_BENCH_PEERS")]
    candidates += [str(REPO.parent / "shared" / "peers"), "/work/shared/peers"]
    for c in candidates:
        if c and (Path(c) / "servers" / "ws_node.js").exists():
            return Path(c)
    return None


PY_PEERS = {
    "aiohttp": ("ws_aiohttp.py", "/ws", "raw", "aiohttp, uvloop"),
    "websockets": ("ws_websockets.py", "/ws", "raw", "websockets, uvloop"),
    "picows": ("ws_picows.py", "/ws", "raw", "picows, uvloop"),
    "socketio": (
        "ws_socketio.py",
        "/socket.io/?EIO=4&transport=websocket",
        "sio",
        "socketio, aiohttp, uvloop",
    ),
}


def peer_available(name: str, peers: Path | None, peer_python: str) -> str | None:
    """None when the peer can run here, else why not."""
    if peers is None:
        return "the peers directory (../shared/peers) was not found; set HUBBUB_BENCH_PEERS"
    if name == "node-ws":
        return None if shutil.which("node") else "node is not installed"
    if name not in PY_PEERS:
        return f"unknown peer {name!r} (known: {', '.join(PEERS)})"
    modules = PY_PEERS[name][3]
    r = subprocess.run([peer_python, "-c", f"import {modules}"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"{peer_python} cannot import {modules} (use --peer-python with a venv that has it)"
    return None


def make_target(
    name: str,
    port: int,
    peers: Path | None,
    peer_python: str,
    workdir: Path,
    hubbub_entry: str | None = None,
) -> Target:
    if name == "hubbub":
        data = workdir / f"hubbub-data-{port}"
        data.mkdir(parents=True, exist_ok=True)
        toml = data / "hubbub.toml"
        toml.write_text(HUBBUB_TOML)
        entry = ["-m", "hubbub"] if hubbub_entry is None else [hubbub_entry]
        cmd = [
            sys.executable,
            *entry,
            "serve",
            "--config",
            str(toml),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--jwt-secret",
            JWT_SECRET,
            "--api-key",
            API_KEY,
            "--data-dir",
            str(data),
            "--log-level",
            "warning",
        ]
        env = {"PYTHONWARNINGS": "ignore"}
        return Target(name, cmd, "/ws", "hubbub", data, env, data)
    assert peers is not None
    servers = peers / "servers"
    if name == "node-ws":
        return Target(
            name,
            ["node", str(servers / "ws_node.js"), str(port)],
            "/ws",
            "raw",
            servers,
            {"NODE_PATH": str(HERE / "node_modules")},
        )
    script, path, proto, _ = PY_PEERS[name]
    return Target(name, [peer_python, str(servers / script), str(port)], path, proto, servers)


# ------------------------------------------------------------------ tokens


def write_tokens(path: Path, n: int, prefix: str) -> None:
    import jwt

    exp = int(time.time()) + 6 * 3600
    users = [f"{prefix}{i}" for i in range(n)]
    tokens = [jwt.encode({"sub": u, "exp": exp}, JWT_SECRET, algorithm="HS256") for u in users]
    publisher = {
        "user": "publisher",
        "token": jwt.encode({"sub": "publisher", "exp": exp}, JWT_SECRET, algorithm="HS256"),
    }
    path.write_text(json.dumps({"users": users, "tokens": tokens, "publisher": publisher}))


# ------------------------------------------------------------------ one run


@dataclass
class Pinning:
    server: str | None
    loadgen: str | None

    def wrap(self, cpu: str | None, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def loadgen_args(
    scenario: str, p: dict[str, Any], target: Target, port: int, tokens: Path | None, client: str
) -> tuple[list[str], float]:
    """The load generator's arguments and its hard timeout (seconds)."""
    a = [
        "--url",
        f"ws://127.0.0.1:{port}{target.path}",
        "--proto",
        target.proto,
        "--channel",
        CHANNELS[scenario],
        "--client",
        client,
    ]
    if tokens is not None:
        a += ["--tokens", str(tokens)]
    if scenario == "fanout":
        rates = str(p["rates"]).split(",")
        a += [
            "--mode",
            "fanout",
            "--subs",
            str(p["subs"]),
            "--rates",
            str(p["rates"]),
            "--window",
            str(p["window"]),
            "--warmup",
            str(p["warmup"]),
            "--duration",
            str(p["duration"]),
            "--drain",
            str(p["drain"]),
        ]
        budget = len(rates) * (p["warmup"] + p["duration"] + p["drain"]) + p["subs"] / 100 + 20
    elif scenario == "echo":
        conns = str(p["conns"]).split(",")
        a += [
            "--mode",
            "echo",
            "--conns",
            str(p["conns"]),
            "--warmup",
            str(p["warmup"]),
            "--duration",
            str(p["duration"]),
            "--op",
            str(p["op"]),
        ]
        budget = len(conns) * (p["warmup"] + p["duration"] + 3) + 20
    elif scenario == "connections":
        a += [
            "--mode",
            "idle",
            "--conns",
            str(p["conns"]),
            "--src-addrs",
            str(p["src_addrs"]),
            "--hold",
            "600",
        ]
        budget = p["conns"] / 300 + p["settle"] + p["cpu_window"] + 40
    elif scenario == "recovery":
        a += [
            "--mode",
            "recovery",
            "--conns",
            str(p["conns"]),
            "--missed",
            str(p["missed"]),
            "--drop",
            str(p["drop"]),
            "--http",
            f"http://127.0.0.1:{port}",
            "--api-key",
            API_KEY,
            "--recovery-limit",
            str(max(30, p["conns"] / 100)),
        ]
        budget = p["conns"] / 150 + max(30, p["conns"] / 100) + 30
    elif scenario == "presence":
        a += ["--mode", "presence", "--conns", str(p["conns"])]
        budget = p["conns"] / 50 + 40
    else:
        raise ValueError(scenario)
    a += ["--timeout", str(int(budget))]
    return a, budget


def run_one(
    target_name: str, scenario: str, rep: int, p: dict[str, Any], ctx: Context
) -> dict[str, Any]:
    port = free_port()
    target = make_target(
        target_name, port, ctx.peers, ctx.peer_python, ctx.workdir, ctx.hubbub_entry
    )
    logfile = ctx.logdir / f"{target_name}-{scenario}-r{rep}.log"
    rec: dict[str, Any] = {
        "target": target_name,
        "scenario": scenario,
        "rep": rep,
        "port": port,
        "proto": target.proto,
        "params": p,
        "time": dt.datetime.now().isoformat(timespec="seconds"),
    }
    tokens: Path | None = None
    if target.proto == "hubbub":
        tokens = ctx.workdir / f"tokens-{scenario}.json"
        if not tokens.exists():
            n = int(max(int(x) for x in str(p.get("conns", p.get("subs", 1))).split(",")))
            write_tokens(
                tokens,
                n,
                {"fanout": "s", "echo": "e", "connections": "i", "recovery": "r", "presence": "m"}[
                    scenario
                ],
            )
    env = {**os.environ, **target.env}
    with open(logfile, "wb") as out:
        srv = subprocess.Popen(
            ctx.pin.wrap(ctx.pin.server, target.cmd),
            cwd=str(target.cwd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    lg: subprocess.Popen[str] | None = None
    try:
        if not wait_port(port, srv):
            rec["error"] = f"server did not start (see {logfile})"
            return rec
        time.sleep(0.5)
        rec["rss_start"] = tree_rss(srv.pid)
        args, budget = loadgen_args(scenario, p, target, port, tokens, ctx.client)
        cmd = ctx.pin.wrap(ctx.pin.loadgen, ["node", str(LOADGEN), *args])
        rec["loadgen_cmd"] = " ".join(cmd)
        lg = subprocess.Popen(
            cmd,
            cwd=str(HERE),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        proc = lg

        def overdue() -> None:
            if proc.poll() is None:
                proc.kill()

        killer = threading.Timer(budget + 30, overdue)
        killer.start()
        marks: dict[str, dict[str, float]] = {}
        phases: dict[str, dict[str, Any]] = {}
        assert lg.stdout is not None and lg.stdin is not None
        for line in lg.stdout:
            line = line.rstrip("\n")
            if line.startswith("PHASE "):
                _, name, *rest = line.split(" ", 2)
                info = json.loads(rest[0]) if rest else {}
                label = str(info.get("label", ""))
                if name == "measure_start":
                    marks[label] = {"t0": time.monotonic(), "c0": tree_cpu(srv.pid)}
                elif name == "measure_end" and label in marks:
                    m = marks[label]
                    secs = time.monotonic() - m["t0"]
                    cpu = tree_cpu(srv.pid) - m["c0"]
                    phases[label] = {
                        "server_cpu_s": cpu,
                        "wall_s": secs,
                        "server_cpu_util": cpu / secs if secs > 0 else None,
                        "rss": tree_rss(srv.pid),
                    }
                elif name == "connected":
                    rec["connected"] = info
                    if scenario == "connections":
                        time.sleep(float(p["settle"]))
                        rec["rss_connected"] = tree_rss(srv.pid)
                        c0 = tree_cpu(srv.pid)
                        time.sleep(float(p["cpu_window"]))
                        rec["idle_cpu_util"] = (tree_cpu(srv.pid) - c0) / float(p["cpu_window"])
                        with contextlib.suppress(BrokenPipeError):
                            lg.stdin.write("go\n")
                            lg.stdin.flush()
            elif line.startswith("RESULT "):
                rec["result"] = json.loads(line[7:])
        lg.wait(15)
        killer.cancel()
        rec["phases"] = phases
        rec["loadgen_rc"] = lg.returncode
        assert lg.stderr is not None
        err = lg.stderr.read()
        if err.strip():
            rec["loadgen_stderr"] = err[-2000:]
        if "result" not in rec:
            rec["error"] = f"the load generator gave no result (rc {lg.returncode})"
        elif rec["result"].get("error"):
            rec["error"] = str(rec["result"]["error"])[:500]
        if srv.poll() is not None:
            rec["server_died"] = srv.returncode
            rec.setdefault("error", "the server died")
        return rec
    finally:
        if lg is not None and lg.poll() is None:
            lg.kill()
            lg.wait()
        stop_group(srv)
        if target.data_dir is not None:
            shutil.rmtree(target.data_dir, ignore_errors=True)


# ------------------------------------------------------------------ metrics


def metrics_of(rec: dict[str, Any]) -> dict[str, float]:
    """The flat metrics of one run: `phase.metric` -> value."""
    out: dict[str, float] = {}
    r = rec.get("result") or {}
    phases = rec.get("phases") or {}
    sc = rec["scenario"]

    def put(key: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)

    def lat(prefix: str, latency: dict[str, Any] | None) -> None:
        if latency:
            for q in ("p50", "p99", "p999"):
                put(f"{prefix}.{q}_ms", latency.get(f"{q}_ms"))

    if sc in ("fanout", "echo"):
        rate_key = "delivered_per_s" if sc == "fanout" else "msgs_per_s"
        name = "deliveries_per_s" if sc == "fanout" else "msgs_per_s"
        unit = "server_us_per_delivery" if sc == "fanout" else "server_us_per_msg"
        for ph in r.get("phases", []):
            label = ph["label"]
            put(f"{label}.{name}", ph.get(rate_key))
            put(f"{label}.client_cpu_util", ph.get("client_cpu_util"))
            lat(label, ph.get("latency"))
            srv = phases.get(label)
            if srv and srv.get("server_cpu_util") is not None:
                put(f"{label}.server_cpu_util", srv["server_cpu_util"])
                done = float(ph.get(rate_key) or 0) * float(ph.get("measure_secs") or 0)
                if done > 0:
                    put(f"{label}.{unit}", srv["server_cpu_s"] * 1e6 / done)
            if sc == "fanout":
                put(f"{label}.publishes_per_s", ph.get("publishes_per_s"))
    elif sc == "connections":
        n = r.get("conns") or 0
        put("conns", n)
        put("connects_per_s", r.get("connects_per_s"))
        if n and "rss_connected" in rec:
            put("bytes_per_conn", (rec["rss_connected"] - rec["rss_start"]) / n)
            put("rss_connected_mib", rec["rss_connected"] / 2**20)
            put("rss_start_mib", rec["rss_start"] / 2**20)
        put("idle_server_cpu_util", rec.get("idle_cpu_util"))
    elif sc == "recovery":
        for k in (
            "conns",
            "recovered",
            "not_recovered",
            "unfinished",
            "recover_secs",
            "drop_secs",
            "replayed_events",
            "seq_gaps",
            "reconnect_failed",
        ):
            put(k, r.get(k))
        srv = phases.get("recovery")
        if srv:
            put("server_cpu_util", srv.get("server_cpu_util"))
            put("server_cpu_s", srv.get("server_cpu_s"))
    elif sc == "presence":
        for k in (
            "members",
            "join_secs",
            "converge_secs",
            "joins_per_s",
            "presence_events_delivered",
            "presence_get_ms",
            "presence_get_members",
        ):
            put(k, r.get(k))
        srv = phases.get("presence")
        if srv:
            put("server_cpu_util", srv.get("server_cpu_util"))
            put("server_cpu_s", srv.get("server_cpu_s"))
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """summary[scenario][target][metric] = {median, min, max, n} over the repetitions."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for rec in runs:
        if rec.get("error"):
            continue
        for k, v in metrics_of(rec).items():
            (
                values.setdefault(rec["scenario"], {})
                .setdefault(rec["target"], {})
                .setdefault(k, [])
                .append(v)
            )
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for sc, by_target in values.items():
        for tg, by_metric in by_target.items():
            for k, vs in by_metric.items():
                out.setdefault(sc, {}).setdefault(tg, {})[k] = {
                    "median": statistics.median(vs),
                    "min": min(vs),
                    "max": max(vs),
                    "n": float(len(vs)),
                }
    return out


# Compared with the peers: metric name suffix -> higher is better
COMPARED = {
    "deliveries_per_s": True,
    "msgs_per_s": True,
    "connects_per_s": True,
    "server_us_per_delivery": False,
    "server_us_per_msg": False,
    "p50_ms": False,
    "p99_ms": False,
    "p999_ms": False,
    "bytes_per_conn": False,
}


def comparisons(summary: dict[str, Any], peers: list[str]) -> list[dict[str, Any]]:
    """Hubbub / peer for every compared metric both have (medians)."""
    rows: list[dict[str, Any]] = []
    for sc in SCENARIOS:
        mine_all = summary.get(sc, {}).get("hubbub", {})
        for metric in sorted(mine_all):
            higher = COMPARED.get(metric.rsplit(".", 1)[-1])
            if higher is None:
                continue
            mine = mine_all[metric]
            for peer in peers:
                theirs = summary.get(sc, {}).get(peer, {}).get(metric)
                if theirs is None or theirs["median"] == 0:
                    continue
                ratio = mine["median"] / theirs["median"]
                rows.append(
                    {
                        "scenario": sc,
                        "metric": metric,
                        "peer": peer,
                        "hubbub": mine["median"],
                        "peer_value": theirs["median"],
                        "ratio": ratio,
                        "higher_is_better": higher,
                        "hubbub_better": ratio >= 1.0 if higher else ratio <= 1.0,
                    }
                )
    return rows


def med(summary: dict[str, Any], sc: str, target: str, metric: str) -> float | None:
    m = summary.get(sc, {}).get(target, {}).get(metric)
    return None if m is None else float(m["median"])


def targets_of_issue(
    summary: dict[str, Any], params: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The targets of issue 5, with the figures of this run (`indicative` off the target size)."""
    out: list[dict[str, Any]] = []

    def add(
        tid: int,
        text: str,
        measured: float | None,
        peer: float | None,
        ok: bool | None,
        at_size: bool,
        note: str = "",
    ) -> None:
        status = "not measured" if ok is None else ("met" if ok else "not met")
        if ok is not None and not at_size:
            status += " (indicative: not at the target's size)"
        out.append(
            {
                "id": tid,
                "target": text,
                "measured": measured,
                "peer": peer,
                "status": status,
                "note": note,
            }
        )

    f, e = params.get("fanout", {}), params.get("echo", {})
    subs1000 = f.get("subs") == 1000
    h, n = (
        med(summary, "fanout", "hubbub", "max.deliveries_per_s"),
        med(summary, "fanout", "node-ws", "max.deliveries_per_s"),
    )
    add(
        1,
        "fan-out, 1,000 subscribers: deliveries/s >= 1.0x node-ws",
        h,
        n,
        None if h is None or n is None else h >= n,
        subs1000,
    )
    h, n = (
        med(summary, "echo", "hubbub", "c100.msgs_per_s"),
        med(summary, "echo", "node-ws", "c100.msgs_per_s"),
    )
    add(
        2,
        "echo, 100 connections: msgs/s >= 1.0x node-ws",
        h,
        n,
        None if h is None or n is None else h >= n,
        "100" in str(e.get("conns", "")).split(","),
    )
    h, n = (
        med(summary, "fanout", "hubbub", "rate50.p99_ms"),
        med(summary, "fanout", "node-ws", "rate50.p99_ms"),
    )
    add(
        3,
        "fan-out at 50,000 deliveries/s (50/s x 1,000): p99 <= node-ws",
        h,
        n,
        None if h is None or n is None else h <= n,
        subs1000,
    )
    c = params.get("connections", {})
    h = med(summary, "connections", "hubbub", "bytes_per_conn")
    add(
        4,
        "idle authenticated connection (user: + 1 channel) <= 16 KB at 10,000",
        h,
        med(summary, "connections", "node-ws", "bytes_per_conn"),
        None if h is None else h <= 16 * 1024,
        c.get("conns") == 10000,
        f"measured at {c.get('conns')} connections" if c else "",
    )
    h = med(summary, "connections", "hubbub", "conns")
    add(
        5,
        "one node holds 50,000 idle connections",
        h,
        None,
        None if h is None or (c.get("conns") or 0) < 50000 else h >= 50000,
        (c.get("conns") or 0) >= 50000,
        "run with --set connections.conns=50000 --set connections.src_addrs=4",
    )
    r = params.get("recovery", {})
    h = med(summary, "recovery", "hubbub", "recover_secs")
    rec_all = med(summary, "recovery", "hubbub", "recovered")
    add(
        6,
        "5,000 clients dropped at once all recover with since within 5 s",
        h,
        None,
        None if h is None else (h <= 5.0 and rec_all == r.get("conns")),
        r.get("conns") == 5000,
        f"{r.get('conns')} clients" if r else "",
    )
    h, s = (
        med(summary, "fanout", "hubbub", "max.deliveries_per_s"),
        med(summary, "fanout", "socketio", "max.deliveries_per_s"),
    )
    add(
        7,
        "fan-out: >= 5x python-socketio",
        h,
        s,
        None if h is None or s is None else h >= 5 * s,
        subs1000,
    )
    return out


# ------------------------------------------------------------------ environment


def versions(peer_python: str, used_peers: list[str]) -> dict[str, str]:
    v: dict[str, str] = {"python": platform.python_version(), "kernel": platform.release()}
    for pkg in ("hubbub", "aiohttp", "msgspec", "uvloop", "PyJWT", "psutil"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            v[pkg] = "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        v["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    for pkg in ("ws", "bufferutil"):
        pj = HERE / "node_modules" / pkg / "package.json"
        v[f"{pkg} (npm)"] = json.loads(pj.read_text())["version"] if pj.exists() else "missing"
    py_peers = [p for p in used_peers if p in PY_PEERS]
    if py_peers:
        mods = {
            "aiohttp": "aiohttp",
            "websockets": "websockets",
            "picows": "picows",
            "socketio": "python-socketio",
        }
        code = (
            "import json,importlib.metadata as m;print(json.dumps({p: m.version(p) for p in "
            + repr([mods[p] for p in py_peers])
            + "}))"
        )
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            got = subprocess.run(
                [peer_python, "-c", code], capture_output=True, text=True, timeout=20
            ).stdout
            for k, val in json.loads(got).items():
                v[f"peer {k}"] = val
    return v


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "hostname": platform.node(),
    }


def ensure_node_modules() -> None:
    if (HERE / "node_modules" / "ws" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("hubbub bench needs Node.js and npm (for benchmarks/loadgen.js)")
    log("installing the load generator's packages: npm ci in benchmarks/")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


# ------------------------------------------------------------------ output


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100_000:
        return f"{v / 1000:.0f}k"
    if a >= 10_000:
        return f"{v / 1000:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def print_summary(result: dict[str, Any]) -> None:
    summary = result["summary"]
    print(
        f"\nHubbub bench, size {result['size']}, {result['reps']} rep(s); client: "
        f"{result['client']}"
    )
    for sc in result["scenarios"]:
        by_target = summary.get(sc, {})
        if not by_target:
            print(f"\n[{sc}] no results")
            continue
        print(f"\n[{sc}] median over reps")
        keys = sorted({k for m in by_target.values() for k in m})
        names = list(by_target)
        print("  " + "metric".ljust(34) + "".join(n.rjust(12) for n in names))
        for k in keys:
            cells = [fmt(by_target[n][k]["median"]) if k in by_target[n] else "-" for n in names]
            print("  " + k.ljust(34) + "".join(c.rjust(12) for c in cells))
    if result["comparison"]:
        print("\nHubbub / peer (median of each; every ratio is in results.json):")
        shown = ("per_s", "server_us_per_delivery", "server_us_per_msg", "p99_ms", "bytes_per_conn")
        for row in result["comparison"]:
            if not row["metric"].endswith(shown):
                continue
            mark = "ok" if row["hubbub_better"] else "  "
            better = "higher" if row["higher_is_better"] else "lower"
            print(
                f"  {mark} {row['scenario']}.{row['metric']:<28} vs {row['peer']:<10} "
                f"{row['ratio']:6.2f}x  ({fmt(row['hubbub'])} vs {fmt(row['peer_value'])}, "
                f"{better} is better)"
            )
    print("\nTargets of issue 5:")
    for t in result["targets"]:
        print(
            f"  {t['id']}. {t['target']}: {t['status']} "
            f"(Hubbub {fmt(t['measured'])}, peer {fmt(t['peer'])}) {t['note']}"
        )
    for note in result["notes"]:
        print(f"note: {note}")


def plot(result: dict[str, Any], path: Path) -> str | None:
    """Write the PNG; returns a note when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    summary = result["summary"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    fig.suptitle(
        f"Hubbub bench ({result['size']}, {result['reps']} rep(s), "
        f"{result['started'][:10]}): medians; server on 1 core"
    )

    def bars(
        ax: Any, sc: str, metrics: list[str], title: str, unit: str, log: bool = False
    ) -> None:
        by_target = summary.get(sc, {})
        names = list(by_target)
        if not names:
            ax.set_title(f"{title}: not run")
            ax.axis("off")
            return
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            ys = [by_target[name].get(m, {}).get("median", 0.0) for m in metrics]
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, ys, width, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels(metrics, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)

    fan = summary.get("fanout", {})
    rate_labels = sorted(
        {k.split(".")[0] for m in fan.values() for k in m if k.startswith("rate")},
        key=lambda s: int(s[4:]),
    )
    bars(axes[0][0], "fanout", ["max.deliveries_per_s"], "fan-out, max throughput", "deliveries/s")
    bars(
        axes[0][1],
        "fanout",
        [f"{r}.{q}_ms" for r in rate_labels[-1:] for q in ("p50", "p99", "p999")],
        "fan-out latency at the highest fixed rate (log)",
        "ms",
        log=True,
    )
    echo = summary.get("echo", {})
    echo_labels = sorted(
        {k.split(".")[0] for m in echo.values() for k in m}, key=lambda s: int(s[1:])
    )
    bars(axes[0][2], "echo", [f"{c}.msgs_per_s" for c in echo_labels], "echo", "msgs/s")
    bars(axes[1][0], "connections", ["bytes_per_conn"], "memory per idle connection", "bytes")
    bars(axes[1][1], "recovery", ["recover_secs", "drop_secs"], "recovery (drop -> all back)", "s")
    bars(axes[1][2], "presence", ["join_secs", "converge_secs"], "presence: N members join", "s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


# ------------------------------------------------------------------ main


@dataclass
class Context:
    peers: Path | None
    peer_python: str
    workdir: Path
    logdir: Path
    pin: Pinning
    client: str
    hubbub_entry: str | None = None


def parse_set(items: list[str], params: dict[str, dict[str, Any]]) -> None:
    for item in items:
        key, _, value = item.partition("=")
        sc, _, name = key.partition(".")
        if sc not in params or not name or not value:
            raise SystemExit(f"--set {item!r}: use scenario.key=value, e.g. fanout.subs=500")
        old = params[sc].get(name)
        conv: Any = value
        if isinstance(old, bool):
            conv = value.lower() in ("1", "true", "yes")
        elif isinstance(old, int):
            conv = int(value)
        elif isinstance(old, float):
            conv = float(value)
        params[sc][name] = conv


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hubbub bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS)
    )
    ap.add_argument(
        "--peers", default="node-ws", help="comparison servers (" + ",".join(PEERS) + ") or none"
    )
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3; tiny: 1)")
    ap.add_argument("--size", choices=list(SIZES), default="full")
    ap.add_argument(
        "--out", default=None, help="output directory (default benchmarks/results/<date>-<size>)"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SCENARIO.KEY=VALUE",
        help="override a size parameter, e.g. --set connections.conns=50000",
    )
    ap.add_argument(
        "--peer-python",
        default=sys.executable,
        help="Python that runs the Python peers (needs their packages)",
    )
    ap.add_argument(
        "--peers-dir",
        default=None,
        help="the peers directory (default ../shared/peers beside the repo)",
    )
    ap.add_argument(
        "--client",
        choices=["raw", "ws"],
        default="raw",
        help="load generator's WebSocket client: its own minimal one (raw, cheapest "
        "per message) or the ws package",
    )
    ap.add_argument(
        "--hubbub-entry",
        default=None,
        help="a script run as `python SCRIPT serve ...` instead of `python -m hubbub serve ...` "
        "(experiments: a script that patches the server, then runs hubbub.cli.main)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and load generator")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument(
        "--replot", metavar="DIR", help="only redraw DIR/bench.png from DIR/results.json"
    )
    return ap


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-") as d:
        yield Path(d)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.replot:
        res = json.loads((Path(a.replot) / "results.json").read_text())
        why = plot(res, Path(a.replot) / "bench.png")
        print(why or f"wrote {Path(a.replot) / 'bench.png'}")
        return 0 if why is None else 1
    scenarios = [s for s in a.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    reps = a.reps if a.reps is not None else (1 if a.size == "tiny" else 3)
    params = json.loads(json.dumps(SIZES[a.size]))
    parse_set(a.set, params)
    params = {s: params[s] for s in scenarios}
    try:
        import jwt  # noqa: F401
        import psutil  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"hubbub bench needs {exc.name} (pip install -e '.[dev]')") from None
    ensure_node_modules()

    notes: list[str] = []
    peers_dir = find_peers(a.peers_dir)
    wanted = [] if a.peers in ("", "none") else [p for p in a.peers.split(",") if p]
    peers: list[str] = []
    skipped: dict[str, str] = {}
    for p in wanted:
        why = peer_available(p, peers_dir, a.peer_python)
        if why is None:
            peers.append(p)
        else:
            skipped[p] = why
            notes.append(f"peer {p} skipped: {why}")

    cpus = os.cpu_count() or 1
    if not a.no_pin and cpus >= 2 and shutil.which("taskset"):
        pin = Pinning(server="0", loadgen="1")
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {1})  # this process sleeps while a run is measured
    else:
        pin = Pinning(server=None, loadgen=None)
        notes.append("server and load generator not pinned (needs 2 cores and taskset)")
    biggest = max([int(p.get("conns", 0)) for k, p in params.items() if k != "echo"] + [1000])
    nofile = raise_nofile(biggest * 2 + 2048)
    if nofile < biggest + 1024:
        notes.append(f"open-files limit {nofile} is low for {biggest} connections")

    started = dt.datetime.now()
    out = Path(a.out) if a.out else HERE / "results" / f"{started:%Y%m%d-%H%M%S}-{a.size}"
    out.mkdir(parents=True, exist_ok=True)
    logdir = out / "logs"
    logdir.mkdir(exist_ok=True)
    node = versions(a.peer_python, [])["node"]
    client = (
        f"benchmarks/loadgen.js: one Node.js {node} process, "
        + (
            "its minimal RFC 6455 client on net sockets (RawWs)"
            if a.client == "raw"
            else "ws client + bufferutil"
        )
        + ", no permessage-deflate"
        + (f", pinned to CPU {pin.loadgen} (server on CPU {pin.server})" if pin.server else "")
    )
    runs: list[dict[str, Any]] = []
    with workspace() as work:
        entry = str(Path(a.hubbub_entry).resolve()) if a.hubbub_entry else None
        if entry:
            notes.append(f"Hubbub started from {entry} instead of `python -m hubbub`")
        ctx = Context(peers_dir, a.peer_python, work, logdir, pin, a.client, entry)
        for rep in range(1, reps + 1):
            for sc in scenarios:
                for tg in ["hubbub"] + [p for p in peers if sc in PEER_SCENARIOS]:
                    t0 = time.monotonic()
                    rec = run_one(tg, sc, rep, params[sc], ctx)
                    rec["wall_s"] = round(time.monotonic() - t0, 2)
                    runs.append(rec)
                    brief = {k: round(v, 3) for k, v in list(metrics_of(rec).items())[:6]}
                    log(
                        f"[rep {rep}] {sc:<11} {tg:<10} {rec['wall_s']:6.1f}s "
                        f"{rec.get('error') or ''} {brief}"
                    )
    summary = summarize(runs)
    result: dict[str, Any] = {
        "suite": "hubbub-bench",
        "format": 1,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "size": a.size,
        "reps": reps,
        "scenarios": scenarios,
        "peers": peers,
        "peers_skipped": skipped,
        "params": params,
        "client": client,
        "pinning": {"server_cpu": pin.server, "loadgen_cpu": pin.loadgen},
        "machine": machine(),
        "versions": versions(a.peer_python, peers),
        "hubbub_settings": HUBBUB_TOML,
        "summary": summary,
        "comparison": comparisons(summary, peers),
        "targets": targets_of_issue(summary, params),
        "errors": [
            {"target": r["target"], "scenario": r["scenario"], "rep": r["rep"], "error": r["error"]}
            for r in runs
            if r.get("error")
        ],
        "notes": notes,
        "runs": runs,
    }
    busy: dict[str, list[float]] = {}
    for r in runs:
        if r.get("error"):
            continue
        for ph in (r.get("result") or {}).get("phases", []):
            cpu = ph.get("client_cpu_util") or 0.0
            if cpu > 0.9:
                busy.setdefault(f"{r['target']} {r['scenario']}.{ph['label']}", []).append(cpu)
    for where, seen in busy.items():
        notes.append(
            f"{where}: the load generator was at {min(seen):.0%}-{max(seen):.0%} CPU in "
            f"{len(seen)}/{reps} run(s); the server CPU per message is the figure to compare there"
        )
    if not a.no_plot:
        why = plot(result, out / "bench.png")
        if why:
            notes.append(why)
        else:
            result["plot"] = str(out / "bench.png")
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print_summary(result)
    print(
        f"\nwrote {out / 'results.json'}" + (f" and {result['plot']}" if "plot" in result else "")
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
