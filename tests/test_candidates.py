"""Every person at once: the person detector's decoding, suppression and regions, and the
multi-person path built on it (with the paint-and-search fallback when no interpreter is there)."""

from __future__ import annotations

import numpy as np
import pytest

from holdpose.detect import candidates as cand
from holdpose.detect.candidates import Candidates, anchor_centres, non_max_suppression, pose_regions
from tests.conftest import fixture_path

needs_interpreter = pytest.mark.skipif(not cand.interpreter_available(), reason="no TFLite interpreter installed")


def test_anchor_centres_follow_the_ssd_layout():
    anchors = anchor_centres()
    assert anchors.shape == (2254, 2)  # 28x28x2 + 14x14x2 + 7x7x6, the model's output rows
    np.testing.assert_allclose(anchors[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[28 * 28 * 2], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(anchors[-6:], [[6.5 / 7, 6.5 / 7]] * 6)


def test_pose_region_is_centred_on_the_hip_and_turned_upright():
    hip = np.array([[100.0, 200.0], [100.0, 200.0], [0.0, 0.0]])
    top = np.array([[100.0, 100.0], [150.0, 150.0], [-40.0, 30.0]])
    rois = pose_regions(hip, top)
    np.testing.assert_allclose(rois[0], [100, 200, 250, 0], atol=1e-5)  # upright: 2 x 1.25 x 100
    np.testing.assert_allclose(rois[1, :3], [100, 200, 2.5 * np.hypot(50, 50)], rtol=1e-5)
    assert rois[1, 3] == pytest.approx(np.pi / 4)  # leaning right: turned by 45 degrees
    assert rois[2, 2] == pytest.approx(125.0) and -np.pi <= rois[2, 3] <= np.pi  # head below: wrapped angle


def _candidates(faces, hips, scores):
    """Candidates with face boxes 40 px wide around ``faces [N, 2]`` and bodies from ``hips [N, 2]``
    400 px up (regions 1000 px wide)."""
    faces, hips = np.asarray(faces, np.float32), np.asarray(hips, np.float32)
    keypoints = np.stack([hips, hips - [0, 400], hips - [0, 250], hips - [0, 300]], 1)
    return Candidates(np.asarray(scores, np.float32), np.concatenate([faces - 20, faces + 20], 1), keypoints)


def test_suppression_keeps_two_people_standing_close_but_not_one_found_twice():
    found = _candidates(faces=[[500, 100], [503, 98], [590, 100], [1100, 100]],
                        hips=[[500, 500], [510, 520], [590, 500], [1100, 500]], scores=[0.6, 0.9, 0.8, 0.4])
    kept = non_max_suppression(found)
    # The second find of the best (a few px off) is gone; the person 90 px over stays; best first.
    np.testing.assert_allclose(kept.scores, [0.9, 0.8, 0.4])
    np.testing.assert_allclose(kept.boxes[0], [483, 78, 523, 118])
    assert len(non_max_suppression(Candidates.concatenate([]))) == 0


def _two_people(width=1280, height=720) -> np.ndarray:
    """The two catalogue photos side by side on grey, each person about 600 px tall."""
    import cv2

    from holdpose.io.video import read_image

    canvas = np.full((height, width, 3), 128, np.uint8)
    for name, x0 in (("ref_animateanyone_anyone-3.png", 150), ("ref_animateanyone_anyone-11.png", 750)):
        photo = read_image(fixture_path("reference", name))
        scale = 680 / photo.shape[0]
        photo = cv2.resize(photo, (round(photo.shape[1] * scale), 680), interpolation=cv2.INTER_AREA)
        canvas[20:700, x0:x0 + photo.shape[1]] = photo
    return canvas


@needs_interpreter
def test_detector_finds_both_people_with_hips_on_them():
    image = _two_people()
    found = cand.PersonDetector()(image)
    # The whole image and its windows see each person; their finds are merged to a few
    # (any left over are dropped after the landmarks, see the next test).
    assert 2 <= len(found) <= 4
    hips = found.keypoints[:, 0]
    assert set(hips[:, 0] < 640) == {False, True}  # someone on each side
    assert np.all((hips[:, 1] > 250) & (hips[:, 1] < 550))  # at hip height, not the face
    assert np.all(found.rois()[:, 2] > 500)  # a region around the whole body


@needs_interpreter
def test_several_people_come_from_one_detector_pass_with_hands_and_face():
    from holdpose.detect.mediapipe import MediaPipeDetector

    image = _two_people()
    with MediaPipeDetector(max_people=4) as detector:
        assert detector.finder == "detector"
        keypoints, scores = detector(image)
    assert keypoints.shape == (2, 133, 2)
    noses = keypoints[:, 0, 0]
    assert sorted(noses < 640) == [False, True]
    assert np.all(scores[:, 23:91].max(1) > 0)  # each has a face


def test_without_an_interpreter_people_are_searched_one_at_a_time(monkeypatch):
    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.errors import HoldposeError

    monkeypatch.setattr(cand, "_import_interpreter", lambda: None)
    with MediaPipeDetector(max_people=3) as detector:
        assert detector.finder == "search"
    with pytest.raises(HoldposeError, match="pip install ai-edge-litert"):
        MediaPipeDetector(max_people=3, finder="detector")


@needs_interpreter
def test_one_small_person_is_found_where_the_one_person_graph_sees_nobody():
    import cv2

    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.video import read_image

    photo = read_image(fixture_path("reference", "ref_animateanyone_anyone-11.png"))
    photo = cv2.resize(photo, (round(photo.shape[1] * 220 / photo.shape[0]), 220), interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    canvas[450:670, 900:900 + photo.shape[1]] = photo
    with MediaPipeDetector(finder="search") as plain:
        assert len(plain(canvas)[1]) == 0  # shrunk to 224 px, the person is ~40 px: nobody
    with MediaPipeDetector() as detector:
        keypoints, scores = detector(canvas)
    assert len(scores) == 1
    body = keypoints[0, :17][scores[0, :17] > 0]
    assert len(body) >= 10
    assert np.all((body[:, 0] > 890) & (body[:, 0] < 910 + photo.shape[1]) & (body[:, 1] > 440) & (body[:, 1] < 680))


@needs_interpreter
def test_a_video_follows_its_people_from_frame_to_frame():
    from holdpose.detect.mediapipe import MediaPipeDetector

    image = _two_people()
    shifted = np.roll(image, 12, axis=1)  # everyone 12 px to the right in the next frame
    with MediaPipeDetector(max_people=4, video=True) as detector:
        first, _ = detector(image)
        assert len(detector._carried) == 2  # both followed into the next frame
        second, scores = detector(shifted)
    assert len(scores) == 2
    order = np.argsort(first[:, 0, 0]), np.argsort(second[:, 0, 0])
    moved = second[order[1], :17, 0] - first[order[0], :17, 0]
    assert np.median(moved) == pytest.approx(12, abs=4)


@needs_interpreter
def test_a_video_asks_the_detector_only_while_the_people_followed_fall_short():
    from holdpose.detect.mediapipe import WINDOW_EVERY, MediaPipeDetector

    image = _two_people()
    with MediaPipeDetector(max_people=2, video=True) as detector:
        calls = []
        finder = detector._finder
        detector._finder = lambda frame, **kw: calls.append(kw) or finder(frame, **kw)
        for _ in range(WINDOW_EVERY + 1):  # both followed: the window frame needs no look either
            assert len(detector(image)[1]) == 2
        assert calls == [{"windows": True}]  # frame 0 only
        one_left = image.copy()
        one_left[:, 740:] = image[0, 0]  # the right-hand person (from x = 750) walks out
        assert len(detector(one_left)[1]) == 1
        assert calls[1:] == [{"windows": False}]  # one followed fell short: a look for newcomers


def _cutout(name: str, height: int = 520) -> tuple[np.ndarray, np.ndarray]:
    """RGB and mask ``[height, w]`` of a catalogue photo's person, cut out on MediaPipe's mask."""
    import cv2

    from holdpose.detect.mediapipe import MediaPipeDetector
    from holdpose.io.video import read_image

    photo = read_image(fixture_path("reference", name))
    with MediaPipeDetector(segmentation=True) as detector:
        detector.detect_one(photo)
        mask = (detector.last_mask > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    photo, mask = (a[ys.min():ys.max() + 1, xs.min():xs.max() + 1] for a in (photo, mask))
    size = (round(photo.shape[1] * height / photo.shape[0]), height)
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def _crossing_frames(frames: range):
    """The woman walking right behind the man in red, who has turned and walks right a little
    faster just in front of her, a second man further right (leaving from frame 100), as in
    ``bench/bench_people.py``'s crossing: 1280x720 frames and who
    owns each pixel ``[720, 1280]`` (-1 floor), drawn back to front."""
    woman = _cutout("ref_animateanyone_anyone-3.png")
    man = _cutout("ref_animateanyone_anyone-11.png")
    other = (np.ascontiguousarray(man[0][:, ::-1] // 2), np.ascontiguousarray(man[1][:, ::-1]))  # mirrored, darker
    floor = np.full((720, 1280, 3), 130, np.uint8)
    for t in frames:
        frame, owner = floor.copy(), np.full((720, 1280), -1)
        placed = (woman, 80 + 5 * t), (other, 900 + 9 * max(t - 100, 0)), (man, 370 + 9 * (t - 70))
        for who, ((image, mask), x0) in enumerate(placed):
            y0 = 170 + round(4 * np.sin(t / 3 + who))
            on = mask > 0
            frame[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][on] = image[on]
            owner[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][on] = who
        yield frame, owner


def _blended(keypoints: np.ndarray, scores: np.ndarray, owner: np.ndarray) -> bool:
    """Whether fewer than half of a skeleton's seen body points lie on any one person's pixels."""
    xy = keypoints[:17][scores[:17] > 0.3].astype(int)
    xy = xy[(xy >= 0).all(1) & (xy[:, 0] < owner.shape[1]) & (xy[:, 1] < owner.shape[0])]
    who = owner[xy[:, 1], xy[:, 0]]
    return len(xy) >= 6 and np.bincount(who[who >= 0], minlength=1).max() * 2 < len(xy)


@pytest.mark.slow
@needs_interpreter
def test_people_walking_close_together_are_not_followed_into_a_blend():
    """The crossing benchmark's pair after the man turns: followed frame to frame, a region
    slid onto both and gave a skeleton made of the two for 10 frames in a row (frames 111-120).
    A blend can still show for a few frames where it is the only skeleton on the pair (the
    man's region catching the woman as she comes out from behind him, 106-108): nobody else
    is found there for it to be told from."""
    from holdpose.detect.mediapipe import MediaPipeDetector

    blends = []
    with MediaPipeDetector(max_people=4, video=True) as detector:
        for t, (frame, owner) in zip(range(95, 125), _crossing_frames(range(95, 125))):
            keypoints, scores = detector(frame)
            blends.append(sum(_blended(k, s, owner) for k, s in zip(keypoints, scores)))
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, np.array(blends) > 0, 0])))[::2]
    assert runs.max(initial=0) <= 3, blends  # before: one followed for 10 frames in a row


def test_a_skeleton_made_of_two_people_is_dropped_but_the_two_are_kept():
    from holdpose.detect.mediapipe import _without_blends

    rng = np.random.default_rng(0)
    body = rng.uniform(0, 400, (133, 2)).astype(np.float32)
    seen = np.ones(133, np.float32)
    left, right, far = (body, seen), (body + [150, 0], seen), (body + [900, 0], seen)
    blend = (np.concatenate([body[:9], body[9:17] + [150, 0], body[17:]]), seen)  # head and arms of one, legs of the other
    kept = _without_blends([(left, "L"), (blend, "B"), (right, "R"), (far, "F")])
    assert [name for _, name in kept] == ["L", "R", "F"]
    halfway = (body + [75, 0], seen)  # on neither: not a blend of them
    assert len(_without_blends([(left, 0), (halfway, 1), (right, 2)])) == 3
    unseen_legs = seen.copy()
    unseen_legs[9:17] = 0  # the other's points unseen: one person, not a blend
    assert len(_without_blends([(left, 0), ((blend[0], unseen_legs), 1), (right, 2)])) == 3
    # Two blends of the same pair: both go, the pair stays.
    other_blend = (np.concatenate([body[:9] + [150, 0], body[9:17], body[17:]]), seen)
    kept = _without_blends([(blend, "B"), (left, "L"), (other_blend, "O"), (right, "R")])
    assert sorted(name for _, name in kept) == ["L", "R"]
