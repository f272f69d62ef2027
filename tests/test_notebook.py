"""The example notebook runs as a user would run it, cell after cell, and its figures hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "pipeline.ipynb"


def test_the_example_notebook_runs_and_its_pair_comes_out_right(tmp_path):
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    script = tmp_path / "notebook.py"
    script.write_text(code)
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                               cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    corner = float(re.search(r"corner error ([\d.]+) px", out).group(1))
    iou = float(re.search(r"IoU against the truth ([\d.]+)", out).group(1))
    psnr = float(re.search(r"PSNR ([\d.]+) dB, SSIM", out).group(1))
    assert corner < 0.25 and iou > 0.6 and 20 < psnr < 60, out


def test_import_reloblur_loads_no_heavy_library_until_a_name_is_used():
    probe = ("import sys, reloblur; heavy = [m for m in ('cv2', 'torch', 'scipy') if m in sys.modules]; "
             "reloblur.generate_mask; print(heavy, 'cv2' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.stdout.strip() == "[] True", completed.stdout + completed.stderr
