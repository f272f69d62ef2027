"""``reloblur simulate`` (and, later, ``reloblur capture``): parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from reloblur.dataset_cli.common import (
    DefaultToRun,
    fail_partially,
    finish_batch,
    parse_size,
    print_json,
    print_table,
    stderr,
    stdout,
)
from reloblur.errors import ReloblurError
from reloblur.formats.timing import DEFAULT_B_EXPOSURE_US, DEFAULT_S_EXPOSURE_US, check_s_phase


def simulate_command(
    out: Annotated[Path, typer.Argument(help="Output directory (created; resumed if it exists).", show_default=False)],
    pairs: Annotated[int, typer.Option("--pairs", "-n", help="Number of B/S pairs.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same bytes.")] = 0,
    size: Annotated[str, typer.Option("--size", help="Frame size WxH (ReLoBlur captures 2152x1436).")] = "2152x1436",
    layout: Annotated[
        str, typer.Option("--layout", help="session: raw camera frames + ground truth; reloblur: aligned dataset; "
                                           "burst: one fast camera's raw bursts (same as --mode burst).")
    ] = "session",
    mode: Annotated[str, typer.Option(
        "--mode", help="rig: the two-camera beam-splitter rig; burst: one fast camera, overlapped exposures.")] = "rig",
    frames: Annotated[int, typer.Option("--frames", "-k", help="Frames per burst (--mode burst).")] = 8,
    exposed_fraction: Annotated[float, typer.Option(
        "--exposed-fraction", help="Exposure over frame period of a burst (--mode burst).")] = 0.98,
    shake: Annotated[float, typer.Option("--shake", help="Camera drift over a burst, px (--mode burst).")] = 0.0,
    bayer: Annotated[bool, typer.Option("--bayer", metavar="", help="Write raw RGGB Bayer frames (session layout).")] = False,
    pairs_per_scene: Annotated[int, typer.Option("--pairs-per-scene", help="Pairs sharing a background.")] = 4,
    static_fraction: Annotated[float, typer.Option("--static-fraction", help="Share of pairs with no motion.")] = 0.15,
    varied_scenes: Annotated[bool, typer.Option(
        "--varied-scenes", metavar="", help="Also plain walls and sky, dark and over-exposed scenes, objects of one "
                                            "colour (docs/simulator.md).")] = False,
    s_phase: Annotated[str, typer.Option("--s-phase", help="Instant of B's exposure S shows: start, middle, end.")] = "middle",
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of scenes in test (reloblur layout).")] = 0.2,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")] = None,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Simulate the two-camera rig: moving objects over real photographs, B blurred, S sharp.

    Examples:

      reloblur simulate sim-session --size 720x480 --pairs 8

      reloblur simulate sim-data --layout reloblur --size 538x359 --pairs 40

      reloblur simulate sim-bursts --mode burst --frames 8 --size 538x359   # then: reloblur burst build
    """
    from reloblur.sim.simulate import LAYOUTS, SimulateOptions, simulate

    width, height = parse_size(size)
    if mode not in ("rig", "burst"):
        raise ReloblurError(f"--mode {mode!r}: choose rig or burst")
    if mode == "burst":
        if layout not in ("session", "burst"):
            raise ReloblurError(f"--mode burst writes burst folders; --layout {layout!r} is for the rig")
        layout = "burst"
    if layout not in LAYOUTS:
        raise ReloblurError(f"--layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    result = simulate(
        SimulateOptions(
            out=out, pairs=pairs, seed=seed, width=width, height=height, layout=layout, bayer=bayer,
            pairs_per_scene=pairs_per_scene, static_fraction=static_fraction, s_phase=check_s_phase(s_phase),
            test_fraction=test_fraction, workers=workers, progress=not json_output, frames=frames,
            exposed_fraction=exposed_fraction, shake_px=shake, varied_scenes=varied_scenes,
        )
    )
    finish_batch(result, result.failures, json_output=json_output, summary=lambda: [
        f"simulated {result.layout} -> {escape(result.out)}: {result.written} pair(s) written, "
        f"{result.resumed} already there, {len(result.failures)} failed, {result.seconds:.1f} s",
    ])






capture_app = typer.Typer(
    cls=DefaultToRun,
    help=("Drive the two cameras and the sync box: list devices, preview, capture pairs.\n\n"
          "reloblur capture --session DIR ... is short for reloblur capture run --session DIR ..."),
    no_args_is_help=True,
)
BackendOpt = Annotated[str, typer.Option("--backend", help="harvesters (GenTL), aravis, or sim (simulated rig).")]
FakeOpt = Annotated[bool, typer.Option("--fake", metavar="", help="aravis: enable Aravis's fake camera (Fake_1).")]
EmulateOpt = Annotated[int, typer.Option("--emulate", help="pylon: this many emulated Basler cameras (PYLON_CAMEMU).")]
CtiOpt = Annotated[Optional[list[str]], typer.Option("--cti", help="GenTL producer file (repeatable); also GENICAM_GENTL64_PATH.")]
SizeOpt = Annotated[str, typer.Option("--size", help="Frame size of the sim backend.")]


@capture_app.command("run")
def capture_command(
    session: Annotated[Path, typer.Option("--session", help="Session directory (created, or resumed).")],
    rig: Annotated[Optional[Path], typer.Option("--rig", help="Rig file (TOML or YAML), see docs/rig-example.toml.")] = None,
    backend: BackendOpt = "harvesters",
    cti: CtiOpt = None,
    b: Annotated[str, typer.Option("--b", help="B camera: index, serial or user-defined name.")] = "0",
    s: Annotated[str, typer.Option("--s", help="S camera: index, serial or user-defined name.")] = "1",
    pairs: Annotated[int, typer.Option("--pairs", "-n", help="Pairs to capture.")] = 10,
    rate: Annotated[float, typer.Option("--rate", help="Pairs per second.")] = 5.0,
    b_exposure: Annotated[Optional[float], typer.Option("--b-exposure", help="B exposure (us).")] = DEFAULT_B_EXPOSURE_US,
    s_exposure: Annotated[Optional[float], typer.Option("--s-exposure", help="S exposure (us).")] = DEFAULT_S_EXPOSURE_US,
    gain: Annotated[Optional[float], typer.Option(
        "--gain", help="Gain (dB) of both cameras; refused by a camera whose only gain is GainRaw (device units).")] = None,
    user_set: Annotated[str, typer.Option(
        "--user-set", help="User set loaded before anything is set: Default (factory), one the lab saved (UserSet1), "
                           "or none to keep the camera's current settings. A rig file sets it per camera.")] = "Default",
    pixel_format: Annotated[Optional[str], typer.Option("--pixel-format", help="e.g. BayerRG12, Mono16.")] = None,
    sync: Annotated[Optional[str], typer.Option("--sync", help="Sync box pyserial URL; sim:// (or sim) = the emulator.")] = None,
    s_phase: Annotated[str, typer.Option("--s-phase", help="S at the start, middle or end of B's exposure (burst: of the burst).")] = "middle",
    clocks: Annotated[str, typer.Option(
        "--clocks", help="The cameras' timestamps: independent (each its own clock: S - B is checked from pair to "
                         "pair) or shared (PTP: S - B is checked against the planned delay). A rig file sets "
                         "clocks under its sync table.")] = "independent",
    scene: Annotated[Optional[str], typer.Option("--scene", help="Scene label recorded with each pair.")] = None,
    size: SizeOpt = "720x480",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sim backend.")] = 0,
    queue_size: Annotated[int, typer.Option("--queue", help="Pairs buffered for the writer.")] = 16,
    fake: FakeOpt = False,
    emulate: EmulateOpt = 0,
    mode: Annotated[str, typer.Option(
        "--mode", help="rig: two cameras and the sync box; burst: one fast camera, bursts of overlapped "
                       "exposures into burst folders under --session (docs/burst.md).")] = "rig",
    camera: Annotated[str, typer.Option("--camera", help="burst: the camera (index, serial or name).")] = "0",
    frames_per_pair: Annotated[int, typer.Option("--frames-per-pair", "-k", help="burst: frames per burst (K).")] = 8,
    exposure: Annotated[Optional[float], typer.Option("--exposure", help="burst: exposure per frame (us).")] = None,
    fps: Annotated[Optional[float], typer.Option(
        "--fps", help="burst: frame rate \\[default: the fastest the camera runs].")] = None,
    keep_frames: Annotated[bool, typer.Option(
        "--keep-frames", metavar="", help="burst: keep every raw frame, not only their exact sum and S.")] = False,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print the summary as JSON.")] = False,
) -> None:
    """Capture B/S pairs into a crash-safe session (Ctrl-C finishes queued pairs and stops).

    Examples:

      reloblur capture --session s1 --rig rig.toml --pairs 200

      reloblur capture --session s1 --cti /opt/mvIMPACT/lib/x86_64/mvGenTLProducer.cti --b 0 --s 1 --pairs 20

      reloblur capture --session sim1 --backend sim --sync sim --pairs 20

      reloblur capture --mode burst --session bursts --backend pylon --camera 0 --pairs 50 -k 8 --exposure 1960
    """
    from reloblur.capture.rig import user_set_named

    if mode not in ("rig", "burst"):
        raise ReloblurError(f"--mode {mode!r}: choose rig or burst")
    if mode == "burst":
        _capture_bursts(session, backend, cti, camera, pairs, frames_per_pair, exposure, fps, gain, pixel_format,
                        s_phase, scene, size, seed, fake, emulate, keep_frames, user_set_named(user_set), json_output)
        return
    from reloblur.capture.recorder import CaptureOptions, capture, quick_rig
    from reloblur.capture.registry import backend_options
    from reloblur.capture.rig import load_rig
    from reloblur.sim import register_serial_handlers

    register_serial_handlers()  # --sync sim:// is the emulator, whatever the cameras

    rig_config = load_rig(rig) if rig else quick_rig(
        b, s, b_exposure_us=b_exposure, s_exposure_us=s_exposure, gain_db=gain, pixel_format=pixel_format,
        sync=sync, s_phase=s_phase, rate_hz=rate, simulated_nd=backend == "sim", user_set=user_set_named(user_set),
        clocks=clocks)
    # The sim backend's cameras keep time as the rig says real ones do.
    source = backend_options(backend, cti=tuple(cti or ()), fake=fake, emulate=emulate, size=parse_size(size), seed=seed,
                             s_phase=rig_config.s_phase, shared_clock=rig_config.clocks == "shared")
    summary = capture(CaptureOptions(session=session, rig=rig_config, backend=source, pairs=pairs,
                                     queue_size=queue_size, scene=scene, progress=not json_output))
    _finish_capture(
        summary, json_output=json_output, what="pair(s)",
        headline=(f"{summary.recorded} pair(s) recorded, {summary.rejected} rejected in {summary.seconds:.1f} s "
                  f"({summary.sync_mode} sync; writer queue high-water {summary.queue_high_water}) -> "
                  f"{escape(summary.session)}"),
        slowed="the writers fell behind {n} time(s): the trigger rate dropped",
        interrupted="interrupted: queued pairs were written, cameras and port closed")


def _finish_capture(summary: Any, *, json_output: bool, what: str, headline: str, slowed: str,
                    interrupted: str) -> None:
    """A capture's summary (or its JSON) on stdout; then its ending as the exit code: an
    error exits 1 saying what before it is intact, rejected items exit 2."""
    if json_output:
        print_json(summary)
    else:
        stdout.print(headline)
        for reason, count in summary.reasons.items():
            stdout.print(f"  rejected {count}x: {escape(reason)}")
        if summary.slowed:
            stdout.print(f"[yellow]{slowed.format(n=summary.slowed)}[/]")
        if summary.interrupted:
            stdout.print(interrupted)
    if summary.error:
        raise ReloblurError(f"capture stopped: {summary.error} (the {summary.recorded} {what} before are intact)")
    if summary.rejected and not summary.interrupted:
        fail_partially(summary.rejected, f"{what} rejected (see the log), capture")


def _capture_bursts(out: Path, backend: str, cti: Optional[list[str]], camera: str, bursts: int, frames: int,
                    exposure: Optional[float], fps: Optional[float], gain: Optional[float], pixel_format: Optional[str],
                    phase: str, scene: Optional[str], size: str, seed: int, fake: bool, emulate: int,
                    keep_frames: bool, user_set: Optional[str], json_output: bool) -> None:
    from reloblur.capture.burst import BurstCaptureOptions, capture_bursts
    from reloblur.capture.registry import backend_options

    source = backend_options(backend, cti=tuple(cti or ()), fake=fake, emulate=emulate, size=parse_size(size),
                             seed=seed, burst_frames=frames)
    summary = capture_bursts(BurstCaptureOptions(
        out=out, camera=camera, backend=source, bursts=bursts, frames=frames, exposure_us=exposure, fps=fps,
        pixel_format=pixel_format, gain_db=gain, user_set=user_set, keep_frames=keep_frames, phase=check_s_phase(phase),
        scene=scene or "s01", progress=not json_output))
    fraction = "unknown" if summary.exposed_fraction is None else f"{summary.exposed_fraction:.0%}"
    _finish_capture(
        summary, json_output=json_output, what="burst(s)",
        headline=(f"{summary.recorded} burst(s) of {frames} frames recorded, {summary.rejected} rejected in "
                  f"{summary.seconds:.1f} s (exposed fraction {fraction}) -> {escape(summary.out)}"),
        slowed=("the writers fell behind {n} time(s): fetching waited for them, and a camera may have dropped "
                "frames then; keep only the sums (no --keep-frames) or use a faster disk"),
        interrupted="interrupted: the bursts recorded before are complete")


@capture_app.command("list")
def list_command(
    backend: BackendOpt = "harvesters",
    cti: CtiOpt = None,
    fake: FakeOpt = False,
    emulate: EmulateOpt = 0,
    size: SizeOpt = "720x480",
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Devices and which standard (SFNC) features each has.

    Examples:

      reloblur capture list --cti /opt/mvIMPACT/lib/x86_64/mvGenTLProducer.cti

      reloblur capture list --backend aravis --fake --json

      reloblur capture list --backend pylon --emulate 2

      reloblur capture list --backend sim
    """
    from reloblur.capture.cameras import SFNC_FEATURES
    from reloblur.capture.registry import backend_options, open_backend

    rows: list[dict[str, Any]] = []
    with open_backend(backend_options(backend, cti=tuple(cti or ()), fake=fake, emulate=emulate, size=parse_size(size))) as source:
        for device in source.devices():
            try:
                with source.open(str(device.index)) as camera:
                    features: dict[str, Any] = {name: {"node": f.node, "writable": f.writable, "value": f.value}
                                for name, f in camera.features().items()}
            except ReloblurError as exc:
                features = {"error": str(exc)}
            rows.append({"index": device.index, "vendor": device.vendor, "model": device.model, "serial": device.serial,
                         "id": device.id, "user_name": device.user_name, "access": device.access, "features": features})
    if json_output:
        print_json(rows)
        return
    cells = []
    for row in rows:
        features = row["features"]
        present = [n for n in SFNC_FEATURES if features.get(n, {}).get("node")]
        missing = [n for n in SFNC_FEATURES if n not in present]
        cells.append((str(row["index"]), *(escape(str(row[key])) for key in ("vendor", "model", "serial", "id", "access")),
                      f"[green]{', '.join(present) or '-'}[/]\n[red]missing: {', '.join(missing) or 'none'}[/]"))
    columns = ("#", "vendor", "model", "serial", "id", "access", "standard features present / missing")
    print_table(f"{len(rows)} camera(s) on backend {backend}", columns, cells, fold=columns)


@capture_app.command("preview")
def preview_command(
    backend: BackendOpt = "harvesters",
    cti: CtiOpt = None,
    b: Annotated[str, typer.Option("--b", help="B camera.")] = "0",
    s: Annotated[str, typer.Option("--s", help="S camera.")] = "1",
    frames: Annotated[Optional[int], typer.Option("--frames", help="Stop after this many frames per camera.")] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Write preview JPEGs here.")] = None,
    size: SizeOpt = "720x480",
    fake: FakeOpt = False,
    emulate: EmulateOpt = 0,
) -> None:
    """Live view per camera: frame rate, applied exposure and gain, histogram, saturation,
    focus (variance of the Laplacian) and the B/S brightness ratio.

    Examples:

      reloblur capture preview --cti producer.cti --b 0 --s 1

      reloblur capture preview --backend sim --b SIM-B --s SIM-S --frames 20 --save preview/
    """
    from rich.live import Live
    from rich.table import Table

    from reloblur.capture.preview import run_preview
    from reloblur.capture.registry import backend_options, open_backend

    options = backend_options(backend, cti=tuple(cti or ()), fake=fake, emulate=emulate, size=parse_size(size))
    with open_backend(options) as source, source.open(b) as cam_b, source.open(s) as cam_s:
        cameras = {"B": cam_b, "S": cam_s}
        live = Live(auto_refresh=False, console=stdout)

        def render(stats, ratio) -> None:
            table = Table(title="preview (Ctrl-C to stop)")
            for column in ("camera", "fps", "exposure us", "gain", "histogram", "saturated", "focus"):
                table.add_column(column)
            for role, st in stats.items():
                cam = cameras[role]
                table.add_row(f"{role} {cam.info.serial}", f"{st.fps:.1f}", str(cam.feature("ExposureTime").value),
                              str(cam.feature("Gain").value), st.sparkline(), f"{st.saturated_percent:.2f} %",
                              f"{st.focus * 1e4:.2f}")
            table.caption = f"B/S brightness ratio: {ratio:.3f}" if ratio else ""
            live.update(table, refresh=True)

        with live:
            run_preview(cameras, frames=frames, save=save, render=render)


@capture_app.command("syncbox-emulator")
def emulator_command() -> None:
    """Serve the sync-box protocol on a new pseudo-terminal and print its path (Ctrl-C stops).

    Examples:

      reloblur capture syncbox-emulator      # prints e.g. /dev/pts/7; then --sync /dev/pts/7
    """
    import time

    from reloblur.sim.syncbox_emulator import PtySyncBox

    with PtySyncBox() as box:
        typer.echo(box.path, err=False)
        stderr.print(f"sync-box emulator listening on {box.path} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and the ``capture`` command group to the app."""
    app.command("simulate")(simulate_command)
    app.add_typer(capture_app, name="capture")
