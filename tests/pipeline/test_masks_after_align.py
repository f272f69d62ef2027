"""End to end as a user runs it: an unaligned simulated session with Bayer frames (the
simulator's hardest camera condition: two demosaics, per-camera colour and gain, a
homography) through ``reloblur align --no-crop`` and ``reloblur mask generate``, scored
against the simulator's ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import benchmark_module
from reloblur.dataset_cli.app import app
from reloblur.formats.session import Session
from reloblur.imaging.imageio import read_image, write_image
from reloblur.lbfmg.clipping import crosstalk_ratios
from reloblur.lbfmg.metrics import area_fraction, iou
from reloblur.sim.simulate import SimulateOptions, simulate

runner = CliRunner()


def test_bayer_session_aligned_uncropped_then_masked_matches_the_truth(tmp_path):
    session_dir = tmp_path / "session"
    simulate(SimulateOptions(out=session_dir, pairs=8, width=360, height=240, bayer=True, seed=5,
                             pairs_per_scene=4, static_fraction=0.25, workers=1, progress=False))
    aligned = tmp_path / "data" / "aligned"
    result = runner.invoke(app, ["align", str(session_dir), str(aligned), "--no-crop", "--workers", "1", "--json"])
    assert result.exit_code in (0, 2), result.output
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--workers", "1", "--json"])
    assert result.exit_code in (0, 2), result.output
    report = json.loads(result.stdout)
    assert report["generated"] >= 7
    masks = tmp_path / "data" / "masks"
    session = Session(session_dir)
    records = {r.pair: r for r in session.pairs()}
    moving, static = [], []
    for sidecar in sorted(aligned.rglob("*.align.json")):
        data = json.loads(sidecar.read_text())
        index = sidecar.name[: -len(".align.json")]
        assert (sidecar.parent / f"{index}.valid.png").exists()  # uncropped: S's extent is recorded
        mask = read_image(masks / sidecar.parent.relative_to(aligned) / f"{index}.png")
        # Bayer frames: nothing mixed colour after the clip, so by default (auto) the mask
        # step measures the crosstalk with the colour matrix align corrected S with
        assert data["camera_colour"] == {"B": "raw", "S": "raw"}
        mask_record = json.loads((masks / sidecar.parent.relative_to(aligned) / f"{index}.json").read_text())
        assert "align" in mask_record["inputs"] and mask_record["params"]["crosstalk"] == "measured"
        ratio = crosstalk_ratios(np.array(data["color_matrix"])).max()
        assert mask_record["diagnostics"]["crosstalk_ratio"] == pytest.approx(ratio)
        record = records[data["source"]["session_pair"]]
        truth = session.truth_mask(record)
        if session.truth(record)["static"]:
            static.append(area_fraction(mask))
        else:
            moving.append(iou(mask, truth))
    assert moving and static
    # Measured 2026-12-01 on these 8 pairs: mean IoU 0.86 (the lowest 0.71), static area
    # 0.15 % and 0.07 % (2026-11-29: 0.87, and 1.4 % each); the same with the prior.
    # The bounds leave room for noise; docs/benchmarks.md has the suite-wide figures.
    assert np.mean(moving) > 0.8, moving
    assert max(static) <= 0.025, static

    # --crosstalk prior reads align's record for the signs of S's colour matrix (an excess
    # both cameras clipped), and measures no crosstalk through it.
    prior = tmp_path / "data" / "masks-prior"
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--out", str(prior), "--crosstalk", "prior",
                                 "--workers", "1", "--json"])
    assert result.exit_code in (0, 2), result.output
    for sidecar in sorted(aligned.rglob("*.align.json")):
        index = sidecar.name[: -len(".align.json")]
        mask_record = json.loads((prior / sidecar.parent.relative_to(aligned) / f"{index}.json").read_text())
        assert "align" in mask_record["inputs"] and "crosstalk" not in mask_record["params"]
        assert mask_record["diagnostics"]["crosstalk_ratio"] is None

    # A sidecar whose matrix that cannot use: the pair is redone (its align input changed)
    # and fails naming the file; its mask stays as it was, the others resume, under either
    # crosstalk model.
    sidecar = sorted(aligned.rglob("*.align.json"))[0]
    index = sidecar.name[: -len(".align.json")]
    mask_file = masks / sidecar.parent.relative_to(aligned) / f"{index}.png"
    before = mask_file.read_bytes()
    data = json.loads(sidecar.read_text())
    data["color_matrix"][1][1] = 0.0
    sidecar.write_text(json.dumps(data))
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--workers", "1", "--json"])
    assert result.exit_code == 2, result.output
    assert sidecar.name in result.output and "non-zero diagonal" in result.output
    assert mask_file.read_bytes() == before
    assert json.loads(result.stdout)["resumed"] >= 7
    prior_file = prior / sidecar.parent.relative_to(aligned) / f"{index}.png"
    before = prior_file.read_bytes()
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--out", str(prior), "--crosstalk", "prior",
                                 "--workers", "1", "--json"])
    assert result.exit_code == 2 and sidecar.name in result.output, result.output
    assert json.loads(result.stdout)["resumed"] == report["generated"] - 1, result.output
    assert prior_file.read_bytes() == before
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--crosstalk", "guess", "--workers", "1"])
    assert result.exit_code == 1 and "--crosstalk 'guess'" in result.output, result.output


@pytest.mark.parametrize(("seed", "index"), [(8, 12), (6, 10)])
def test_a_static_saturated_object_in_jpeg_coded_frames_is_not_marked(seed, index, tmp_path):
    """Pairs the project's simulator did not make (``benchmarks/othergen.py``'s in-camera
    JPEG row, S's shot noise 4x B's): a static saturated object (a red box B blew out, a
    cyan-to-green cut) that ``align``'s colour fit, made on the grey majority of coded
    frames, leaves desaturated in S. A local colour map puts the saturation back, and with
    it S's noise and coding error: judged against S's noise as it was, a third to a half of
    the object's measured pixels stayed above ``--low`` and the pairs were marked over
    2.16 % and 0.87 % of the frame. Judged against the noise the map carries, neither is.
    On CPUs without AVX-512, whose float sums in ``align`` round differently, hysteresis
    joined seed 8's blown-out box to the dark coded detail beside it, which no map explains,
    and the region was marked over 1.45 % of the frame: the box is judged apart from it
    (0.21 %)."""
    othergen = benchmark_module("othergen")
    row = next(camera for camera in othergen.ROWS if camera.jpeg)
    blur, sharp, truth = othergen.make_pair(row, index, seed=seed, static=True)
    assert not truth.any()
    pairs, aligned = tmp_path / "pairs", tmp_path / "aligned"
    write_image(pairs / "00_blur.png", blur)
    write_image(pairs / "00_sharp.png", sharp)
    result = runner.invoke(app, ["align", str(pairs), str(aligned), "--no-crop", "--workers", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--out", str(tmp_path / "masks"), "--workers", "1",
                                 "--json"])
    assert result.exit_code in (0, 2), result.output
    (mask,) = [path for path in (tmp_path / "masks").rglob("*.png") if not path.name.endswith(".conf.png")]
    assert area_fraction(read_image(mask)) <= 0.005
