from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from reloblur import __version__
from reloblur.dataset_cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"reloblur {__version__}"
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("simulate", "dataset"):
        assert command in result.output
    result = invoke("dataset", "--help")
    for command in ("validate", "stats", "split", "export"):
        assert command in result.output


def test_usage_errors_exit_1():
    assert invoke("simulate", "x", "--bogus").exit_code == 1
    assert invoke("no-such-command").exit_code == 1
    result = invoke("simulate", "x", "--size", "big")
    assert result.exit_code == 1 and "--size 'big'" in result.output


def test_simulate_then_validate_and_stats_json(tmp_path):
    out = tmp_path / "sim"
    result = invoke("simulate", out, "--layout", "reloblur", "--size", "128x96", "--pairs", "6",
                    "--pairs-per-scene", "2", "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 6 and summary["layout"] == "reloblur"

    result = invoke("dataset", "validate", out / "dataset", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs_checked"] == 6 and report["errors"] == 0

    plot = tmp_path / "hist.png"
    result = invoke("dataset", "stats", out / "dataset", "--plot", plot, "--json", "--workers", "1")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["pairs"] == 6 and stats["sizes"] == {"128x96": 6}
    assert 0 < stats["blur_ratio"]["mean"] < 1 and plot.exists()

    result = invoke("dataset", "stats", out / "dataset", "--no-plot")
    assert result.exit_code == 0 and "blur ratio: mean" in result.stdout
    # Not a terminal: no table, the root path whole on the title line, one line per split.
    assert not set("─│┃━┏┡") & set(result.stdout)
    assert f"{(out / 'dataset').resolve()}: 6 pairs" in result.stdout.splitlines()
    assert any(line.startswith("train: scenes: ") and "pairs: " in line for line in result.stdout.splitlines())


def test_validate_exits_1_and_names_the_file(tmp_path, sim_dataset):
    data = tmp_path / "copy"
    shutil.copytree(sim_dataset, data)
    victim = sorted((data / "dataset" / "train").rglob("*_sharp.png"))[0]
    victim.write_bytes(b"")
    result = invoke("dataset", "validate", data / "dataset", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert any(p["path"] == str(victim) and p["code"] == "unreadable" for p in report["problems"])
    human = invoke("dataset", "validate", data / "dataset")
    assert human.exit_code == 1 and "empty file" in human.stdout


def test_split_and_export_commands(tmp_path, sim_dataset):
    data = tmp_path / "copy"
    shutil.copytree(sim_dataset, data)
    result = invoke("dataset", "split", data / "dataset", "--test-fraction", "0.5", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    split = json.loads(result.stdout)
    assert len(split["test_scenes"]) == 3 and len(split["train_scenes"]) == 3
    assert sorted(p.name for p in (data / "dataset" / "test").iterdir()) == split["test_scenes"]

    result = invoke("dataset", "export", data / "dataset", tmp_path / "bsr", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pairs_per_split"] == {"test": 6, "train": 6}


def test_missing_dataset_is_a_user_error(tmp_path):
    result = invoke("dataset", "stats", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "nowhere: dataset root is not a directory" in result.output


def test_simulate_partial_failure_exits_2(tmp_path):
    out = tmp_path / "sim"
    assert invoke("simulate", out, "--size", "96x64", "--pairs", "2", "--workers", "1").exit_code == 0
    # A directory where a frame file must go makes that pair fail; the others succeed.
    shutil.rmtree(out)
    (out / "frames" / "000001_B.tiff").mkdir(parents=True)
    result = invoke("simulate", out, "--size", "96x64", "--pairs", "3", "--workers", "1")
    assert result.exit_code == 2
    assert "pair 000001" in result.output
    # Every pair counted as written is in the log, the one after the failure included.
    logged = [json.loads(line)["pair"] for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert logged == [0, 2] and "2 pair(s) written" in result.output.replace("\n", "")


def _commands(group, prefix=()):
    """Every (path, command) of the app's click tree."""
    yield prefix, group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*prefix, name))


def test_every_commands_help_shows_each_option_help_whole():
    """Rich reads [brackets] as markup: a help text must reach the screen with its
    '[default: ...]' and every other word."""
    import re

    import typer.main

    from reloblur.dataset_cli.app import app as the_app

    root = typer.main.get_command(the_app)
    checked = 0
    for path, command in _commands(root):
        result = CliRunner().invoke(the_app, [*path, "--help"], env={"COLUMNS": "250", "TERM": "dumb"})
        assert result.exit_code == 0, (path, result.output)
        shown = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", result.output))
        help_line = next(line for line in result.output.splitlines() if "--help" in line)
        assert "<bool>" not in help_line, (path, "--help shown as taking a value")
        for param in command.params:
            ours = param.name not in ("install_completion", "show_completion")  # Typer's own
            if ours and (getattr(param, "is_flag", False) or getattr(param, "count", False)):
                line = next(line for line in result.output.splitlines() if param.opts[0] in line)
                assert "<bool>" not in line and "<int>" not in line, (path, param.name, "flag shown as taking a value")
            text = getattr(param, "help", None)
            if not text:
                continue
            expected = re.sub(r"\s+", " ", text.replace("\\[", "["))
            assert expected in shown, (path, param.name, expected)
            checked += 1
    assert checked > 80
    leaves = [(path, command) for path, command in _commands(root) if not hasattr(command, "commands")]
    assert [" ".join(path) for path, command in leaves if "Example" not in (command.help or "")] == []


def test_json_output_is_strict_json_even_for_infinite_values():
    import json

    from reloblur.dataset_cli.common import to_jsonable

    data = to_jsonable({"psnr": float("inf"), "ssim": 1.0, "rows": [float("nan"), 2.5]})
    assert data == {"psnr": None, "ssim": 1.0, "rows": [None, 2.5]}
    json.dumps(data, allow_nan=False)  # raises on Infinity/NaN


def test_validate_output_redirected_is_one_whole_line_per_problem(tmp_path):
    """When stdout is not a terminal (CliRunner, a pipe, a file), a long path must stay on
    one line so that grep finds it."""
    from conftest import make_pair

    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "dataset"
    make_pair(deep / "train" / "s01" / "00", "00")
    (deep / "train" / "s01" / "00" / "00_sharp.png").unlink()
    result = runner.invoke(app, ["dataset", "validate", str(deep)])
    assert result.exit_code == 1
    orphan = str(deep / "train" / "s01" / "00" / "00_blur.png")
    lines = [line for line in result.output.splitlines() if line.startswith(orphan + ":")]
    assert lines and ": error: " in lines[0]


def test_progress_without_a_terminal_is_plain_lines_a_log_can_hold(tmp_path):
    """Under nohup, a scheduler or CI there is no terminal: progress comes as plain lines
    (done/total, elapsed, ETA) every RELOBLUR_PROGRESS_INTERVAL seconds and at the end,
    not as a bar drawn once the job is over."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "RELOBLUR_PROGRESS_INTERVAL": "0"}
    completed = subprocess.run([sys.executable, "-m", "reloblur", "simulate", str(tmp_path / "sim"), "--size", "96x64",
                                "--pairs", "3", "--workers", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("simulating pairs:")]
    assert [line.split(":")[1].split()[0] for line in lines][:3] == ["1/3", "2/3", "3/3"], completed.stderr
    assert all("elapsed" in line for line in lines) and "━" not in completed.stderr  # no bar glyphs


def test_log_file_keeps_the_log_of_any_command(tmp_path):
    """`--log-file` appends info and above, with times, whatever the verbosity shown."""
    log = tmp_path / "run.log"
    result = invoke("--log-file", log, "simulate", tmp_path / "sim", "--size", "96x64", "--pairs", "2",
                    "--workers", "1")
    assert result.exit_code == 0, result.output
    import logging

    from reloblur.lbag.loop import _log

    _log.info("a line only the file should show")
    assert "a line only the file should show" in log.read_text()
    root = logging.getLogger("reloblur")
    for handler in [h for h in root.handlers if getattr(h, "baseFilename", None) == str(log)]:
        root.removeHandler(handler)  # the CLI's process would end here; this test's goes on
        handler.close()
    bad = invoke("--log-file", tmp_path / "no" / "such" / "dir" / "x.log", "simulate", tmp_path / "s2")
    assert bad.exit_code == 1 and "--log-file" in bad.output
