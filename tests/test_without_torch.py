"""The dataset side works on a machine without torch: ``pip install -e .`` (no ``train``
extra) must keep simulate, align, mask and the dataset tools working. Each command runs in
a fresh interpreter where importing torch fails, as it would there."""

from __future__ import annotations

import subprocess
import sys

LAUNCHER = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch' (blocked: a machine without the train extra)")
        return None

sys.meta_path.insert(0, NoTorch())
from reloblur.dataset_cli.app import main
sys.argv = ["reloblur", *sys.argv[1:]]
main()
"""


def reloblur(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LAUNCHER, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_simulate_align_mask_and_dataset_tools_run_without_torch(tmp_path):
    steps = [
        ("simulate", tmp_path / "session", "--size", "160x112", "--pairs", "2", "--workers", "1"),
        ("align", tmp_path / "session", tmp_path / "aligned", "--workers", "1"),
        ("mask", "generate", tmp_path / "aligned", "--workers", "1"),
        ("simulate", tmp_path / "sim", "--layout", "reloblur", "--size", "160x112", "--pairs", "4", "--workers", "1"),
        ("dataset", "validate", tmp_path / "sim" / "dataset"),
        ("dataset", "stats", tmp_path / "sim" / "dataset", "--json"),
        ("simulate", tmp_path / "bursts", "--mode", "burst", "--size", "160x112", "--pairs", "1", "--workers", "1"),
        ("burst", "build", tmp_path / "bursts" / "bursts", tmp_path / "burst-data", "--workers", "1"),
    ]
    for step in steps:
        done = reloblur(*step)
        assert done.returncode == 0, f"{step}: {done.stderr[-1500:]}"
    assert list((tmp_path / "masks").rglob("*.png"))
    # The launcher really blocks torch: a command that needs it says so.
    needs = reloblur("eval", tmp_path / "sim" / "dataset", "--checkpoint", tmp_path / "nowhere")
    assert needs.returncode == 1 and "this command needs torch: pip install 'reloblur[train]'" in needs.stderr
