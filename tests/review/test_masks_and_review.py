"""LBFMG: generator known answers, batch and stats, the review server's API, and a real
browser editing a mask."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import box_around, needs_browser, object_on_ground
from reloblur.dataset_cli.app import app
from reloblur.formats.dataset import find_pairs, read_align_maps
from reloblur.imaging.imageio import encode_image, encode_srgb, from_float, linear_to_srgb, read_image, write_image
from reloblur.lbfmg.generate import MaskParams, generate_mask
from reloblur.lbfmg.metrics import area_precision, area_recall, boundary_f_score, iou
from reloblur.review.server import ReviewOptions, make_server
from reloblur.sim.simulator import RigSimulator, SimulatorConfig

runner = CliRunner()


def test_static_pair_gives_an_empty_mask():
    sim = RigSimulator(SimulatorConfig(width=320, height=240, seed=3, static_fraction=1.0))
    pair = sim.render(0, aligned=True)
    assert pair.truth["static"]
    result = generate_mask(encode_srgb(pair.blur), encode_srgb(pair.sharp))
    assert result.blur_ratio == 0 and not result.components


def test_brightness_difference_alone_is_not_blur():
    sim = RigSimulator(SimulatorConfig(width=320, height=240, seed=3, static_fraction=1.0))
    pair = sim.render(1, aligned=True)
    darker = from_float(linear_to_srgb(pair.sharp.astype(np.float32) / 65535 * 0.85), np.uint8)
    assert generate_mask(encode_srgb(pair.blur), darker).blur_ratio == 0


def test_moving_object_gives_its_swept_region():
    sim = RigSimulator(SimulatorConfig(width=480, height=320, seed=11, static_fraction=0.0))
    scores = []
    for index in range(6):
        pair = sim.render(index, aligned=True)
        result = generate_mask(encode_srgb(pair.blur), encode_srgb(pair.sharp))
        assert result.mask.dtype == np.uint8 and set(np.unique(result.mask)) <= {0, 255}
        scores.append(iou(result.mask, pair.mask))
    # Stated: mean IoU above 0.85; a uniform object interior open to the outline can
    # still be missed (documented), so single pairs only need 0.5.
    assert np.mean(scores) > 0.85 and min(scores) > 0.5, scores


def test_synthetic_known_answer():
    """A textured disc swept horizontally over texture: the mask is the swept stadium."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.random((200, 300, 3)).astype(np.float32), (0, 0), 2) * 0.6 + 0.2
    disc = np.zeros((200, 300), np.float32)
    cv2.circle(disc, (100, 100), 30, 1.0, -1)
    texture = cv2.GaussianBlur(rng.random((200, 300, 3)).astype(np.float32), (0, 0), 1.5)
    blur = np.zeros_like(background)
    steps = 60
    for k in range(steps):  # the disc moves 60 px to the right during B's exposure
        shift = np.float32([[1, 0, k], [0, 1, 0]])
        a = cv2.warpAffine(disc, shift, (300, 200))[:, :, None]
        t = cv2.warpAffine(texture, shift, (300, 200))
        blur += a * t + (1 - a) * background
    blur /= steps
    a = cv2.warpAffine(disc, np.float32([[1, 0, 30], [0, 1, 0]]), (300, 200))[:, :, None]
    sharp = a * cv2.warpAffine(texture, np.float32([[1, 0, 30], [0, 1, 0]]), (300, 200)) + (1 - a) * background
    noisy = [np.clip(x + rng.normal(0, 0.004, x.shape), 0, 1) for x in (blur, sharp)]
    swept = np.zeros((200, 300), np.uint8)
    cv2.rectangle(swept, (100, 70), (160, 130), 255, -1)
    cv2.circle(swept, (100, 100), 30, 255, -1)
    cv2.circle(swept, (160, 100), 30, 255, -1)
    result = generate_mask(from_float(noisy[0]), from_float(noisy[1]))
    assert iou(result.mask, swept) > 0.85
    # The ends of the sweep fade linearly to nothing, so the boundary there is soft.
    assert boundary_f_score(result.mask, swept, tolerance=3) > 0.6
    assert len(result.components) == 1


def test_metrics_known_values():
    a = np.zeros((10, 10), np.uint8)
    b = np.zeros((10, 10), np.uint8)
    a[:, :5] = 255
    b[:, :4] = 255
    assert iou(a, b) == pytest.approx(0.8)
    assert iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    # b lies inside a: it covers 40 of a's 50 pixels and all of its own 40 are on a.
    assert (area_recall(b, a), area_precision(b, a)) == (pytest.approx(0.8), 1.0)
    assert (area_recall(a, b), area_precision(a, b)) == (1.0, pytest.approx(0.8))
    assert area_recall(np.zeros((4, 4)), a[:4, :4]) == 0.0
    assert boundary_f_score(a, a) == 1.0
    # Worked by hand: a 20 px square and the same square 5 px to the right. Of each
    # outline's 76 pixels, 38 lie within the 5x5 disk of the other's (17 on each of the
    # shared edges, 4 near the corners of the side that moved), so precision = recall = 0.5.
    truth = np.zeros((50, 50), np.uint8)
    truth[10:30, 10:30] = 255
    moved = np.zeros((50, 50), np.uint8)
    moved[10:30, 15:35] = 255
    assert boundary_f_score(moved, truth, tolerance=2) == pytest.approx(0.5)
    assert boundary_f_score(moved, np.zeros_like(truth)) == 0.0


def test_generate_stats_resume_and_edited_masks_are_kept(sim_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sim_dataset / "dataset", data / "dataset")
    masks = data / "masks"
    result = runner.invoke(app, ["mask", "generate", str(data / "dataset"), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["generated"] == 12
    first = sorted(p for p in masks.rglob("*.png") if not p.name.endswith(".conf.png"))[0]
    confidence = read_image(first.with_name(first.stem + ".conf.png"))
    np.testing.assert_array_equal(confidence >= 128, read_image(first) > 0)
    record = json.loads(first.with_suffix(".json").read_text())
    assert {"noise_model", "clipped_fraction", "flags", "residual_ratio"} <= set(record["diagnostics"])
    assert record["source"] == "auto" and record["review"] == "auto" and record["version"] == 1
    assert record["params"]["high_sigmas"] == 6.0 and read_image(first).shape == (120, 160)
    # A curator's edit survives regeneration; everything else resumes.
    record.update(source="edited", review="reviewed")
    first.with_suffix(".json").write_text(json.dumps(record))
    again = json.loads(runner.invoke(app, ["mask", "generate", str(data / "dataset"), "--workers", "1", "--json"]).stdout)
    assert (again["generated"], again["resumed"], again["kept_edited"]) == (0, 11, 1)
    # The dataset with its generated masks validates, and stats read them.
    assert runner.invoke(app, ["dataset", "validate", str(data / "dataset")]).exit_code == 0
    stats = runner.invoke(app, ["mask", "stats", str(masks), "--json", "--plot", str(tmp_path / "h.png")])
    assert stats.exit_code == 0, stats.output
    summary = json.loads(stats.stdout)
    assert summary["count"] == 12 and summary["review"] == {"auto": 11, "reviewed": 1}
    assert (tmp_path / "h.png").exists()
    plain = runner.invoke(app, ["mask", "stats", str(masks), "--plot", str(tmp_path / "h2.png")]).stdout.splitlines()
    assert plain[0] == f"12 masks in {masks}" and not set("─│┃━") & set("".join(plain))
    assert any(line.startswith("all: masks: 12; mean: ") for line in plain)


def test_missing_partner_and_size_mismatch_are_reported(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "d" / "a_blur.png", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    write_image(tmp_path / "d" / "a_sharp.png", rng.integers(0, 255, (40, 61, 3), dtype=np.uint8))
    write_image(tmp_path / "d" / "b_blur.png", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    result = runner.invoke(app, ["mask", "generate", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--workers", "1"])
    assert result.exit_code == 2
    assert "align the pair first" in result.output and "b_blur.png: partner b_sharp.png is missing" in result.output


def test_mask_generate_withholds_a_pair_whose_cameras_gain_it_cannot_measure(tmp_path):
    """S blown out wherever the scene is not black, B everywhere but a grey disc: no pixel
    is measured by both, so the command writes an empty mask, lists the pair to check and as
    withheld, and its sidecar says why (``withheld_reason``), as ``dataset validate`` reads it."""
    rng = np.random.default_rng(5)
    scene = np.ones((120, 160, 3))
    scene[:, :60] = scene[:30] = 0.0
    yy, xx = np.mgrid[:120, :160]
    scene[(yy - 75) ** 2 + (xx - 115) ** 2 < 12**2] = 0.75
    for name, gain, noise in (("a_blur", 1.2, 0.01), ("a_sharp", 1.5, 0.015)):
        write_image(tmp_path / "d" / f"{name}.png",
                    encode_srgb(np.clip(gain * scene + rng.normal(0, noise, scene.shape), 0, 1)))
    result = runner.invoke(app, ["mask", "generate", str(tmp_path / "d"), "--out", str(tmp_path / "m"),
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["generated"] == 1 and {f["item"] for f in report["flagged"]} == {"a"} and report["withheld"] == ["a"]
    assert any("relative gain" in f["reason"] for f in report["flagged"])
    assert not read_image(tmp_path / "m" / "a.png").any()
    diagnostics = json.loads((tmp_path / "m" / "a.json").read_text())["diagnostics"]
    assert diagnostics["withheld_reason"] == "unmeasured gain" and diagnostics["withheld_fraction"] is not None
    plain = runner.invoke(app, ["mask", "generate", str(tmp_path / "d"), "--out", str(tmp_path / "m2"), "--workers", "1"])
    assert plain.exit_code == 0 and "1 mask(s) withheld and written empty (a)" in plain.stdout


@pytest.fixture
def review_server(sim_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sim_dataset, data)
    assert runner.invoke(app, ["mask", "generate", str(data / "dataset"), "--out", str(data / "masks2"),
                               "--workers", "1"]).exit_code == 0
    server, url = make_server(ReviewOptions(data / "dataset", data / "masks2", port=0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url, data / "masks2"
    server.shutdown()
    server.server_close()


def call(url: str, path: str, token: str | None, body: dict | None = None) -> tuple[int, bytes]:
    base = url.split("?")[0].rstrip("/")
    request = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("X-Token", token)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET that follows no redirect and keeps no cookie: status, headers, body."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host="Host" in (headers or {}))
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _decoded(data_url: str) -> np.ndarray:
    """A data URL's PNG (as the server answers a preview or an object), decoded grey."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)


def test_review_api_token_traversal_save_and_conflict(review_server):
    url, masks = review_server
    token = url.split("token=")[1]
    assert url.startswith("http://127.0.0.1:")
    assert call(url, "/api/pairs", None)[0] == 403
    assert call(url, "/api/pairs", "wrong")[0] == 403
    assert call(url, "/", None)[0] == 403
    # The first load trades the URL's token for an HttpOnly cookie and drops it from the URL.
    status, headers, _ = raw_get(url, "/?token=" + token)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token in cookie
    status, headers, body = raw_get(url, "/", {"Cookie": cookie.split(";")[0]})
    assert status == 200 and b"reloblur mask review" in body and token.encode() not in body
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"
    # DNS rebinding: a page whose own name now points at 127.0.0.1 sends its own Host.
    assert raw_get(url, "/api/pairs", {"X-Token": token, "Host": "evil.example:80"})[0] == 403
    assert raw_get(url, "/api/pairs", {"X-Token": token, "Host": f"localhost:{url.split(':')[2].split('/')[0]}"})[0] == 200
    pairs = json.loads(call(url, "/api/pairs", token)[1])["pairs"]
    pair_id = pairs[0]["id"]
    for evil in ("../../../etc/passwd", "/etc/passwd", "train/../../x"):
        assert call(url, f"/api/image?kind=blur&id={evil}", token)[0] == 404
    assert call(url, "/static/../review.py", token)[0] == 404
    status, png = call(url, f"/api/image?kind=diff&id={pair_id}", token)
    assert status == 200 and png.startswith(b"\x89PNG")
    status, png = call(url, f"/api/image?kind=confidence&id={pair_id}", token)
    assert status == 200 and cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    # A mask with a truncated sidecar is a curator's work at risk: refused, never reset.
    broken = sorted(masks.rglob("*.json"))[0]
    text = broken.read_text()
    broken.write_text(text[: len(text) // 2])
    broken_id = "/".join([*broken.relative_to(masks).parent.parts, broken.stem])
    assert call(url, f"/api/meta?id={broken_id}", token)[0] == 409
    broken.write_text(text)

    meta = json.loads(call(url, f"/api/meta?id={pair_id}", token)[1])
    edited = np.zeros((120, 160), np.uint8)
    edited[10:30, 20:60] = 255
    payload = {"id": pair_id, "version": meta["version"], "review": "reviewed",
               "png": "data:image/png;base64," + base64.b64encode(encode_image(edited, ".png")).decode()}
    status, body = call(url, "/api/save", token, payload)
    assert status == 200 and json.loads(body)["version"] == meta["version"] + 1
    mask_file = masks.joinpath(*pair_id.split("/")[:-1], pair_id.split("/")[-1] + ".png")
    np.testing.assert_array_equal(read_image(mask_file), edited)
    record = json.loads(mask_file.with_suffix(".json").read_text())
    assert record["source"] == "edited" and record["review"] == "reviewed"
    assert record["history"][-1]["action"] == "edited"
    # A second browser still holding the old version gets a conflict, not an overwrite.
    status, body = call(url, "/api/save", token, payload)
    assert status == 409 and json.loads(body)["current_version"] == meta["version"] + 1
    np.testing.assert_array_equal(read_image(mask_file), edited)
    status, _ = call(url, "/api/review", token, {"id": pair_id, "version": meta["version"] + 1, "review": "rejected"})
    assert status == 200 and json.loads(mask_file.with_suffix(".json").read_text())["review"] == "rejected"
    wrong_size = dict(payload, version=meta["version"] + 2,
                      png=base64.b64encode(encode_image(np.zeros((5, 5), np.uint8), ".png")).decode())
    assert call(url, "/api/save", token, wrong_size)[0] == 400
    status, body = call(url, "/api/regenerate", token, {"id": pair_id, "high_sigmas": 4, "low_sigmas": 2})
    assert status == 200 and json.loads(body)["png"].startswith("data:image/png;base64,")


def test_the_rethreshold_preview_judges_a_pair_as_mask_generate_does(review_server):
    """The preview reads the validity and clip maps align left beside the pair, as ``mask
    generate`` does: S's undefined border, black outside ``NN.valid.png``, is not judged
    (only the mask beside it is carried across it, row by row), where judged without the
    map it is motion."""
    url, masks = review_server
    token = url.split("token=")[1]
    pairs, _ = find_pairs(masks.parent / "dataset")
    pair = pairs[0]
    sharp = read_image(pair.sharp)
    sharp[:, :40] = 0
    write_image(pair.sharp, sharp)
    valid = np.full(sharp.shape[:2], 255, np.uint8)
    valid[:, :40] = 0
    write_image(pair.validity_map, valid)
    status, body = call(url, "/api/regenerate", token, {"id": pair.id, "high_sigmas": 6, "low_sigmas": 3})
    assert status == 200
    preview = _decoded(json.loads(body)["png"])
    blur = read_image(pair.blur)
    np.testing.assert_array_equal(preview, generate_mask(blur, sharp, valid=valid).mask)
    # The first judged column is the smoothing's reach (4 px) inside the valid ones; a pixel
    # of the strip is marked only in a row where that column is (carry_into_unjudged).
    first_judged = preview[:, 44:45] > 0
    assert not ((preview[:, :40] > 0) & ~first_judged).any()
    assert (preview[:, :40] > 0).mean() <= first_judged.mean()
    assert generate_mask(blur, sharp).mask[:, :40].mean() > 0.5


def test_the_preview_reads_align_s_record_only_for_a_mask_made_with_the_measured_crosstalk(review_server):
    """A mask made with ``--crosstalk measured`` is previewed with align's colour matrix
    (an unreadable record is an error naming it); one made with the prior never reads it."""
    url, masks = review_server
    token = url.split("token=")[1]
    pair = find_pairs(masks.parent / "dataset")[0][0]
    pair.align_record.write_text("{}")
    body = {"id": pair.id, "high_sigmas": 6, "low_sigmas": 3}
    assert call(url, "/api/regenerate", token, body)[0] == 200
    sidecar = masks / pair.rel_dir / f"{pair.index}.json"
    record = json.loads(sidecar.read_text())
    record["params"]["crosstalk"] = "measured"
    sidecar.write_text(json.dumps(record))
    status, answer = call(url, "/api/regenerate", token, body)
    assert status == 422 and pair.align_record.name in json.loads(answer)["error"]


def test_the_preview_judges_with_the_s_instant_the_mask_was_made_with(review_server):
    """A mask made with S's instant at the start is previewed with it (the step trim runs),
    whether told (the sidecar's params) or read from the pair (its diagnostics, which
    decide: this pair reads as S at the middle at the preview's thresholds); one whose trim
    did not run is previewed without; a sidecar whose instant is not one is an error
    naming it."""
    url, masks = review_server
    token = url.split("token=")[1]
    pair = find_pairs(masks.parent / "dataset")[0][0]
    sidecar = masks / pair.rel_dir / f"{pair.index}.json"
    record = json.loads(sidecar.read_text())
    record["params"]["s_phase"] = "start"
    sidecar.write_text(json.dumps(record))
    body = {"id": pair.id, "high_sigmas": 6, "low_sigmas": 3}
    status, answer = call(url, "/api/regenerate", token, body)
    assert status == 200
    maps = read_align_maps(pair, record="align" in record.get("inputs", {}))
    params = MaskParams(**{**MaskParams().to_dict(), "high_sigmas": 6.0, "low_sigmas": 3.0})
    told = generate_mask(read_image(pair.blur), read_image(pair.sharp), params=params, valid=maps.valid,
                         clipped=maps.clipped, colour_matrix=maps.colour_matrix, s_phase="start")
    read = generate_mask(read_image(pair.blur), read_image(pair.sharp), params=params, valid=maps.valid,
                         clipped=maps.clipped, colour_matrix=maps.colour_matrix)
    assert told.step_ends and not read.step_ends and (told.mask != read.mask).any()  # the instant matters here
    np.testing.assert_array_equal(_decoded(json.loads(answer)["png"]), told.mask)
    del record["params"]["s_phase"]
    record["diagnostics"]["step_ends"] = True  # read from the pair as S at an end
    sidecar.write_text(json.dumps(record))
    np.testing.assert_array_equal(_decoded(json.loads(call(url, "/api/regenerate", token, body)[1])["png"]), told.mask)
    middle = generate_mask(read_image(pair.blur), read_image(pair.sharp), params=params, valid=maps.valid,
                           clipped=maps.clipped, colour_matrix=maps.colour_matrix, s_phase="middle")
    record["diagnostics"]["step_ends"] = False
    sidecar.write_text(json.dumps(record))
    np.testing.assert_array_equal(_decoded(json.loads(call(url, "/api/regenerate", token, body)[1])["png"]), middle.mask)
    record["params"]["s_phase"] = "early"
    sidecar.write_text(json.dumps(record))
    status, answer = call(url, "/api/regenerate", token, body)
    assert status == 422 and sidecar.name in json.loads(answer)["error"]


@needs_browser
def test_every_view_of_an_odd_pair_gets_an_answer(review_server):
    """A grey B, S of another size, a 16-bit mask: each view answers (an image, or an
    error naming the file), where the diff and confidence views dropped the connection
    with a traceback on the server's console."""
    url, masks = review_server
    token = url.split("token=")[1]
    pairs = json.loads(call(url, "/api/pairs", token)[1])["pairs"]
    data = masks.parent / "dataset"
    grey, other_size, wide_mask = (p["id"] for p in pairs[:3])
    blur = data / f"{grey}_blur.png"
    write_image(blur, read_image(blur)[:, :, 0])
    sharp = data / f"{other_size}_sharp.png"
    write_image(sharp, read_image(sharp)[:60, :80])
    mask = masks / f"{wide_mask}.png"
    write_image(mask, read_image(mask).astype(np.uint16) * 257)
    (masks / f"{wide_mask}.conf.png").unlink()
    for pair_id in (grey, wide_mask):
        for kind in ("blur", "sharp", "mask", "diff", "confidence"):
            status, body = call(url, f"/api/image?id={pair_id}&kind={kind}", token)
            assert status == 200 and body.startswith(b"\x89PNG"), (pair_id, kind, body[:200])
    status, body = call(url, f"/api/image?id={other_size}&kind=diff", token)
    assert status == 422 and b"80x60 but" in body and b"align the pair first" in body


def test_a_real_browser_paints_a_stroke_and_saves_it(review_server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, masks = review_server
    driver = browser
    driver.get(url)
    deadline = time.time() + 30
    while time.time() < deadline and not driver.execute_script("return !!(window.reviewApp && window.reviewApp.ready)"):
        time.sleep(0.1)
    assert driver.execute_script("return window.reviewApp.ready")
    pair_id = driver.execute_script("return window.reviewApp.pairs[window.reviewApp.index].id")
    mask_file = masks.joinpath(*pair_id.split("/")[:-1], pair_id.split("/")[-1] + ".png")
    before = read_image(mask_file)
    # Paint a horizontal stroke through image row 100 from x = 20 to x = 140, where the
    # automatic mask is empty (so the change is ours).
    row = 100
    assert not before[row - 2 : row + 3, 40:120].any()
    version = driver.execute_script("return window.reviewApp.savedVersion")
    canvas = driver.find_element(By.ID, "view")
    driver.find_element(By.CSS_SELECTOR, "[data-tool=brush]").click()
    driver.execute_script("document.getElementById('size').value = 6;"
                          "document.getElementById('size').dispatchEvent(new Event('input'));")
    start = driver.execute_script(f"return window.reviewApp.imageToClient(20, {row})")
    end = driver.execute_script(f"return window.reviewApp.imageToClient(140, {row})")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", canvas)
    centre = (rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
    actions = ActionChains(driver)
    actions.move_to_element_with_offset(canvas, int(start[0] - centre[0]), int(start[1] - centre[1]))
    actions.click_and_hold()
    for step in range(1, 11):
        x = start[0] + (end[0] - start[0]) * step / 10
        actions.move_to_element_with_offset(canvas, int(x - centre[0]), int(start[1] - centre[1]))
    actions.release().perform()
    driver.find_element(By.ID, "save").click()
    deadline = time.time() + 30
    while time.time() < deadline and driver.execute_script("return window.reviewApp.savedVersion") == version:
        time.sleep(0.1)
    assert driver.execute_script("return window.reviewApp.savedVersion") == version + 1
    after = read_image(mask_file)
    assert after[row, 40:120].min() == 255  # the stroke is on disk where it was painted
    assert not after[row + 8 :, :].astype(bool).any() or (after != before).sum() < 0.2 * after.size
    changed = np.argwhere(after != before)
    assert abs(changed[:, 0].mean() - row) < 3
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def _click_row(driver, index: int) -> None:
    """Click the pair list's row ``index`` as a curator would. In one script: the page
    rebuilds the list whenever a pair's status changes, so a row found by one WebDriver
    call may be gone (stale) by the next."""
    driver.execute_script("document.querySelectorAll('#list div')[arguments[0]].click()", index)


def _ready_app(driver, url: str) -> None:
    driver.get(url)
    deadline = time.time() + 30
    while time.time() < deadline and not driver.execute_script("return !!(window.reviewApp && window.reviewApp.ready)"):
        time.sleep(0.1)
    assert driver.execute_script("return window.reviewApp.ready")


# Pixels of the editing canvas that are on (white, opaque) inside an image rectangle.
_AREA_JS = """const [x, y, w, h] = arguments;
const d = window.reviewApp.mask.getContext('2d').getImageData(x, y, w, h).data;
let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 127) n++; return n;"""


def _flag_first_pair(masks) -> tuple[str, str]:
    """Write into the first mask's sidecar the flag ``mask generate`` gives a pair whose mask
    it withheld, as a generation would have; returns the pair's id and the flag."""
    from reloblur.formats.masks import MaskRecord, write_mask

    first = sorted(p for p in masks.rglob("*.png") if not p.name.endswith(".conf.png"))[0]
    record = MaskRecord.read(first)
    assert record is not None and not record.diagnostics["flags"]
    flag = "the difference between B and S covers 91 % of the frame (...): its mask is withheld: check the pair"
    record.diagnostics = {**record.diagnostics, "flags": [flag], "withheld_fraction": 0.91}
    write_mask(first, np.zeros_like(read_image(first)), record)
    return first.relative_to(masks).with_suffix("").as_posix(), flag


def test_the_pair_list_says_which_pairs_the_generator_flagged(review_server):
    url, masks = review_server
    token = url.split("token=")[1]
    flagged_id, flag = _flag_first_pair(masks)
    status, body = call(url, "/api/pairs", token)
    assert status == 200
    flagged = {p["id"]: p["flagged"] for p in json.loads(body)["pairs"]}
    assert flagged[flagged_id] is True
    assert sum(flagged.values()) == 1
    status, body = call(url, f"/api/meta?id={flagged_id}", token)
    assert json.loads(body)["diagnostics"]["flags"] == [flag]


@needs_browser
def test_a_real_browser_shows_what_the_generator_asks_to_check(review_server, browser):
    """In Chromium: the flagged pair is marked in the list, and its flag is shown above the
    image while it is open, and not on a pair without one."""
    from selenium.webdriver.common.by import By

    url, masks = review_server
    flagged_id, flag = _flag_first_pair(masks)
    _ready_app(browser, url)
    index = browser.execute_script("return window.reviewApp.pairs.findIndex((p) => p.id === arguments[0])",
                                   flagged_id)
    rows = browser.find_elements(By.CSS_SELECTOR, "#list div")
    assert "flagged" in rows[index].get_attribute("class")
    assert sum("flagged" in r.get_attribute("class") for r in rows) == 1
    _click_row(browser, index)
    checks = browser.find_element(By.ID, "checks")
    deadline = time.time() + 30
    while time.time() < deadline and not checks.is_displayed():
        time.sleep(0.1)
    assert checks.text == f"check: {flag}"
    _click_row(browser, (index + 1) % len(rows))
    deadline = time.time() + 30
    while time.time() < deadline and checks.is_displayed():
        time.sleep(0.1)
    assert not checks.is_displayed()
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


@needs_browser
def test_a_real_browser_fills_a_polygon_undoes_redoes_and_rethresholds(review_server, browser):
    """In Chromium: four clicks with the polygon tool and Enter fill that quadrilateral;
    Ctrl+Z takes it away and Ctrl+Y puts it back; the threshold slider at its top (20
    sigmas) asks the server for a stricter mask, which covers less, and Ctrl+Z brings the
    polygon's mask back; saved, the file on disk holds the polygon."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, masks = review_server
    driver = browser
    _ready_app(driver, url)
    app_js = "return window.reviewApp."
    pair_id = driver.execute_script(app_js + "pairs[window.reviewApp.index].id")
    mask_file = masks.joinpath(*pair_id.split("/")[:-1], pair_id.split("/")[-1] + ".png")
    automatic = read_image(mask_file)
    # x, y, w, h in image pixels: a 50x30 window, 10 px from the border, where the automatic
    # mask is empty (so the change is ours).
    box = next((x, y, 50, 30) for y in range(10, automatic.shape[0] - 40, 5) for x in range(10, automatic.shape[1] - 60, 5)
               if not automatic[y - 5 : y + 35, x - 5 : x + 55].any())
    assert driver.execute_script(_AREA_JS, *box) == 0
    canvas = driver.find_element(By.ID, "view")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", canvas)
    centre = (rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
    driver.find_element(By.CSS_SELECTOR, "[data-tool=polygon]").click()
    actions = ActionChains(driver)
    x, y, w, h = box
    for corner in ((x, y), (x + w, y), (x + w, y + h), (x, y + h)):
        client = driver.execute_script(f"return window.reviewApp.imageToClient({corner[0]}, {corner[1]})")
        actions.move_to_element_with_offset(canvas, int(client[0] - centre[0]), int(client[1] - centre[1])).click()
    actions.send_keys(Keys.ENTER).perform()
    filled = driver.execute_script(_AREA_JS, *box)
    assert filled > 0.85 * w * h, filled  # the quadrilateral, up to the clicks' rounding
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert driver.execute_script(_AREA_JS, *box) == 0
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("y").key_up(Keys.CONTROL).perform()
    assert driver.execute_script(_AREA_JS, *box) == filled

    whole = (0, 0, 160, 120)
    before = driver.execute_script(_AREA_JS, *whole)
    driver.execute_script("const t = document.getElementById('threshold'); t.value = 20;"
                          "t.dispatchEvent(new Event('input')); t.dispatchEvent(new Event('change'));")
    deadline = time.time() + 30
    while time.time() < deadline and "re-thresholded" not in driver.find_element(By.ID, "message").text:
        time.sleep(0.1)
    assert "re-thresholded at 20" in driver.find_element(By.ID, "message").text
    assert driver.execute_script(_AREA_JS, *box) == 0  # the server's mask has no polygon
    assert driver.execute_script(_AREA_JS, *whole) < before - filled + 1
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert driver.execute_script(_AREA_JS, *whole) == before

    version = driver.execute_script(app_js + "savedVersion")
    driver.find_element(By.ID, "save").click()
    deadline = time.time() + 30
    while time.time() < deadline and driver.execute_script(app_js + "savedVersion") == version:
        time.sleep(0.1)
    saved = read_image(mask_file)
    assert (saved[y : y + h, x : x + w] > 0).sum() == filled
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def _object_in_first_pair(masks):
    """Replace the first pair's S by a textured object on a textured ground of its size;
    returns the pair and the object's pixels."""
    pair = find_pairs(masks.parent / "dataset")[0][0]
    h, w = read_image(pair.sharp).shape[:2]
    sharp, obj = object_on_ground(5, 1000.0, centre=(h // 2, w // 2), h=h, w=w)
    write_image(pair.sharp, sharp)
    return pair, obj


def test_the_object_tool_answers_with_the_object_in_the_box_and_saves_nothing(review_server):
    url, masks = review_server
    token = url.split("token=")[1]
    pair, obj = _object_in_first_pair(masks)
    mask_file = masks / pair.rel_dir / f"{pair.index}.png"
    before = mask_file.read_bytes()
    status, body = call(url, "/api/object", token, {"id": pair.id, "box": [int(v) for v in box_around(obj, 6)]})
    assert status == 200, body
    answer = json.loads(body)
    region = _decoded(answer["png"]) > 0
    assert iou(region, obj) >= 0.97
    assert answer["pixels"] == region.sum()
    assert mask_file.read_bytes() == before
    for box in (None, [1, 2, 3], ["a", 0, 10, 10], [0, 0, True, 10], "0,0,10,10"):
        status, body = call(url, "/api/object", token, {"id": pair.id, "box": box})
        assert status == 400 and "box must be" in json.loads(body)["error"], box
    status, body = call(url, "/api/object", token, {"id": pair.id, "box": [10, 10, 12, 60]})
    assert status == 422 and "at least 4 px" in json.loads(body)["error"]


# The editing canvas as rows of 0/1 (white and opaque: on).
_MASK_JS = """const m = window.reviewApp.mask;
const d = m.getContext('2d').getImageData(0, 0, m.width, m.height).data;
const rows = []; for (let y = 0; y < m.height; y++) { let r = '';
  for (let x = 0; x < m.width; x++) r += d[4 * (y * m.width + x) + 3] > 127 ? '1' : '0'; rows.push(r); }
return rows;"""


def _canvas_mask(driver) -> np.ndarray:
    return np.array([[c == "1" for c in row] for row in driver.execute_script(_MASK_JS)])


@needs_browser
def test_a_real_browser_takes_the_object_inside_a_box_from_s(review_server, browser):
    """In Chromium: a box dragged with the object tool around the object S shows adds that
    object to the mask and changes nothing outside the box; Ctrl+Z takes it away again;
    saved, the file on disk holds the object."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, masks = review_server
    pair, obj = _object_in_first_pair(masks)
    driver = browser
    _ready_app(driver, url)
    index = driver.execute_script("return window.reviewApp.pairs.findIndex((p) => p.id === arguments[0])", pair.id)
    if driver.execute_script("return window.reviewApp.index") != index:
        _click_row(driver, index)
        deadline = time.time() + 30
        while time.time() < deadline and driver.execute_script("return window.reviewApp.index") != index:
            time.sleep(0.1)
    before = _canvas_mask(driver)
    top, left, bottom, right = box_around(obj, 6)
    canvas = driver.find_element(By.ID, "view")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", canvas)
    centre = (rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
    driver.find_element(By.CSS_SELECTOR, "[data-tool=object]").click()
    start = driver.execute_script(f"return window.reviewApp.imageToClient({left}, {top})")
    end = driver.execute_script(f"return window.reviewApp.imageToClient({right}, {bottom})")
    actions = ActionChains(driver)
    actions.move_to_element_with_offset(canvas, int(start[0] - centre[0]), int(start[1] - centre[1])).click_and_hold()
    for step in range(1, 6):
        actions.move_to_element_with_offset(canvas, int(start[0] + (end[0] - start[0]) * step / 5 - centre[0]),
                                            int(start[1] + (end[1] - start[1]) * step / 5 - centre[1]))
    actions.release().perform()
    message = driver.find_element(By.ID, "message")
    deadline = time.time() + 30
    while time.time() < deadline and "added the object" not in message.text:
        time.sleep(0.1)
    assert "added the object" in message.text, message.text
    after = _canvas_mask(driver)
    assert iou(after & ~before, obj & ~before) >= 0.95
    inside = np.zeros_like(obj)
    inside[max(0, top - 2):bottom + 2, max(0, left - 2):right + 2] = True  # the clicks' rounding
    assert not ((after != before) & ~inside).any()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert np.array_equal(_canvas_mask(driver), before)
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("y").key_up(Keys.CONTROL).perform()
    version = driver.execute_script("return window.reviewApp.savedVersion")
    driver.find_element(By.ID, "save").click()
    deadline = time.time() + 30
    while time.time() < deadline and driver.execute_script("return window.reviewApp.savedVersion") == version:
        time.sleep(0.1)
    saved = read_image(masks / pair.rel_dir / f"{pair.index}.png") > 0
    assert np.array_equal(saved, after)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def raw_request(url: str, head: str, body: bytes = b"") -> int:
    """Send a hand-made request (headers a browser would never send); return the status."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)  # like a client that stops sending
        reply = sock.recv(4096)
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("length, body, expected", [("abc", b"{}", 400), ("-1", b"{}", 400),
                                                    ("100", b'{"id": "x"}', 400), ("2", b"[]", 400)])
def test_malformed_requests_get_a_reply_and_free_the_handler(review_server, length, body, expected):
    url, _ = review_server
    token = url.split("token=")[1]
    head = (f"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}")
    assert raw_request(url, head, body) == expected
    assert call(url, "/api/pairs", token)[0] == 200  # the server still answers


def test_a_png_declaring_a_huge_size_is_refused_before_decoding(review_server):
    import struct
    import zlib

    url, _ = review_server
    token = url.split("token=")[1]
    pair_id = json.loads(call(url, "/api/pairs", token)[1])["pairs"][0]["id"]
    meta = json.loads(call(url, f"/api/meta?id={pair_id}", token)[1])
    ihdr = struct.pack(">IIBBBBB", 16000, 16000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64
    payload = {"id": pair_id, "version": meta["version"], "png": base64.b64encode(bomb).decode()}
    status, body = call(url, "/api/save", token, payload)
    assert status == 400 and b"16000x16000" in body
