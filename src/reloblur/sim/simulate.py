"""``reloblur simulate``: a simulated capture session, or a perfectly aligned ReLoBlur dataset.

``layout="session"`` writes what the two cameras record (see
:mod:`reloblur.formats.session`), with ground truth in ``truth/``. ``layout="reloblur"``
writes what flawless post-processing would produce: 8-bit sRGB pairs on B's grid and
their blur masks in the ReLoBlur tree (``OUT/dataset`` and ``OUT/masks``), split by scene.
``layout="burst"`` writes what one fast camera records for the single-camera method: the
raw frames of each burst in a burst folder (:mod:`reloblur.formats.burst_folder`, under
``OUT/bursts``) and the truth masks (``OUT/truth_masks``).

Every layout resumes: pairs already on disk (logged, or with a done sidecar) are skipped,
and re-rendering is deterministic, so an interrupted run finishes with the same bytes.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reloblur import resume
from reloblur.atomic import atomic_write_json
from reloblur.batch import ItemFailure, run_batch
from reloblur.errors import ReloblurError
from reloblur.formats.burst_folder import MANIFEST as BURST_MANIFEST
from reloblur.formats.burst_folder import BurstFrame, BurstManifest
from reloblur.formats.dataset import assign_scenes, move_scenes, plan_scene_moves
from reloblur.formats.session import (
    MANIFEST,
    STATUS_OK,
    CameraRecord,
    PairRecord,
    SessionManifest,
    SessionWriter,
    write_frame,
    write_truth,
)
from reloblur.formats.timing import SPhase
from reloblur.imaging.imageio import encode_srgb, write_image
from reloblur.sim.clock import box_edge_ns, camera_clocks
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, render_burst, scene_name

LAYOUTS = ("session", "reloblur", "burst")
TRIGGER_PERIOD_NS = 200_000_000  # 5 Hz, what the capture benchmark targets
CLOCK_ORIGIN_NS = 1_700_000_000_000_000_000  # fixed, so that output bytes depend on the seed only
HOST_TRANSFER_NS = 5_000_000  # a frame's readout and USB transfer before the host has it
SIMULATION_FILE = "simulation.json"


@dataclass(frozen=True)
class SimulateOptions:
    """Options of ``reloblur simulate``."""

    out: Path
    pairs: int = 8
    seed: int = 0
    width: int = 2152
    height: int = 1436
    layout: str = "session"
    bayer: bool = False
    pairs_per_scene: int = 4
    static_fraction: float = 0.15
    s_phase: SPhase = "middle"
    test_fraction: float = 0.2
    workers: int | None = None
    progress: bool = True
    # layout "burst": frames per burst, exposure over frame period, camera drift over a burst (px)
    frames: int = 8
    exposed_fraction: float = 0.98
    shake_px: float = 0.0
    varied_scenes: bool = False  # SimulatorConfig.varied_scenes

    def simulator_config(self) -> SimulatorConfig:
        """The simulator configuration these options describe."""
        return SimulatorConfig(
            width=self.width,
            height=self.height,
            seed=self.seed,
            pairs_per_scene=self.pairs_per_scene,
            static_fraction=self.static_fraction,
            s_phase=self.s_phase,
            bayer=self.bayer,
            varied_scenes=self.varied_scenes,
        )


@dataclass
class SimulateResult:
    """What ``reloblur simulate`` wrote and resumed."""
    out: str
    layout: str
    pairs: int
    written: int
    resumed: int
    seconds: float
    failures: list[ItemFailure] = field(default_factory=list)
    dataset: str | None = None
    masks: str | None = None


@functools.lru_cache(maxsize=2)
def _simulator(config: SimulatorConfig) -> RigSimulator:
    # One per worker process: the scene background is cached across that worker's pairs.
    return RigSimulator(config)


def _recorded(out: Path, layout: str) -> dict[str, Any] | None:
    """The settings of the simulation ``out`` already holds (None: none), after checking it
    holds the same layout: two layouts in one folder would each read the other's files."""
    marker = out / SIMULATION_FILE
    if marker.exists():
        try:
            record = json.loads(marker.read_text())
            held = record["layout"]
        except (ValueError, KeyError, TypeError):
            raise ReloblurError(f"{marker}: not a simulation record; simulate into another directory") from None
    elif (out / MANIFEST).exists():
        record, held = None, "session"
    else:
        return None
    if held != layout:
        raise ReloblurError(f"{out} already holds a {held} layout; simulate the {layout} layout into "
                            "another directory")
    return record


def _check_same_config(recorded: dict[str, Any] | None, config: SimulatorConfig, where: Path) -> None:
    if recorded is None:
        return
    wanted = config.to_dict()
    differing = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    if differing:
        detail = ", ".join(f"{k}: {recorded.get(k)!r} there, {wanted[k]!r} now" for k in differing)
        raise ReloblurError(
            f"{where} already holds a simulation with other settings ({detail}); "
            "choose another output directory"
        )


# -- session layout ---------------------------------------------------------------------
def _session_manifest(config: SimulatorConfig, sim: RigSimulator) -> SessionManifest:
    pixel_format = "BayerRG16" if config.bayer else "RGB16"

    def camera(role: str, exposure: float, transmission: float) -> CameraRecord:
        return CameraRecord(
            role=role,
            vendor="reloblur",
            model="SimCam",
            serial=f"SIM-{role}",
            backend="sim",
            device_id=f"sim://{role}",
            width=config.width,
            height=config.height,
            pixel_format=pixel_format,
            bit_depth=16,
            exposure_us=exposure,
            gain_db=0.0,
            black_level=0.0,
            trigger_source="simulated",
            lens="simulated 16 mm",
            nd_filter={"name": f"ND{-math.log10(transmission):.1f}", "transmission": transmission}
            if transmission < 1
            else None,
        )

    ratio = config.s_exposure_us / config.b_exposure_us
    return SessionManifest(
        cameras={
            "B": camera("B", config.b_exposure_us, ratio),
            "S": camera("S", config.s_exposure_us, 1.0),
        },
        rig={"name": "simulated beam-splitter rig", "s_phase": config.s_phase},
        sync={
            "mode": "simulated",
            "device": "sim",
            "s_phase": config.s_phase,
            "s_delay_us": config.s_delay_us,
            "s_offset_us": 0.0,
            "period_us": TRIGGER_PERIOD_NS / 1000,
            "clocks": "independent",
        },
        simulation={
            "config": config.to_dict(),
            "rig_truth": {
                "homography_blur_to_sharp": sim.rig.homography_blur_to_sharp.tolist(),
                "radial_distortion": sim.rig.radial_distortion,
                "vignetting": {"blur": sim.rig.vignetting_blur, "sharp": sim.rig.vignetting_sharp},
                "color_matrix_blur": sim.rig.color_matrix_blur.tolist(),
                "color_matrix_sharp": sim.rig.color_matrix_sharp.tolist(),
                "gain_blur": sim.rig.gain_blur,
                "gain_sharp": sim.rig.gain_sharp,
            },
        },
    )


@dataclass(frozen=True)
class _SessionJob:
    config: SimulatorConfig
    root: Path
    pair: int


def _render_session_pair(job: _SessionJob) -> PairRecord:
    """Render one pair and write its truth and frames; the caller appends the log line."""
    sim = _simulator(job.config)
    rendered = sim.render(job.pair)
    write_truth(job.root, job.pair, rendered.truth, rendered.mask)
    # Stamped as the capture's cameras stamp (sim.clock): each on its own clock, from the
    # edge the box really drove; the host receives a frame after its exposure and transfer.
    start = CLOCK_ORIGIN_NS + job.pair * TRIGGER_PERIOD_NS
    edges = {"B": start, "S": start + int(job.config.s_delay_us * 1000)}
    exposures_us = {"B": job.config.b_exposure_us, "S": job.config.s_exposure_us}
    clocks = camera_clocks(job.config.seed, shared=False, now_ns=CLOCK_ORIGIN_NS)
    jitter = np.random.default_rng([job.config.seed, job.pair, 1588])
    frames = {}
    for role, image in (("B", rendered.blur), ("S", rendered.sharp)):
        edge = box_edge_ns(edges[role], jitter)
        frames[role] = write_frame(
            job.root, job.pair, role, image, pixel_format=rendered.pixel_format, frame_id=job.pair + 1,
            timestamp_ns=clocks[role].stamp(edge, jitter),
            host_timestamp_ns=edge + int(1000 * exposures_us[role]) + HOST_TRANSFER_NS,
        )
    return PairRecord(
        pair=job.pair,
        status=STATUS_OK,
        trigger=job.pair,
        frames=frames,
        scene=scene_name(rendered.scene),
        timing={
            "b_exposure_us": job.config.b_exposure_us,
            "s_exposure_us": job.config.s_exposure_us,
            "s_delay_us": job.config.s_delay_us,
            "clocks": "independent",
        },
    )


def _simulate_session(options: SimulateOptions, config: SimulatorConfig) -> SimulateResult:
    out = Path(options.out)
    _recorded(out, "session")
    if (out / MANIFEST).exists():
        existing = SessionWriter(out)
        recorded = (existing.manifest.simulation or {}).get("config")
        existing.close()
        if recorded is None:
            raise ReloblurError(f"{out} holds a real capture session; simulate into another directory")
        _check_same_config(recorded, config, out)
    sim = _simulator(config)
    started = time.perf_counter()
    with SessionWriter(out, _session_manifest(config, sim)) as writer:
        todo = [i for i in range(options.pairs) if i not in writer.recorded_pairs]
        waiting: dict[int, PairRecord] = {}
        order = iter(todo)
        next_due = next(order, None)
        logged = 0

        def append_in_order(_key: str, record: PairRecord) -> None:
            # Workers finish out of order; the log stays in pair order (same bytes as serial).
            nonlocal next_due, logged
            waiting[record.pair] = record
            while next_due is not None and next_due in waiting:
                writer.append(waiting.pop(next_due))
                logged += 1
                next_due = next(order, None)

        result = run_batch(
            _render_session_pair,
            [_SessionJob(config, out, i) for i in todo],
            key=lambda job: f"pair {job.pair:06d}",
            workers=options.workers,
            description="simulating pairs",
            progress=options.progress,
            on_result=append_in_order,
        )
        # A failed pair stalls the in-order append: log the pairs rendered after it, in
        # order, so that every pair counted as written is in the log.
        for pair in [] if next_due is None else [next_due, *order]:
            if pair in waiting:
                writer.append(waiting.pop(pair))
                logged += 1
    return SimulateResult(
        out=str(out),
        layout="session",
        pairs=options.pairs,
        written=logged,
        resumed=options.pairs - len(todo),
        seconds=time.perf_counter() - started,
        failures=list(result.failures),
    )


# -- ReLoBlur layout --------------------------------------------------------------------
@dataclass(frozen=True)
class _DatasetJob:
    config: SimulatorConfig
    dataset: Path
    masks: Path
    split: str
    pair: int


def _render_dataset_pair(job: _DatasetJob) -> str:
    """Render one aligned pair into the ReLoBlur tree; returns ``written`` or ``resumed``."""
    c = job.config
    scene = job.pair // c.pairs_per_scene
    rel = Path(job.split, scene_name(scene), "00")
    index = f"{job.pair % c.pairs_per_scene:02d}"
    blur_path = job.dataset / rel / f"{index}_blur.png"
    sharp_path = job.dataset / rel / f"{index}_sharp.png"
    mask_path = job.masks / rel / f"{index}.png"
    sidecar = job.dataset / rel / f"{index}.json"
    params = {"config": c.to_dict(), "pair": job.pair}
    if resume.is_done(sidecar, {}, params, outputs=(blur_path, sharp_path, mask_path)):
        return "resumed"
    rendered = _simulator(c).render(job.pair, aligned=True)
    write_image(blur_path, encode_srgb(rendered.blur))
    write_image(sharp_path, encode_srgb(rendered.sharp))
    write_image(mask_path, rendered.mask)
    record = resume.done_record({}, params)
    record["source"] = "reloblur simulate --layout reloblur"
    record["truth"] = rendered.truth
    atomic_write_json(sidecar, record)
    return "written"


def _simulate_dataset(options: SimulateOptions, config: SimulatorConfig) -> SimulateResult:
    if config.bayer:
        raise ReloblurError("--bayer applies to the session layout only (ReLoBlur pairs are RGB)")
    out = Path(options.out)
    recorded = _recorded(out, "reloblur")
    if recorded is not None:
        _check_same_config(recorded.get("config"), config, out)
    atomic_write_json(out / SIMULATION_FILE, {"config": config.to_dict(), "layout": "reloblur"})
    dataset, masks = out / "dataset", out / "masks"
    n_scenes = math.ceil(options.pairs / config.pairs_per_scene)
    names = [scene_name(s) for s in range(n_scenes)]
    assignment = assign_scenes(names, test_fraction=options.test_fraction, seed=config.seed)
    # More pairs, or another test fraction, than a previous run into ``out`` can move a scene
    # it rendered to the other split: moved, its pairs resume there, and no scene is in both.
    move_scenes(plan_scene_moves(dataset, masks, assignment))
    jobs = [
        _DatasetJob(config, dataset, masks, assignment[scene_name(i // config.pairs_per_scene)], i)
        for i in range(options.pairs)
    ]
    started = time.perf_counter()
    result = run_batch(
        _render_dataset_pair,
        jobs,
        key=lambda job: f"pair {job.pair:06d}",
        workers=options.workers,
        description="simulating aligned pairs",
        progress=options.progress,
    )
    outcomes = list(result.results.values())
    return SimulateResult(
        out=str(out),
        layout="reloblur",
        pairs=options.pairs,
        written=outcomes.count("written"),
        resumed=outcomes.count("resumed"),
        seconds=time.perf_counter() - started,
        failures=list(result.failures),
        dataset=str(dataset),
        masks=str(masks),
    )


# -- burst folders ----------------------------------------------------------------------
BURST_FRAME_PERIOD_US = 2000.0  # 500 fps, the single-camera method's rate


@dataclass(frozen=True)
class _BurstJob:
    config: SimulatorConfig
    bursts: Path
    truth: Path
    pair: int
    frames: int
    exposed_fraction: float
    shake_px: float


def _render_burst_folder(job: _BurstJob) -> str:
    """Render one burst into ``bursts/<scene>/<NN>/`` and its truth mask into
    ``truth_masks/<scene>/<NN>.png``; returns ``written`` or ``resumed``."""
    c = job.config
    rel = Path(scene_name(job.pair // c.pairs_per_scene), f"{job.pair % c.pairs_per_scene:02d}")
    folder = job.bursts / rel
    mask_path = job.truth / rel.parent / f"{rel.name}.png"
    done = folder / ".done.json"
    params = {"config": c.to_dict(), "pair": job.pair, "frames": job.frames,
              "exposed_fraction": job.exposed_fraction, "shake_px": job.shake_px}
    names = [f"frame_{k:03d}.tiff" for k in range(job.frames)]
    if resume.is_done(done, {}, params, outputs=(folder / BURST_MANIFEST, mask_path, *(folder / n for n in names))):
        return "resumed"
    burst = render_burst(_simulator(c), job.pair, frames=job.frames, exposed_fraction=job.exposed_fraction,
                         shake_px=job.shake_px)
    first_id = job.pair * 1000  # a camera's frame counter runs on between bursts
    frames = []
    for k, name in enumerate(names):
        write_image(folder / name, burst.frames[k])
        frames.append(BurstFrame(name, first_id + k,
                                 CLOCK_ORIGIN_NS + job.pair * TRIGGER_PERIOD_NS + int(k * BURST_FRAME_PERIOD_US * 1000)))
    write_image(mask_path, burst.mask)
    BurstManifest(frames=frames, pixel_format=burst.pixel_format, black_level=0.0,
                  exposure_us=job.exposed_fraction * BURST_FRAME_PERIOD_US, frame_period_us=BURST_FRAME_PERIOD_US,
                  truth=burst.truth).write(folder)
    atomic_write_json(done, resume.done_record({}, params))
    return "written"


def _simulate_bursts(options: SimulateOptions, config: SimulatorConfig) -> SimulateResult:
    out = Path(options.out)
    recorded = _recorded(out, "burst")
    if recorded is not None:
        _check_same_config(recorded.get("config"), config, out)
    atomic_write_json(out / SIMULATION_FILE, {"config": config.to_dict(), "layout": "burst", "frames": options.frames,
                               "exposed_fraction": options.exposed_fraction, "shake_px": options.shake_px})
    jobs = [_BurstJob(config, out / "bursts", out / "truth_masks", i, options.frames, options.exposed_fraction,
                      options.shake_px) for i in range(options.pairs)]
    started = time.perf_counter()
    result = run_batch(_render_burst_folder, jobs, key=lambda job: f"burst {job.pair:06d}", workers=options.workers,
                       description="simulating bursts", progress=options.progress)
    outcomes = list(result.results.values())
    return SimulateResult(out=str(out), layout="burst", pairs=options.pairs, written=outcomes.count("written"),
                          resumed=outcomes.count("resumed"), seconds=time.perf_counter() - started,
                          failures=list(result.failures), dataset=str(out / "bursts"), masks=str(out / "truth_masks"))


def simulate(options: SimulateOptions) -> SimulateResult:
    """Write a simulated session or ReLoBlur dataset; see the module docstring.

    Raises
    ------
    ReloblurError
        Invalid options, or ``out`` holds a simulation with different settings.
    """
    if options.layout not in LAYOUTS:
        raise ReloblurError(f"unknown layout {options.layout!r}; choose from {', '.join(LAYOUTS)}")
    if options.pairs < 1:
        raise ReloblurError(f"--pairs must be at least 1 (got {options.pairs})")
    config = options.simulator_config()
    if options.layout == "session":
        return _simulate_session(options, config)
    if options.layout == "burst":
        if options.frames < 2 or not 0 < options.exposed_fraction <= 1 or options.shake_px < 0:
            raise ReloblurError(f"a burst needs --frames >= 2 (got {options.frames}), --exposed-fraction in (0, 1] "
                                f"(got {options.exposed_fraction}) and --shake >= 0 (got {options.shake_px})")
        return _simulate_bursts(options, config)
    return _simulate_dataset(options, config)
