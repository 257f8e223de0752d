"""`benchmarks/chat.py` runs on a tiny size against SQLite and PostgreSQL and reports every
message stored and delivered. Nothing here asserts on speed: only on shape and counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chat.py"


@pytest.mark.service
@pytest.mark.timeout(240)
def test_the_chat_benchmark_stores_and_delivers_every_message_on_both_databases(
    tmp_path: Path,
) -> None:
    out = tmp_path / "chat.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--no-pin", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["scenario"] == "chat"
    assert [r["database"] for r in report["results"]] == ["sqlite", "postgresql"]
    for result in report["results"]:
        per_conversation = result["messages"] // result["conversations"]
        total = per_conversation * result["conversations"]
        assert result["stored"] == total
        assert result["delivered"] == total * result["members"]
        assert result["stored_per_s"] > 0 and result["delivered_per_s"] > 0
        assert 0 < result["ack_ms_p50"] <= result["ack_ms_p99"]
