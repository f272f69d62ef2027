"""Hostile inputs and faults, through the CLI as a user meets them (issue 15).

Each case takes a copy of one prepared world (a capture session, the dataset ``align``
made from it, its masks), breaks one thing, runs one command, and checks four things:

1. the exit code (1: the user can fix the input; 2: a batch finished with failures);
2. that the message names the file or the value at fault;
3. that no file appeared outside the folder the command writes to;
4. that every file written before the command is byte-identical afterwards (a refused
   command wrote nothing; a partial one touched only what it was asked to make).

The list, and what each case showed, is in ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from reloblur.dataset_cli.app import app
from reloblur.imaging.imageio import read_image
from reloblur.sim.simulate import SimulateOptions, simulate

runner = CliRunner()
PARITY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "lbag-parity"


@dataclass
class World:
    """The prepared folders of one case (all inside ``root``)."""

    root: Path

    @property
    def session(self) -> Path:
        return self.root / "session"

    @property
    def dataset(self) -> Path:
        return self.root / "data" / "dataset"

    @property
    def masks(self) -> Path:
        return self.root / "data" / "masks"

    @property
    def pair_dir(self) -> Path:
        return self.dataset / "train" / "s01" / "00"

    def log(self) -> list[dict]:
        return [json.loads(line) for line in (self.session / "pairs.jsonl").read_text().splitlines()]

    def write_log(self, lines: list[dict]) -> None:
        (self.session / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    def frame(self, pair: int, role: str) -> Path:
        return self.session / self.log()[pair]["frames"][role]["file"]


@dataclass(frozen=True)
class Case:
    """One hostile input: ``prepare`` breaks the world and returns the command's arguments
    and the folder it may write into; the output must contain ``names`` (formatted with
    the world's paths) and the command must exit with ``code``."""

    id: str
    prepare: Callable[[World], tuple[list[str], Path]]
    code: int
    names: str


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    simulate(SimulateOptions(out=root / "session", pairs=3, width=320, height=240, workers=1, progress=False,
                             pairs_per_scene=3, static_fraction=0.0, seed=11))
    dataset = root / "data" / "dataset"
    assert runner.invoke(app, ["align", str(root / "session"), str(dataset), "--workers", "1"]).exit_code == 0
    assert runner.invoke(app, ["mask", "generate", str(dataset), "--workers", "1"]).exit_code == 0
    return root


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _png_declaring(path: Path, width: int, height: int) -> None:
    """A small, valid-looking PNG whose header claims ``width`` x ``height``."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _tree(w: World, name: str = "tree") -> Path:
    """A folder tree of one good pair copied from the dataset (align's other input kind)."""
    tree = w.root / name
    tree.mkdir()
    shutil.copy(w.pair_dir / "00_blur.png", tree / "a_blur.png")
    shutil.copy(w.pair_dir / "00_sharp.png", tree / "a_sharp.png")
    return tree


def _align_session(w: World, *extra: str) -> tuple[list[str], Path]:
    out = w.root / "out"
    return ["align", str(w.session), str(out), "--workers", "1", *extra], out


def _edit_log(change: Callable[[list[dict]], None]) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        lines = w.log()
        change(lines)
        w.write_log(lines)
        return _align_session(w)
    return prepare


def _set(key: str, value: object, line: int = 0, role: str | None = None) -> Callable[[list[dict]], None]:
    def change(lines: list[dict]) -> None:
        target = lines[line] if role is None else lines[line]["frames"][role]
        target[key] = value
    return change


def _session_broken(action: Callable[[World], None]) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        action(w)
        return _align_session(w)
    return prepare


def _tree_broken(action: Callable[[World, Path], None]) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        tree = _tree(w)
        action(w, tree)
        out = w.root / "tree-out"
        return ["align", str(tree), str(out), "--workers", "1"], out
    return prepare


def _mask_generate(action: Callable[[World], None], *extra: str) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        action(w)
        return ["mask", "generate", str(w.dataset), "--workers", "1", *extra], w.masks
    return prepare


def _nothing(w: World) -> None:
    return None


def _validate(action: Callable[[World], None]) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        action(w)
        return ["dataset", "validate", str(w.dataset)], w.root / "nowhere"
    return prepare


def _deblur(action: Callable[[World], Path], *extra: str) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        checkpoint = action(w)
        out = w.root / "deblurred"
        return ["deblur", str(w.pair_dir / "00_blur.png"), "-c", str(checkpoint), "-o", str(out), "--device", "cpu",
                *extra], out
    return prepare


def _checkpoint_bytes(data: bytes) -> Callable[[World], Path]:
    def make(w: World) -> Path:
        path = w.root / "model_ckpt_steps_1.ckpt"
        path.write_bytes(data)
        return path
    return make


def _pickle_that_runs_code(w: World) -> Path:
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {w.root / 'pwned'}",))

    path = w.root / "model_ckpt_steps_1.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": Exploit()}))
    return path


def _wrong_keys_checkpoint(w: World) -> Path:
    import torch

    path = w.root / "model_ckpt_steps_1.ckpt"
    torch.save({"state_dict": {"model": {"conv.weight": torch.zeros(3, 3)}}}, path)
    return path


def _nan_float_tiff(w: World, tree: Path) -> None:
    image = read_image(tree / "a_blur.png").astype(np.float32) / 255  # textured: not "featureless"
    image[10, 10, 0] = np.nan
    (tree / "a_blur.png").unlink()
    tifffile.imwrite(tree / "a_blur.tiff", image, photometric="rgb")


def _train_set(setting: str) -> Callable[[World], tuple[list[str], Path]]:
    def prepare(w: World) -> tuple[list[str], Path]:
        run = w.root / "run"
        return ["train", str(w.dataset.parent / "dataset"), "--run-dir", str(run), "--set", setting, "--steps", "1",
                "--device", "cpu"], run
    return prepare


def _write_text(relative: str, text: str) -> Callable[[World], None]:
    def action(w: World) -> None:
        (w.root / relative).write_text(text)
    return action


CASES = [
    # align, session input: names in a session are untrusted
    Case("scene label climbs out", _edit_log(_set("scene", "../../../escaped")), 2, "../../../escaped"),
    Case("scene label absolute", _edit_log(_set("scene", "/tmp/reloblur-escaped")), 2, "/tmp/reloblur-escaped"),
    Case("scene label with a backslash", _edit_log(_set("scene", "a\\..\\b")), 2, "is not a folder name"),
    Case("frame path climbs out", _edit_log(_set("file", "../secret/x.tiff", role="S")), 2, "x.tiff"),
    Case("frame path absolute", _edit_log(_set("file", "/etc/hostname", role="B")), 2, "/etc/hostname"),
    Case("S frame deleted", _session_broken(lambda w: w.frame(1, "S").unlink()), 2, "frame file missing"),
    Case("B frame truncated", _session_broken(lambda w: _truncate(w.frame(2, "B"))), 2, "pair 2"),
    Case("B frame empty", _session_broken(lambda w: w.frame(0, "B").write_bytes(b"")), 2, "pair 0"),
    Case("pairs log line cut off", _session_broken(
        lambda w: (w.session / "pairs.jsonl").write_text((w.session / "pairs.jsonl").read_text()[:-40])), 0,
        "pairs.jsonl: its last line is cut off"),
    Case("manifest not JSON", _session_broken(lambda w: (w.session / "session.json").write_text("{\"rig\": ")), 1,
         "session.json"),
    Case("manifest a list", _session_broken(lambda w: (w.session / "session.json").write_text("[1, 2]")), 1,
         "session.json"),
    Case("black level a string", _session_broken(lambda w: _manifest_camera(w, "black_level", "dark")), 1,
         "black_level"),
    Case("pixel format unknown", _edit_log(_set("pixel_format", "Mono13", role="B")), 2, "Mono13"),
    Case("pairs log not JSON", _session_broken(lambda w: (w.session / "pairs.jsonl").write_text("nonsense\n")), 1,
         "pairs.jsonl"),
    Case("second session into the same OUT", lambda w: (
        ["align", str(w.session), str(w.dataset), "--workers", "1", "--color-mode", "gain"], w.dataset)
        if False else _second_session(w), 1, "--append"),
    Case("--append and --overwrite", lambda w: _align_session(w, "--append", "--overwrite"), 1, "--append"),
    Case("--resize not a size", lambda w: _align_session(w, "--resize", "big"), 1, "--resize"),
    Case("--bit-depth 12", lambda w: _align_session(w, "--bit-depth", "12"), 1, "--bit-depth"),
    Case("--resize-filter unknown", lambda w: _align_session(w, "--resize-filter", "sinc"), 1, "sinc"),
    Case("--color-mode unknown", lambda w: _align_session(w, "--color-mode", "magic"), 1, "magic"),
    Case("input missing", lambda w: (["align", str(w.root / "absent"), str(w.root / "out")], w.root / "out"), 1,
         "absent"),
    Case("calibration not JSON", lambda w: (_write_text("rig.json", "{")(w),
                                            _align_session(w, "--calibration", str(w.root / "rig.json")))[1], 1,
         "rig.json"),
    Case("calibration missing", lambda w: _align_session(w, "--calibration", str(w.root / "none.json")), 1,
         "none.json"),
    # align, folder tree input
    Case("PNG named .tiff", _tree_broken(lambda w, t: (t / "a_sharp.png").rename(t / "a_sharp.tiff")), 2,
         "a_sharp.tiff: holds a PNG image"),
    Case("header claims 100000x100000", _tree_broken(lambda w, t: _png_declaring(t / "a_blur.png", 100000, 100000)),
         2, "a_blur.png"),
    Case("image truncated", _tree_broken(lambda w, t: _truncate(t / "a_sharp.png")), 2, "a_sharp.png"),
    Case("image empty", _tree_broken(lambda w, t: (t / "a_sharp.png").write_bytes(b"")), 2, "a_sharp.png"),
    Case("NaN pixel in a float TIFF", _tree_broken(_nan_float_tiff), 2, "a_blur.tiff"),
    Case("blur without its sharp partner", _tree_broken(lambda w, t: (t / "a_sharp.png").unlink()), 2,
         "a_blur.png"),
    Case("not an image at all", _tree_broken(lambda w, t: (t / "a_blur.png").write_text("hello")), 2, "a_blur.png"),
    # mask generate
    Case("--high nan", _mask_generate(_nothing, "--high", "nan"), 1, "--high"),
    Case("--low above --high", _mask_generate(_nothing, "--low", "10", "--high", "2"), 1, "low"),
    Case("--min-area negative", _mask_generate(_nothing, "--min-area", "-1"), 1, "--min-area"),
    Case("aligned image truncated", _mask_generate(lambda w: _truncate(w.pair_dir / "01_sharp.png")), 2,
         "01_sharp.png"),
    Case("reviewed mask's sidecar truncated", _mask_generate(lambda w: _review_then_truncate(w)), 2, "00.json"),
    Case("mask calibration not JSON", _mask_generate(_write_text("cal.json", "]"), "--calibration", "cal.json"), 1,
         "cal.json"),
    Case("dataset missing", lambda w: (["mask", "generate", str(w.root / "absent")], w.root / "masks"), 1, "absent"),
    # dataset validate
    Case("mask empty", _validate(lambda w: (w.masks / "train" / "s01" / "00" / "00.png").write_bytes(b"")), 1,
         "00.png"),
    Case("mask corrupt", _validate(lambda w: _truncate(w.masks / "train" / "s01" / "00" / "01.png")), 1, "01.png"),
    Case("stray temporary file", _validate(lambda w: (w.pair_dir / ".tmp-00_blur.png.x").write_bytes(b"1")), 1,
         ".tmp-00_blur.png.x"),
    # deblur / checkpoints
    Case("checkpoint empty", _deblur(_checkpoint_bytes(b"")), 1, "model_ckpt_steps_1.ckpt: the checkpoint file is empty"),
    Case("checkpoint not a checkpoint", _deblur(_checkpoint_bytes(b"PK\x03\x04garbage")), 1,
         "model_ckpt_steps_1.ckpt"),
    Case("checkpoint pickle runs code", _deblur(_pickle_that_runs_code), 1, "model_ckpt_steps_1.ckpt"),
    Case("checkpoint of another model", _deblur(_wrong_keys_checkpoint), 1, "model_ckpt_steps_1.ckpt"),
    Case("checkpoint missing", _deblur(lambda w: w.root / "none.ckpt"), 1, "none.ckpt"),
    # train settings
    Case("lr=inf", _train_set("lr=inf"), 1, "lr = inf"),
    Case("unknown setting", _train_set("learning_rat=1"), 1, "learning_rat"),
    Case("setting not KEY=VALUE", _train_set("lr"), 1, "lr"),
    # outputs that cannot be written: the path and the reason, no traceback
    Case("align OUT is a file", lambda w: (_write_text("out", "x")(w), _align_session(w))[1], 1,
         "align OUT is a file"),
    Case("mask --out is a file", lambda w: (_write_text("masks-file", "x")(w), (
        ["mask", "generate", str(w.dataset), "--out", str(w.root / "masks-file")], w.root / "masks-file"))[1], 1,
        "masks-file"),
    Case("deblur -o is a file", lambda w: (_write_text("deblurred", "x")(w),
                                          _deblur(lambda w: PARITY / "model_ckpt_steps_1234.ckpt")(w))[1], 1,
         "deblurred"),
    # simulate
    Case("simulate size 0x0", lambda w: (["simulate", str(w.root / "sim"), "--size", "0x0"], w.root / "sim"), 1,
         "0x0"),
]


def _second_session(w: World) -> tuple[list[str], Path]:
    """Another session whose pairs would land on the dataset's own."""
    other = w.root / "other"
    simulate(SimulateOptions(out=other, pairs=2, width=320, height=240, workers=1, progress=False,
                             pairs_per_scene=2, static_fraction=0.0, seed=12))
    return ["align", str(other), str(w.dataset), "--workers", "1"], w.dataset


def _manifest_camera(w: World, key: str, value: object) -> None:
    """Set ``key`` of camera B in ``session.json``."""
    path = w.session / "session.json"
    manifest = json.loads(path.read_text())
    manifest["cameras"]["B"][key] = value
    path.write_text(json.dumps(manifest))


def _review_then_truncate(w: World) -> None:
    """A curator's edit (the review app's sidecar says edited), then its sidecar cut in half."""
    sidecar = w.masks / "train" / "s01" / "00" / "00.json"
    record = json.loads(sidecar.read_text())
    record["status"] = "edited"
    sidecar.write_text(json.dumps(record))
    _truncate(sidecar)


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, prepared: Path, tmp_path: Path) -> None:
    root = tmp_path / "w"
    shutil.copytree(prepared, root, symlinks=True)
    world = World(root)
    args, out = case.prepare(world)
    before = _files(root)
    outside_before = set(tmp_path.parent.rglob("escaped*")) | set(Path("/tmp").glob("reloblur-escaped*"))
    result = runner.invoke(app, args)
    output = (result.output or "").replace("\n", "")
    assert result.exit_code == case.code, f"{case.id}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if case.names:
        assert case.names in output, f"{case.id}: {case.names!r} not in\n{result.output}"
    after = _files(root)
    for path, data in before.items():
        if out in path.parents and case.code != 1:
            continue  # the command's own output folder, which it may add to
        assert after.get(path) == data, f"{case.id}: {path} changed or vanished"
    created = [p for p in after if p not in before]
    assert all(out in p.parents for p in created), f"{case.id}: wrote outside {out}: {created}"
    outside_after = set(tmp_path.parent.rglob("escaped*")) | set(Path("/tmp").glob("reloblur-escaped*"))
    assert outside_after == outside_before
    assert not (root / "pwned").exists()  # no code from a checkpoint ran


def _limited_file_size(limit: int) -> Callable[[], None]:
    """A child process whose files cannot grow past ``limit`` bytes: the kernel refuses the
    write (EFBIG), as a full disk refuses it (ENOSPC), mid-file."""
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("command", ["align", "train"])
def test_a_write_the_system_refuses_names_the_file_and_leaves_nothing_half_written(command, prepared, tmp_path):
    import subprocess
    import sys

    root = tmp_path / "w"
    shutil.copytree(prepared, root, symlinks=True)
    if command == "align":
        out = root / "out"
        args = ["align", str(root / "session"), str(out), "--workers", "1"]
        limit, code = 20_000, 2  # the aligned PNGs of 320x240 are larger
    else:
        out = root / "run"
        args = ["train", str(root / "data" / "dataset"), "--run-dir", str(out), "--steps", "1", "--num-res", "1",
                "--patch-size", "48", "--batch-size", "1", "--device", "cpu", "--set", "val_every=1",
                "--set", "num_workers=0", "--set", "val_split=train"]
        limit, code = 200_000, 1  # the logs and the checkpoint are larger
    completed = subprocess.run([sys.executable, "-m", "reloblur", *args], capture_output=True, text=True,
                               timeout=300, preexec_fn=_limited_file_size(limit))
    message = completed.stdout + completed.stderr
    assert completed.returncode == code, message
    assert "Traceback" not in message and "cannot write (" in message and "File too large" in message, message
    assert str(out) in message.replace("\n", "")
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert not leftovers  # the failed write's temporary file is gone
