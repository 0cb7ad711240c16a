"""The pose studio's page in headless Chromium: load, scrub, drag, swap, keyframes, undo, save, refusals.

Skipped, with one reason, when Playwright or Chromium is missing (see studio_browser.py).
Screenshots go to each test's tmp folder (``screenshots/``), and also to
``$HOLDPOSE_STUDIO_SHOTS`` when that is set.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from holdpose.io.posefile import load_poses, save_poses
from holdpose.refine.keyframes import interpolate_keyframes, load_builtin_motion
from holdpose.skeleton import COCO_WHOLEBODY
from holdpose.studio.server import start_studio

from studio_browser import NO_BROWSER, chromium_executable, headless_chromium, new_page, wait_for, wait_loaded

pytestmark = [pytest.mark.browser, pytest.mark.skipif(chromium_executable() is None, reason=NO_BROWSER)]

NAMES = COCO_WHOLEBODY.keypoint_names
RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = (NAMES.index(n) for n in ("right_elbow", "left_wrist", "right_wrist"))


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The first 48 frames of the built-in wave (512x512, 24 fps) and a video of their pose maps over a photo."""
    import cv2
    from skimage import data

    from holdpose.io.video import VideoWriter, write_image
    from holdpose.render.openpose import render_pose_maps

    folder = tmp_path_factory.mktemp("studio_media")
    seq = load_builtin_motion("wave")[:48]
    photo = cv2.resize(data.astronaut(), seq.size)
    with VideoWriter(folder / "wave.mp4", fps=seq.fps, size=seq.size) as writer:
        for pose_map in render_pose_maps(seq):
            writer.write(np.maximum(photo // 2, pose_map))
    write_image(folder / "reference.png", photo)
    oks = np.clip(np.linspace(0.2, 1.0, seq.num_frames) + 0.1 * np.sin(np.arange(seq.num_frames)), 0, 1)
    (folder / "metrics.json").write_text(json.dumps({"per_frame": {"oks": oks.tolist()}}))
    return folder, seq


@pytest.fixture
def studio(media, tmp_path):
    """A running studio on a fresh copy of the wave poses (JSON), with video, animation, reference and metrics."""
    folder, seq = media
    path = tmp_path / "wave.json"
    save_poses(seq, path)
    server = start_studio(path, video=folder / "wave.mp4", animation=folder / "wave.mp4",
                          reference=folder / "reference.png", metrics=folder / "metrics.json")
    yield server, path, load_poses(path)
    server.shutdown()
    server.server_close()
    server.studio.close()


@pytest.fixture
def page(browser, studio):
    page = new_page(browser)
    page.goto(studio[0].url)
    wait_loaded(page)
    yield page
    assert page.errors == []
    page.context.close()


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))
    if os.environ.get("HOLDPOSE_STUDIO_SHOTS"):
        Path(os.environ["HOLDPOSE_STUDIO_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["HOLDPOSE_STUDIO_SHOTS"]) / path.name)
    return path


def current_frame(page) -> int:
    return page.evaluate("window.studio.state.frame")


def differing_points(a, b) -> set:
    diff = (a.keypoints != b.keypoints).any(-1) | (a.scores != b.scores)
    return {tuple(int(v) for v in i) for i in np.argwhere(diff)}


def acknowledged(page, undo_enabled=True) -> None:
    """Wait until the server's reply to the last action reached the page."""
    wait_for(page, f"document.getElementById('undo').disabled === {str(not undo_enabled).lower()}")


def canvas_pixel(page, x: float, y: float) -> list:
    return page.evaluate(f"Array.from(document.getElementById('canvas').getContext('2d')"
                         f".getImageData({int(x)}, {int(y)}, 1, 1).data)")


def test_load_draws_video_skeleton_timeline_and_reference(page, studio, tmp_path):
    server, _, seq = studio
    shot(page, tmp_path, "load")
    assert page.inner_text("#frame-label").startswith("frame 0 / 47")
    assert page.evaluate("window.studio.state.meta.adherence.length") == 48
    x, y = seq.keypoints[0, 0, RIGHT_ELBOW]
    r, g, b, _ = canvas_pixel(page, x, y)
    assert max(r, g, b) - min(r, g, b) > 100  # a saturated joint colour, not the grey-ish photo under it
    corner = canvas_pixel(page, 500, 20)
    assert sum(corner[:3]) > 60  # the video frame (dimmed photo), not a blank canvas
    assert page.evaluate("document.getElementById('reference').naturalWidth") == 512
    assert not page.is_hidden("#animation-view")


def test_blank_canvas_without_a_video(browser, tmp_path):
    seq = load_builtin_motion("wave")[:5]
    save_poses(seq, tmp_path / "p.npz")
    server = start_studio(tmp_path / "p.npz")
    try:
        page = new_page(browser)
        page.goto(server.url)
        wait_loaded(page)
        assert canvas_pixel(page, 500, 20)[:3] == [0, 0, 0]
        assert page.is_hidden("#animation-view") and page.is_hidden("#reference") and page.is_hidden("#adherence-legend")
        x, y = seq.keypoints[0, 0, RIGHT_ELBOW]
        assert sum(canvas_pixel(page, x, y)[:3]) > 150
        shot(page, tmp_path, "blank")
        page.context.close()
    finally:
        server.shutdown()
        server.server_close()


def test_scrub_step_and_play(page, tmp_path):
    box = page.locator("#timeline").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5 + 1, box["y"] + box["height"] / 2)
    wait_for(page, "window.studio.state.drawn === 24")
    page.keyboard.press("ArrowRight")
    wait_for(page, "window.studio.state.drawn === 25")
    page.keyboard.press("Shift+ArrowRight")
    wait_for(page, "window.studio.state.drawn === 35")
    page.keyboard.press("ArrowLeft")
    wait_for(page, "window.studio.state.drawn === 34")
    assert page.inner_text("#frame-label").startswith("frame 34 / 47")
    steps = page.evaluate("window.studio.stats.steps.length")
    assert steps >= 4
    page.keyboard.press("Home")
    wait_for(page, "window.studio.state.drawn === 0")
    page.keyboard.press(" ")
    page.wait_for_timeout(500)
    page.keyboard.press(" ")
    played = current_frame(page)
    assert 2 <= played <= 20  # 0.5 s at 24 fps is 12 frames; a busy machine draws fewer
    shot(page, tmp_path, "scrub")


def drag(page, point: int, dx: float, dy: float, person: int = 0) -> None:
    x, y = page.evaluate(f"window.studio.pointOnScreen({person}, {point})")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=3)
    page.mouse.move(x + dx, y + dy, steps=3)
    page.mouse.up()


def test_drag_undo_redo_save(page, studio, tmp_path):
    server, path, original = studio
    doc = server.studio.doc
    page.keyboard.press("Shift+ArrowRight")
    wait_for(page, "window.studio.state.drawn === 10")
    drag(page, RIGHT_ELBOW, 40, 25)
    acknowledged(page)
    shot(page, tmp_path, "drag")
    assert differing_points(doc.seq, original) == {(10, 0, RIGHT_ELBOW)}
    moved = doc.seq.keypoints[10, 0, RIGHT_ELBOW]
    assert page.evaluate(f"window.studio.point(10, 0, {RIGHT_ELBOW})")[:2] == moved.tolist()
    scale = 512 / page.locator("#canvas").bounding_box()["width"]
    np.testing.assert_allclose(moved - original.keypoints[10, 0, RIGHT_ELBOW], [40 * scale, 25 * scale], atol=1.5)
    assert "●" in page.inner_text("#title")

    page.keyboard.press("Control+z")
    acknowledged(page, undo_enabled=False)
    assert differing_points(doc.seq, original) == set()
    assert page.evaluate(f"window.studio.point(10, 0, {RIGHT_ELBOW})")[:2] == original.keypoints[10, 0, RIGHT_ELBOW].tolist()
    page.keyboard.press("Control+Shift+z")
    acknowledged(page)
    assert doc.seq.keypoints[10, 0, RIGHT_ELBOW].tolist() == moved.tolist()

    page.keyboard.press("Control+s")
    wait_for(page, "document.getElementById('status').textContent.startsWith('saved')")
    saved = load_poses(path)
    assert differing_points(saved, original) == {(10, 0, RIGHT_ELBOW)}
    np.testing.assert_allclose(saved.keypoints[10, 0, RIGHT_ELBOW], moved, atol=0.005)  # JSON keeps 0.01 px
    assert "●" not in page.inner_text("#title")
    page.select_option("#save-format", "npz")
    page.click("#save-as")
    wait_for(page, "document.getElementById('status').textContent.endsWith('wave.edited.npz')")
    assert differing_points(load_poses(path.with_name("wave.edited.npz")), doc.seq) == set()


def test_swap_limb_then_body(page, studio, tmp_path):
    server, _, original = studio
    doc = server.studio.doc
    x, y = page.evaluate(f"window.studio.pointOnScreen(0, {LEFT_WRIST})")
    page.mouse.click(x, y)
    assert "left_wrist" in page.inner_text("#selection")
    page.keyboard.press("s")
    acknowledged(page)
    shot(page, tmp_path, "swap")
    assert doc.seq.keypoints[0, 0, LEFT_WRIST].tolist() == original.keypoints[0, 0, RIGHT_WRIST].tolist()
    assert doc.seq.keypoints[0, 0, RIGHT_WRIST].tolist() == original.keypoints[0, 0, LEFT_WRIST].tolist()
    assert {k for _, _, k in differing_points(doc.seq, original)} <= {NAMES.index(n) for n in NAMES
                                                                      if any(w in n for w in ("shoulder", "elbow",
                                                                                              "wrist", "_hand_"))}
    page.click("#swap-body")
    wait_for(page, "document.getElementById('undo').title.includes('swap body')")
    flipped = original.keypoints[0, 0, COCO_WHOLEBODY.flip_permutation()]
    arms = [NAMES.index(n) for n in NAMES if any(w in n for w in ("shoulder", "elbow", "wrist", "_hand_"))]
    flipped[arms] = original.keypoints[0, 0, arms]  # swapped twice
    present = original.scores[0, 0] > 0
    present = present & present[COCO_WHOLEBODY.flip_permutation()]
    np.testing.assert_array_equal(doc.seq.keypoints[0, 0][present], flipped[present])


def test_keyframes_interpolate_with_holdposes_code(page, studio, tmp_path):
    server, _, _ = studio
    doc = server.studio.doc
    page.keyboard.press("Shift+ArrowRight")
    wait_for(page, "window.studio.state.drawn === 10")
    drag(page, RIGHT_ELBOW, -30, 30)
    acknowledged(page)
    page.keyboard.press("k")
    for _ in range(2):
        page.keyboard.press("Shift+ArrowRight")
    wait_for(page, "window.studio.state.drawn === 30")
    page.keyboard.press("k")
    assert page.inner_text("#keys") == "keyframes: 10, 30"
    before = doc.seq.copy()
    page.keyboard.press("i")
    wait_for(page, "document.getElementById('undo').title.includes('interpolate 10..30')")
    expected = interpolate_keyframes(before, [10, 30], "linear")
    np.testing.assert_array_equal(doc.seq.keypoints, expected.keypoints)
    np.testing.assert_array_equal(doc.seq.interpolated, expected.interpolated)
    assert page.evaluate(f"window.studio.point(20, 0, {RIGHT_ELBOW})")[:2] == expected.keypoints[20, 0, RIGHT_ELBOW].tolist()
    shot(page, tmp_path, "interpolate")
    page.click("#undo")
    wait_for(page, "document.getElementById('undo').title.includes('move right_elbow')")
    np.testing.assert_array_equal(doc.seq.keypoints, before.keypoints)


def test_delete_then_restore_from_the_ghost(page, studio, tmp_path):
    server, _, original = studio
    doc = server.studio.doc
    x, y = page.evaluate(f"window.studio.pointOnScreen(0, {RIGHT_ELBOW})")
    page.mouse.click(x, y)
    page.keyboard.press("Delete")
    acknowledged(page)
    assert doc.seq.scores[0, 0, RIGHT_ELBOW] == 0 and "right_elbow" in page.inner_text("#missing")
    shot(page, tmp_path, "deleted")
    page.mouse.click(x, y)  # the hollow ghost where the nearest frame has it
    wait_for(page, "document.getElementById('undo').title.includes('restore right_elbow')")
    assert differing_points(doc.seq, original) == set()


def test_a_refused_edit_shows_its_message_and_changes_nothing(page, studio, tmp_path):
    server, path, original = studio
    page.evaluate(f"window.studio.edit({{op: 'move', frame: 0, person: 0, keypoint: {RIGHT_ELBOW}, x: 1e9, y: 0}})")
    wait_for(page, "document.getElementById('status').classList.contains('error')")
    assert "far outside the 512x512 canvas" in page.inner_text("#status")
    shot(page, tmp_path, "refused")
    assert differing_points(server.studio.doc.seq, original) == set() and not server.studio.doc.dirty
    assert page.evaluate(f"window.studio.point(0, 0, {RIGHT_ELBOW})")[:2] == original.keypoints[0, 0, RIGHT_ELBOW].tolist()


def test_token_refusal(browser, studio):
    server = studio[0]
    page = new_page(browser)
    base = f"http://127.0.0.1:{server.port}"
    for url in (f"{base}/", f"{base}/?token=wrong", f"{base}/api/session", f"{base}/static/studio.js"):
        response = page.goto(url)
        assert response.status == 403 and "token" in page.inner_text("body")
    response = page.request.post(f"{base}/api/save", data={})
    assert response.status == 403
    page.context.close()


def test_path_traversal_refusal(browser, studio):
    server, path, _ = studio
    page = new_page(browser)
    base, headers = f"http://127.0.0.1:{server.port}", {"X-Holdpose-Token": server.studio.token}
    for route in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/wave.json",
                  f"/api/frame/video/..%2F..%2F{path.name}", "/static/studio.py"):
        response = page.request.get(base + route, headers=headers)
        assert response.status == 404, route
    before = path.read_bytes()
    for body in ({"format": "../../../tmp/evil"}, {"path": "/tmp/evil.json"}):
        response = page.request.post(f"{base}/api/save", data=body, headers=headers)
        assert response.status == 400 and response.json()["error"]
    assert path.read_bytes() == before and not list(path.parent.glob("*evil*"))
    page.context.close()
