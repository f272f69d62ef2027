"""``reloblur demo``: capture -> align -> masks -> split -> train -> eval -> deblur -> report.

With ``mode="burst"`` the single-camera method instead: one simulated fast camera records
bursts of overlapped exposures, ``burst build`` makes the pairs (no alignment), and the
rest is the same.

Everything runs on the simulated rig, through the same code a lab runs: the ``sim``
camera backend is hardware-triggered by the sync-box emulator on a pseudo-terminal, the
session is aligned and masked by the batch commands, and a small LBAG is trained and
evaluated. Because the simulator knows the truth, the report can score alignment (corner
error of each pair's homography) and masks (IoU) as no real capture can.

Each scene is one capture take with its own simulator seed (its own background and
moving objects); all takes go into one session.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reloblur.errors import ReloblurError

if TYPE_CHECKING:
    from reloblur.lbag.config import TrainConfig


@dataclass(frozen=True)
class DemoOptions:
    """Options of ``reloblur demo``; ``quick`` shrinks everything to fit a CI budget."""

    out: Path
    quick: bool = False
    seed: int = 0
    workers: int | None = None
    progress: bool = True
    mode: str = "rig"  # rig: two cameras and the sync box; burst: one fast camera (docs/burst.md)
    backend: str = "sim"  # rig mode's cameras: the simulated ones, or Basler's emulated ones (demo/pylon_rig.py)
    # Fine-tune the packaged reference model (docs/lbag.md) or train a fresh one: minutes on
    # a CPU are enough to adapt a model, not to make one that deblurs.
    from_scratch: bool = False

    burst_frames = 8  # frames per burst in burst mode

    @property
    def size(self) -> tuple[int, int]:
        """Frame size of the simulated cameras."""
        return (256, 192) if self.quick else (480, 320)

    @property
    def scenes(self) -> int:
        """Number of scenes captured."""
        return 4 if self.quick else 8

    @property
    def pairs_per_scene(self) -> int:
        """Pairs captured per scene."""
        return 3 if self.quick else 4

    @property
    def train_steps(self) -> int:
        """Training steps of the demo model (fine-tuning steps unless ``from_scratch``)."""
        if self.from_scratch:
            return 40 if self.quick else 400
        return 20 if self.quick else 150


@dataclass
class Stage:
    """One stage of the demo: its name, duration and one-line outcome."""
    name: str
    seconds: float
    summary: str


@dataclass
class DemoResult:
    """What the demo made and measured, and where the report is."""
    out: str
    report: str
    stages: list[Stage] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _timed(stages: list[Stage], name: str, fn, describe) -> Any:
    started = time.perf_counter()
    result = fn()
    stages.append(Stage(name, time.perf_counter() - started, describe(result)))
    return result


def _burst_stages(options: DemoOptions, out: Path, dataset: Path, stages: list[Stage]) -> None:
    """Burst mode's capture and build: one simulated fast camera, every frame kept."""
    from reloblur.capture.burst import BurstCaptureOptions, capture_bursts
    from reloblur.capture.registry import SimOptions
    from reloblur.pipeline.burst import BurstBuildOptions, build_bursts

    bursts = out / "bursts"

    def do_capture():
        summaries = []
        for scene in range(options.scenes):
            summaries.append(capture_bursts(BurstCaptureOptions(
                out=bursts, camera="SIM-B", bursts=options.pairs_per_scene, frames=options.burst_frames,
                backend=SimOptions(size=options.size, seed=options.seed + scene, burst_frames=options.burst_frames),
                exposure_us=1960, fps=500, keep_frames=True, scene=f"s{scene + 1:02d}", progress=options.progress)))
        return summaries

    _timed(stages, "capture", do_capture, lambda s: (
        f"{sum(x.recorded for x in s)} bursts of {options.burst_frames} frames in {len(s)} scenes from one "
        f"simulated fast camera (500 fps, exposed fraction {s[0].exposed_fraction:.0%}); "
        f"{sum(x.rejected for x in s)} rejected"))
    report = _timed(stages, "build", lambda: build_bursts(BurstBuildOptions(
        bursts, dataset, workers=options.workers, progress=options.progress)),
        lambda r: f"{r.built} pairs: B the mean of each burst's frames, S its middle frame; {len(r.failures)} failed")
    if report.failures:
        first = report.failures[0]
        raise ReloblurError(f"burst build failed for {len(report.failures)} burst(s); {first.item}: {first.reason}")


def _capture_through_pylon(options: DemoOptions, session_dir: Path, served: Path) -> list[Any]:
    """Each scene's renders served by Basler's emulated cameras and captured through pypylon
    (the same renders the report's truth comes from: each scene is a seed, each pair a trigger)."""
    from reloblur.capture.recorder import CaptureOptions, capture
    from reloblur.capture.registry import PylonOptions
    from reloblur.demo.pylon_rig import emulated_rig, serve_renders, wire_emulated_cameras
    from reloblur.sim import register_serial_handlers
    from reloblur.sim.simulator import RigSimulator, SimulatorConfig

    register_serial_handlers()
    summaries = []
    for scene in range(options.scenes):
        simulator = RigSimulator(SimulatorConfig(width=options.size[0], height=options.size[1],
                                                 seed=options.seed + scene))
        folder = served / f"s{scene + 1:02d}"
        serve_renders([simulator.render(k) for k in range(options.pairs_per_scene)], folder)
        summaries.append(capture(
            CaptureOptions(session=session_dir, rig=emulated_rig("demo-pylon"), pairs=options.pairs_per_scene,
                           scene=f"s{scene + 1:02d}", backend=PylonOptions(emulate=2), progress=options.progress),
            on_open=wire_emulated_cameras(folder, options.size, "demo-pylon")))
        if summaries[-1].error:
            raise ReloblurError(f"capture failed: {summaries[-1].error}")
    return summaries


def _train_config(options: DemoOptions, dataset: Path) -> TrainConfig:
    """The demo's training: a fresh small LBAG, or the reference model fine-tuned at a tenth
    of its learning rate (a newly captured session adapts it; it is not retrained)."""
    from reloblur.lbag.checkpoint import REFERENCE
    from reloblur.lbag.config import TrainConfig

    steps = options.train_steps
    common = TrainConfig(data=str(dataset), patch_size=64 if options.quick else 128, batch_size=4, max_steps=steps,
                         lr_milestones=[10 * steps], val_every=max(1, steps // 4), ckpt_every=steps, log_every=5,
                         num_workers=0, device="cpu", cache_images=True, seed=options.seed)
    if options.from_scratch:
        return replace(common, num_res=1 if options.quick else 2, lr=5e-4)
    return replace(common, init=REFERENCE, num_res=2, lr=5e-5, shift_tolerant=False, cpu_amp=True)


def run_demo(options: DemoOptions) -> DemoResult:
    """Run every stage into ``options.out`` and write ``out/report.html``."""
    from reloblur.capture.recorder import CaptureOptions, capture, quick_rig
    from reloblur.capture.registry import SimOptions
    from reloblur.dataset.split import SplitOptions, split_dataset
    from reloblur.lbag.checkpoint import REFERENCE_FILE
    from reloblur.lbag.deblur_files import DeblurOptions, deblur_files
    from reloblur.lbag.evaluate import EvalOptions, evaluate
    from reloblur.lbag.loop import train
    from reloblur.pipeline.align import AlignOptions, align_all
    from reloblur.pipeline.masks import GenerateOptions, generate_masks

    if options.mode not in ("rig", "burst"):
        raise ReloblurError(f"--mode {options.mode!r}: choose rig or burst")
    if options.backend not in ("sim", "pylon"):
        raise ReloblurError(f"--backend {options.backend!r}: choose sim or pylon")
    if options.backend == "pylon" and options.mode != "rig":
        raise ReloblurError("--backend pylon runs the rig mode (two emulated cameras); burst mode uses the sim backend")
    out = Path(options.out)
    if out.exists() and any(out.iterdir()):
        raise ReloblurError(f"{out} is not empty (a previous demo?): the demo needs a fresh folder; remove it, "
                            "or pass another one with --out")
    out.mkdir(parents=True, exist_ok=True)
    session_dir, dataset, masks = out / "session", out / "data" / "dataset", out / "data" / "masks"
    stages: list[Stage] = []

    def do_capture():
        if options.backend == "pylon":
            return _capture_through_pylon(options, session_dir, out / "served")
        summaries = []
        for scene in range(options.scenes):
            # Cameras on one clock (PTP), so the report can set the measured S delay beside the plan.
            rig = quick_rig("SIM-B", "SIM-S", b_exposure_us=40000, s_exposure_us=2000, gain_db=0.0,
                            pixel_format="RGB16", sync="sim", s_phase="middle", rate_hz=20, simulated_nd=True,
                            clocks="shared")
            summaries.append(capture(CaptureOptions(
                session=session_dir, rig=rig, pairs=options.pairs_per_scene, scene=f"s{scene + 1:02d}",
                backend=SimOptions(size=options.size, seed=options.seed + scene, s_phase=rig.s_phase,
                                   shared_clock=rig.clocks == "shared"),
                progress=options.progress)))
            if summaries[-1].error:
                raise ReloblurError(f"capture failed: {summaries[-1].error}")
        return summaries

    if options.mode == "burst":
        _burst_stages(options, out, dataset, stages)
    else:
        cameras = ("two of Basler's emulated cameras (pypylon) serving the simulator's renders, RGB 8-bit"
                   if options.backend == "pylon" else "RGB 16-bit")
        _timed(stages, "capture", do_capture, lambda s: (
            f"{sum(x.recorded for x in s)} pairs in {len(s)} scenes, {cameras}, hardware-triggered "
            f"through the sync-box emulator; {sum(x.rejected for x in s)} rejected"))

        align_report = _timed(stages, "align", lambda: align_all(AlignOptions(
            input=session_dir, out=dataset, workers=options.workers, progress=options.progress)),
            lambda r: f"{r.aligned} aligned, {len(r.flagged)} flagged, {len(r.failures)} failed")
        if align_report.failures:
            first = align_report.failures[0]
            raise ReloblurError(f"alignment failed for {len(align_report.failures)} pair(s); {first.item}: "
                                f"{first.reason}")

    _timed(stages, "masks", lambda: generate_masks(GenerateOptions(
        dataset, masks, workers=options.workers, progress=options.progress)),
        lambda r: f"{r.generated} masks, mean blur ratio {100 * (r.mean_blur_ratio or 0):.1f} %")

    _timed(stages, "split", lambda: split_dataset(SplitOptions(dataset, masks, test_fraction=0.25,
                                                                       seed=options.seed)),
                   lambda r: f"train scenes {', '.join(r.train_scenes)}; test scenes {', '.join(r.test_scenes)}")

    run_dir = out / "run"
    config = _train_config(options, dataset)
    _timed(stages, "train", lambda: train(config, run_dir, progress=options.progress),
                     lambda r: f"{r.global_step} steps {'of' if options.from_scratch else 'fine-tuning the reference'} "
                               f"LBAG (num_res {config.num_res}, {config.patch_size} px patches, batch "
                               f"{config.batch_size}) on the CPU")

    evaluation = _timed(stages, "eval", lambda: evaluate(EvalOptions(
        data=dataset, checkpoint=run_dir, device="cpu", out=out / "eval", progress=options.progress)),
        lambda r: f"{len(r.images)} test images: PSNR {r.summary['psnr']:.2f} dB (blurry input "
                  f"{r.baseline['psnr']:.2f} dB)")

    # The reference alone on the same test scenes: what fine-tuning on this session added.
    # The packaged file itself: a folder called "reference" in the working directory is not it.
    reference = None if options.from_scratch else _timed(stages, "eval reference", lambda: evaluate(EvalOptions(
        data=dataset, checkpoint=REFERENCE_FILE, device="cpu", progress=options.progress)),
        lambda r: f"the reference model before fine-tuning: PSNR {r.summary['psnr']:.2f} dB")

    _timed(stages, "deblur", lambda: deblur_files(DeblurOptions(
        checkpoint=run_dir, inputs=(dataset / "test",), out=out / "deblurred", device="cpu", gates=True,
        progress=options.progress)), lambda r: f"{len(r.written)} test images deblurred, gate maps written")

    from reloblur.reports.demo_report import write_report

    report = _timed(stages, "report", lambda: write_report(out, stages, evaluation, options, reference=reference),
                    lambda path: str(path))
    # Refresh the report so its stage table includes the report stage itself.
    write_report(out, stages, evaluation, options, reference=reference)
    metrics = {"model": evaluation.summary, "blurry": evaluation.baseline}
    if reference is not None:
        metrics["reference"] = reference.summary
    (out / "demo.json").write_text(json.dumps({
        "stages": [s.__dict__ for s in stages], "summary": evaluation.summary, "baseline": evaluation.baseline,
        "reference": reference.summary if reference is not None else None,
    }, indent=2))
    return DemoResult(str(out), str(report), stages, metrics)
