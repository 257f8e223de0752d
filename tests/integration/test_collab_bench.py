"""`benchmarks/collab.py` runs on a tiny size and every editor ends with the same text.
Nothing here asserts on speed: only on shape and counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "collab.py"


@pytest.mark.timeout(120)
def test_the_collab_benchmark_converges_and_reports_its_rates() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--editors", "4", "--edits", "10"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["editors"] == 4
    assert report["updates"] == 40
    assert report["converged"] is True
    assert report["applied_per_s"] > 0 and report["delivered_per_s"] > 0
