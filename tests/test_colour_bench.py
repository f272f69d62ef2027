"""``benchmarks/colour_bench.py``: align's colour fit scored against pairgen's true colour
relation, beside the fit told nothing of the cameras' clipped outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "colour_bench.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_the_undone_row_scores_the_fit_told_of_clipped_outputs_against_the_baseline_in_the_same_run(tmp_path):
    """A moving and a static pair of the undone row: both fits scored per pair, and the one
    told where the outputs clipped lies nearer the truth (0.05 and 0.003 against 0.79 and
    0.04 on the ColorChecker on 2026-12-06's generator; 0.02 and 0.01 against 0.63 and 0.17
    before, when its cameras' matrices clipped far more at black)."""
    out = tmp_path / "colour.json"
    done = _run("--seeds", "0", "--moving", "1", "--static", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "baseline / ours" in done.stdout
    row = json.loads(out.read_text())["rows"]["over-exposed, in-camera colour recorded and undone"]
    assert sorted(row["pairs"]) == ["0:0", "0:1"]
    for told, untold, mode, samples in row["pairs"].values():
        assert mode == "matrix" and samples >= 100
        assert told < 0.1 and 2 * told < untold
    assert row["ours"]["mean"] < row["untold"]["mean"]


def test_a_row_name_no_row_holds_is_a_user_error():
    done = _run("--only", "no such row")
    assert done.returncode == 1 and "no such row" in done.stderr
