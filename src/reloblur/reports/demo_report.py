"""The demo's HTML report: stages, the capture (a raw pair, triggers, frame ids, planned
and measured S delay), alignment and mask quality against the simulator's truth (IoU on
pairs with motion, area flagged on static ones), a contact sheet, the training curve
against the blurry input, metrics and before/after crops of every test scene."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reloblur.atomic import atomic_write_text
from reloblur.formats.align_record import AlignRecord
from reloblur.formats.burst_folder import BurstManifest
from reloblur.formats.session import Session
from reloblur.imaging.imageio import encode_srgb, ensure_rgb, read_image, to_float, write_image
from reloblur.lbfmg.metrics import area_precision, area_recall, iou
from reloblur.plotting import plt, save_figure
from reloblur.postprocess.registration import corner_error
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, render_burst

ASSETS = "report_assets"


def _thumb(image: np.ndarray, width: int = 240) -> np.ndarray:
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


# Okabe-Ito colours, told apart with any colour vision: generated mask, truth.
GENERATED_RGB = (230, 159, 0)  # orange
TRUTH_RGB = (86, 180, 233)  # sky blue


def _overlay(image: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """B with the generated mask's outline (orange, 2 px) and the truth's (sky blue, 1 px)."""
    result = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    for mask, colour, width in ((predicted, GENERATED_RGB, 2), (truth, TRUTH_RGB, 1)):
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(result, contours, -1, colour, width)
    return result


def _truth(options: Any, scene_index: int, trigger: int):
    config = SimulatorConfig(width=options.size[0], height=options.size[1], seed=options.seed + scene_index)
    return RigSimulator(config).render(trigger)


def _burst_quality_rows(out: Path, options: Any) -> list[dict[str, Any]]:
    """Per burst pair: IoU of its mask against the burst's truth (no alignment to score)."""
    rows = []
    for sidecar in sorted((out / "data" / "dataset").rglob("*.burst.json")):
        data = json.loads(sidecar.read_text())
        folder = Path(data["source"]["burst"])
        scene_index = int(folder.parent.name[1:]) - 1
        frames, first = data["frames"], data["frame_ids"][0]
        simulator = RigSimulator(SimulatorConfig(width=options.size[0], height=options.size[1],
                                                 seed=options.seed + scene_index))
        truth_mask = render_burst(simulator, (first - 1) // frames, frames=frames,
                                  exposed_fraction=data["exposed_fraction"], noise=False).mask
        index = sidecar.name.split(".")[0]
        rel = sidecar.parent.relative_to(out / "data" / "dataset")
        mask_path = out / "data" / "masks" / rel / f"{index}.png"
        predicted = read_image(mask_path) if mask_path.exists() else np.zeros_like(truth_mask)
        rows.append({"pair": f"{rel.as_posix()}/{index}", "corner_error_px": None, "mask_iou": iou(predicted, truth_mask),
                     **_mask_parts(predicted, truth_mask), "blur_ratio_truth": float((truth_mask > 0).mean()),
                     "blur_ratio": float((predicted > 0).mean()),
                     "folder": sidecar.parent, "index": index, "truth_mask": truth_mask, "mask": predicted,
                     "burst": folder, "shake_px": data.get("shake_px"), "frame_ids": data["frame_ids"]})
    return rows


def _mask_parts(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Which way a mask's IoU went: the share of the blurred region it covers (recall) and
    the share of it that lies there (precision)."""
    return {"mask_recall": area_recall(predicted, truth), "mask_precision": area_precision(predicted, truth)}


def quality_rows(out: Path, options: Any) -> list[dict[str, Any]]:
    """Per pair: corner error of the alignment and IoU of the mask, against the truth."""
    if getattr(options, "mode", "rig") == "burst":
        return _burst_quality_rows(out, options)
    session = Session(out / "session")
    by_pair = {r.pair: r for r in session.pairs()}
    rows = []
    for sidecar in sorted((out / "data" / "dataset").rglob("*.align.json")):
        data = AlignRecord.read(sidecar)
        session_pair = data.source.session_pair
        if session_pair is None:
            continue
        record = by_pair[session_pair]
        if record.scene is None or record.trigger is None:
            continue  # the demo's capture labels every pair and triggers it; another session is not scored
        scene_index = int(record.scene[1:]) - 1
        truth = _truth(options, scene_index, record.trigger)
        width, height = data.input_size
        error = corner_error(np.array(data.homography_blur_to_sharp), np.array(truth.truth["homography_blur_to_sharp"]),
                             width, height, radial=data.radial_distortion,
                             truth_radial=truth.truth.get("radial_distortion", 0.0))
        index = sidecar.name.split(".")[0]
        rel = sidecar.parent.relative_to(out / "data" / "dataset")
        mask_path = out / "data" / "masks" / rel / f"{index}.png"
        x, y, w, h = data.crop
        truth_mask = truth.mask[y : y + h, x : x + w]
        predicted = read_image(mask_path) if mask_path.exists() else np.zeros_like(truth_mask)
        rows.append({"pair": f"{rel.as_posix()}/{index}", "corner_error_px": float(error.max()),
                     "static_psnr": data.qa.static_psnr, "mask_iou": iou(predicted, truth_mask),
                     **_mask_parts(predicted, truth_mask), "blur_ratio_truth": float((truth_mask > 0).mean()),
                     "blur_ratio": float((predicted > 0).mean()),
                     "folder": sidecar.parent, "index": index, "truth_mask": truth_mask, "mask": predicted})
    return rows


def _bar(values: list[float], labels: list[str], title: str, ylabel: str, path: Path, line: float | None = None) -> None:
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(values)), values, color="#3d7ab8")
    if line is not None:
        ax.axhline(line, color="#c33", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=90, fontsize=6)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


def _loss_curve(history: Path, path: Path) -> None:
    steps, l1, total, val = [], [], [], []
    baseline = None
    for line in history.read_text().splitlines():
        record = json.loads(line)
        if "l1" in record:
            steps.append(record["step"])
            l1.append(record["l1"])
            total.append(record["total"])
        elif "validation" in record:
            val.append((record["step"], record["validation"]["psnr"]))
            baseline = record["validation"].get("input_psnr", baseline)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(steps, l1, label="L1 (3 scales)")
    ax.set_xlabel("step")
    ax.set_ylabel("L1")
    ax.grid(alpha=0.3)
    if val:
        twin = ax.twinx()
        twin.plot([s for s, _ in val], [p for _, p in val], "o-", color="#D55E00", label="validation PSNR")
        if baseline is not None:
            twin.axhline(baseline, color="#D55E00", linestyle="--", linewidth=1, label="blurry input")
        twin.set_ylabel("validation PSNR (dB)")
        twin.legend(loc="lower right")
    ax.set_title("training")
    ax.legend(loc="upper right")
    save_figure(fig, path)


def write_report(out: Path, stages: list, evaluation: Any, options: Any, *, reference: Any = None) -> Path:
    """Write ``report.html`` with every stage's evidence under ``out``; returns its path.

    ``stages`` are the demo's :class:`~reloblur.demo.pipeline.Stage` records, ``evaluation``
    its :class:`~reloblur.lbag.evaluate.EvalResult`, ``options`` its ``DemoOptions``;
    ``reference``, when given, the reference model's evaluation before fine-tuning (a row of
    its own, so the report shows what fine-tuning added or cost).
    """
    assets = out / ASSETS
    assets.mkdir(exist_ok=True)
    rows = quality_rows(out, options)
    labels = [r["pair"] for r in rows]
    burst = getattr(options, "mode", "rig") == "burst"
    if not burst:
        _bar([r["corner_error_px"] for r in rows], labels, "alignment: max corner error vs truth", "px",
             assets / "corner_error.png", line=0.25)
    moving = [r for r in rows if r["blur_ratio_truth"] > 0]
    static = [r for r in rows if r["blur_ratio_truth"] == 0]
    if moving:
        _bar([r["mask_iou"] for r in moving], [r["pair"] for r in moving], "masks on pairs with motion: IoU vs truth",
             "IoU", assets / "mask_iou.png", line=0.85)
    if static:
        _bar([100 * r["blur_ratio"] for r in static], [r["pair"] for r in static],
             "masks on static pairs: area flagged (truth: none)", "% of pixels", assets / "mask_static.png", line=0.5)
    _loss_curve(out / "run" / "history.jsonl", assets / "loss.png")
    capture_rows = _burst_evidence(rows, assets) if burst else _capture_evidence(out, assets)
    _contact_sheet(rows, assets)
    overlays = _overlays(rows, assets)
    crops = _crops(out, evaluation, assets)
    path = out / "report.html"
    atomic_write_text(path, _page(rows, stages, evaluation, options, overlays, crops, capture_rows, reference))
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _contact_sheet(rows: list[dict[str, Any]], assets: Path) -> None:
    """Up to 16 aligned pairs (B | S), four to a row, as one image."""
    sheet = []
    for row in rows[:16]:
        blur = read_image(row["folder"] / f"{row['index']}_blur.png")
        sharp = read_image(row["folder"] / f"{row['index']}_sharp.png")
        sheet.append(_thumb(np.concatenate([blur, sharp], axis=1), 320))
    columns = 4
    height = max(t.shape[0] for t in sheet)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=30) for t in sheet]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 30))
    grid = np.concatenate([np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)], axis=0)
    write_image(assets / "contact_sheet.png", grid)


def _overlays(rows: list[dict[str, Any]], assets: Path) -> list[tuple[str, dict[str, Any]]]:
    """The six worst masks of pairs with motion, drawn over B against the truth."""
    overlays = []
    moving_rows = [r for r in rows if r["blur_ratio_truth"] > 0]
    for k, row in enumerate(sorted(moving_rows, key=lambda r: r["mask_iou"])[:6]):
        blur = read_image(row["folder"] / f"{row['index']}_blur.png")
        write_image(assets / f"overlay_{k}.png", _thumb(_overlay(blur, row["mask"], row["truth_mask"]), 320))
        overlays.append((f"overlay_{k}.png", row))
    return overlays


def _burst_evidence(rows: list[dict[str, Any]], assets: Path, shown: int = 8) -> list[dict[str, Any]]:
    """The first burst's first and last raw frames, and per burst its frame ids and shake."""
    if rows:
        manifest = BurstManifest.read(rows[0]["burst"])
        ends = [read_image(manifest.frame_path(rows[0]["burst"], k)) for k in (0, len(manifest.frames) - 1)]
        thumbs = [_thumb(encode_srgb(to_float(ensure_rgb(f))), 320) for f in ends]
        write_image(assets / "capture_pair.png", np.concatenate(thumbs, axis=1))
    return [{"pair": r["pair"], "frame_ids": f"{r['frame_ids'][0]}-{r['frame_ids'][-1]}", "shake_px": r["shake_px"]}
            for r in rows[:shown]]


def _capture_evidence(out: Path, assets: Path, shown: int = 8) -> list[dict[str, Any]]:
    """The first recorded pair's raw frames (B | S) as captured, and per pair the trigger,
    frame ids, and planned against measured S delay."""
    session = Session(out / "session")
    records = session.pairs()
    if records:
        first = records[0]
        # Frames are linear (encoded here for display); a mosaic shows as grey.
        thumbs = [_thumb(encode_srgb(to_float(ensure_rgb(session.read_frame(first, role)))), 320) for role in "BS"]
        height = max(t.shape[0] for t in thumbs)
        write_image(assets / "capture_pair.png", np.concatenate(
            [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in thumbs], axis=1))
    rows = []
    for record in records[:shown]:
        b_ns, s_ns = (record.frames[role].timestamp_ns if role in record.frames else None for role in "BS")
        # On independent camera clocks S - B includes the clocks' offset: no delay to show.
        shared = (record.timing or {}).get("clocks") == "shared"
        measured = (s_ns - b_ns) / 1000 if shared and b_ns is not None and s_ns is not None else None
        rows.append({"pair": record.pair, "trigger": record.trigger,
                     "ids": {role: frame.frame_id for role, frame in record.frames.items()},
                     "planned_us": (record.timing or {}).get("s_delay_us"), "measured_us": measured})
    return rows


def _crops(out: Path, evaluation: Any, assets: Path) -> list[tuple[str, dict[str, Any]]]:
    """Before/after strips (blurred, deblurred, sharp, gate) of one image per test scene."""
    crops = []
    per_scene: dict[str, dict[str, Any]] = {}
    for image in evaluation.images:
        per_scene.setdefault(str(Path(image["pair"]).parent), image)
    for k, image in enumerate(per_scene.values()):
        pair_dir = out / "data" / "dataset" / Path(image["pair"]).parent
        index = Path(image["pair"]).name
        blur = read_image(pair_dir / f"{index}_blur.png")
        sharp = read_image(pair_dir / f"{index}_sharp.png")
        deblurred_dir = out / "deblurred" / Path(image["pair"]).parent.relative_to("test")
        output = read_image(deblurred_dir / f"{index}_deblurred.png")
        gate = read_image(deblurred_dir / f"{index}_deblurred_gate.png")
        mask = read_image(out / "data" / "masks" / f"{image['pair']}.png")
        ys, xs = np.nonzero(mask) if mask.any() else (np.array([blur.shape[0] // 2]), np.array([blur.shape[1] // 2]))
        cy, cx = int(ys.mean()), int(xs.mean())
        half = min(64, blur.shape[0] // 2, blur.shape[1] // 2)
        y0 = int(np.clip(cy - half, 0, blur.shape[0] - 2 * half))
        x0 = int(np.clip(cx - half, 0, blur.shape[1] - 2 * half))
        window = (slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
        strip = np.concatenate([blur[window], output[window], sharp[window],
                                np.repeat(gate[window][..., None], 3, axis=2)], axis=1)
        write_image(assets / f"crop_{k}.png", cv2.resize(strip, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
        crops.append((f"crop_{k}.png", image))
    return crops


def model_verdict(model: dict[str, Any], blurry: dict[str, Any]) -> str:
    """Whether the model beats doing nothing, in one sentence a newcomer reads first.

    >>> model_verdict({"psnr": 31.0, "weighted_psnr": 26.0, "background_mae": 0.004},
    ...               {"psnr": 30.5, "weighted_psnr": 24.0, "background_mae": 0.0})
    'The model beats the blurry input: PSNR 31.00 vs 30.50 dB, weighted PSNR 26.00 vs 24.00 dB; background MAE 0.0040.'
    """
    psnr, base = model.get("psnr"), blurry.get("psnr")
    weighted, base_weighted = model.get("weighted_psnr"), blurry.get("weighted_psnr")
    if psnr is None or base is None:
        return "No evaluation."
    figures = f"PSNR {psnr:.2f} vs {base:.2f} dB"
    if weighted is not None and base_weighted is not None:
        figures += f", weighted PSNR {weighted:.2f} vs {base_weighted:.2f} dB"
    if model.get("background_mae") is not None:
        figures += f"; background MAE {model['background_mae']:.4f}"
    global_better = psnr > base
    local_better = weighted is None or base_weighted is None or weighted > base_weighted
    if global_better and local_better:
        return f"The model beats the blurry input: {figures}."
    if local_better:
        return (f"The model sharpens the blurred regions but damages the rest: it does not beat the blurry input "
                f"overall ({figures}).")
    return f"The model does not beat the blurry input: {figures}."


def _page(rows: list[dict[str, Any]], stages: list, evaluation: Any, options: Any,
          overlays: list[tuple[str, dict[str, Any]]], crops: list[tuple[str, dict[str, Any]]],
          capture_rows: list[dict[str, Any]], reference: Any = None) -> str:
    """The report's HTML."""
    burst = getattr(options, "mode", "rig") == "burst"
    if burst:
        burst_table = "".join(f"<tr><td>{c['pair']}</td><td>{c['frame_ids']}</td><td>{_fmt(c['shake_px'], 3)}</td></tr>"
                              for c in capture_rows)
        capture_html = f"""<p>One simulated fast camera, free-running: the first burst's first and last raw
frames (the objects move between them, the background does not), and per burst its frame ids
(consecutive, or the burst would have been rejected) and the camera shake measured between its
first and last frame (px; beyond 0.25 a burst is refused).</p>
<img src="{ASSETS}/capture_pair.png" alt="first and last frame of the first burst">
<table><tr><th>pair</th><th>frame ids</th><th>shake (px)</th></tr>
{burst_table}</table>"""
        alignment_html = ("<p>Burst pairs need no alignment: B (the mean of a burst's frames) and S (its middle "
                          "frame) come from one sensor through one pipeline.</p>")
    else:
        capture_table = "".join(
            f"<tr><td>{c['pair']}</td><td>{_fmt(c['trigger'], 0) if c['trigger'] is not None else '-'}</td>"
            f"<td>{c['ids'].get('B', '-')} / {c['ids'].get('S', '-')}</td><td>{_fmt(c['planned_us'], 0)}</td>"
            f"<td>{_fmt(c['measured_us'], 0)}</td></tr>"
            for c in capture_rows)
        capture_html = f"""<p>The first recorded pair as the cameras delivered it (B | S, before alignment), and for the
first pairs the sync box's trigger number, each camera's frame id, and the S delay the box
was programmed with against the one the cameras' timestamps measured (us; the simulated
cameras share one clock, as PTP-synchronised cameras do; '-' where they do not).</p>
<img src="{ASSETS}/capture_pair.png" alt="first captured pair, B and S">
<table><tr><th>pair</th><th>trigger</th><th>frame id B / S</th><th>planned S delay</th><th>measured</th></tr>
{capture_table}</table>"""
        corner = np.array([r["corner_error_px"] for r in rows])
        alignment_html = f"""<p>Max corner error per pair: median {np.median(corner):.3f} px, worst {corner.max():.3f} px
(dashed: 0.25 px).</p>
<img src="{ASSETS}/corner_error.png" alt="corner error per pair">"""
    stage_rows = "".join(f"<tr><td>{html.escape(s.name)}</td><td>{s.seconds:.1f} s</td><td>{html.escape(s.summary)}</td></tr>"
                         for s in stages)
    moving = [r for r in rows if r["blur_ratio_truth"] > 0]
    static = [r for r in rows if r["blur_ratio_truth"] == 0]
    ious = np.array([r["mask_iou"] for r in moving]) if moving else np.array([float("nan")])
    recall = np.mean([r["mask_recall"] for r in moving]) if moving else float("nan")
    precision = np.mean([r["mask_precision"] for r in moving]) if moving else float("nan")
    false_positive = 100 * np.mean([r["blur_ratio"] for r in static]) if static else 0.0
    worst_static = 100 * max((r["blur_ratio"] for r in static), default=0.0)
    metric_rows = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{_fmt(values.get(k), 2 if 'psnr' in k else 4)}</td>"
                                          for k in ("psnr", "ssim", "weighted_psnr", "weighted_ssim",
                                                    "background_mae")) + "</tr>"
        for label, values in (("blurry input", evaluation.baseline),
                              *((("reference model, before fine-tuning", reference.summary),) if reference else ()),
                              ("LBAG (demo model)", evaluation.summary)))
    verdict = html.escape(model_verdict(evaluation.summary, evaluation.baseline))
    model_origin = ("A small LBAG trained from scratch for minutes on a CPU: it shows the pipeline works end to "
                    "end, not what LBAG can do." if options.from_scratch else
                    "The reference model shipped with reloblur (num_res 2, trained on the simulated rig's scenes, "
                    "not these: docs/lbag.md), fine-tuned briefly on this session's training scenes.")
    overlay_html = "".join(
        f"<figure><img src='{ASSETS}/{name}' alt='mask overlay {html.escape(row['pair'])}'>"
        f"<figcaption>{html.escape(row['pair'])}: IoU {row['mask_iou']:.3f} (covers {row['mask_recall']:.3f} of "
        f"the blurred region; {row['mask_precision']:.3f} of it lies there)</figcaption></figure>"
        for name, row in overlays)
    crop_html = "".join(
        f"<figure><img src='{ASSETS}/{name}' alt='before and after {html.escape(image['pair'])}'>"
        f"<figcaption>{html.escape(image['pair'])}: blurred | deblurred | sharp | gate (black 0, white 1); PSNR "
        f"{_fmt(image['blurry_psnr'], 2)} -> {_fmt(image['psnr'], 2)} dB</figcaption></figure>"
        for name, image in crops)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>reloblur demo report</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>reloblur demo</h1>
<p>The whole pipeline on the simulated {'fast camera (burst mode)' if burst else 'rig'} ({options.scenes} scenes x {options.pairs_per_scene} pairs,
{options.size[0]}x{options.size[1]}{', quick mode' if options.quick else ''}). Metrics follow the original
ReLoBlur evaluation (8-bit quantised, valid 11x11 Gaussian SSIM on RGB, mask-weighted local metrics).</p>
<h2>Pipeline</h2>
<table><tr><th>stage</th><th>time</th><th>result</th></tr>{stage_rows}</table>
<h2>Capture</h2>
{capture_html}
<h2>Alignment against the simulator's truth</h2>
{alignment_html}
<h2>Blur masks against the truth</h2>
<p>Mean IoU over the {len(moving)} pairs with motion: {ious.mean():.3f} (dashed: 0.85). On average
a mask covers {recall:.3f} of its pair's blurred region (what it misses lowers this) and {precision:.3f} of
what it marks lies there (what it marks beyond lowers this). The
{len(static)} static pairs have no truth to overlap, so they are scored by the area flagged:
{false_positive:.2f} % on average, {worst_static:.2f} % at most (dashed: 0.5 %). Below, the six
worst pairs with motion: orange outline = generated mask, blue outline = truth.</p>
{'<img src="' + ASSETS + '/mask_iou.png" alt="mask IoU per pair with motion">' if moving else ''}
{'<img src="' + ASSETS + '/mask_static.png" alt="area flagged on static pairs">' if static else ''}
<div>{overlay_html}</div>
<h2>Pairs (B | aligned S)</h2>
<img src="{ASSETS}/contact_sheet.png" alt="contact sheet of aligned pairs">
<h2>Training</h2>
<img src="{ASSETS}/loss.png" alt="training loss curve">
<h2>Evaluation on the test scenes</h2>
<p><strong>{verdict}</strong></p>
<table><tr><th></th><th>PSNR</th><th>SSIM</th><th>weighted PSNR</th><th>weighted SSIM</th><th>background MAE</th></tr>{metric_rows}</table>
<p>{model_origin}</p>
<h2>Before / after</h2>
<div>{crop_html}</div>
</body></html>
"""
