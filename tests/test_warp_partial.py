"""The warp animator on references that show part of a person, or more than one person: real
crops of the fixtures and the COCO photo of four skiers (the front one cut by the frame)."""

import json

import numpy as np
import pytest

from conftest import fixture_path
from holdpose.errors import HoldposeError
from holdpose.refine.align import NECK, PELVIS, align_to_reference, with_virtual_joints
from holdpose.sequence import PoseSequence

SKIERS = "coco_000000197388"


def coco_people(stem: str) -> list[np.ndarray]:
    """The COCO annotations of a fixture photo: per person ``[17, 3]`` (x, y, visible)."""
    doc = json.loads(fixture_path("images", "annotations.json").read_text())
    image_id = next(im["id"] for im in doc["images"] if im["file_name"] == f"{stem}.jpg")
    return [np.array(a["keypoints"], float).reshape(17, 3) for a in doc["annotations"] if a["image_id"] == image_id]


def needs_person_detector():
    from holdpose.detect import candidates

    if not candidates.interpreter_available():
        pytest.skip("MediaPipe's person detector needs a TFLite interpreter (pip install ai-edge-litert)")


@pytest.fixture(scope="module")
def skiers():
    """The photo, its rig, and the COCO annotations of the front skier and of the one behind him."""
    from holdpose.animate.warp import rig_reference
    from holdpose.io.video import read_image

    needs_person_detector()
    image = read_image(fixture_path("images", f"{SKIERS}.jpg"))
    people = coco_people(SKIERS)
    front = next(p for p in people if p[0, 0] > 560 and p[0, 1] > 200)  # nose at (580, 211)
    behind = next(p for p in people if p[0, 0] > 560 and p[0, 1] < 100)  # nose at (591, 78)
    return image, rig_reference(image), front, behind


def test_skier_photo_rigs_the_front_skier_alone(skiers):
    """MediaPipe holistic made one skeleton of the front skier's legs and the head and right arm
    of the skier behind him (nose 47 px, right wrist 160 px off), and a mask over both."""
    image, rig, front, behind = skiers
    seen = front[:, 2] > 0
    height = np.ptp(front[seen, 1])
    error = np.linalg.norm(rig.points[:17] - front[:, :2], axis=1)
    assert rig.present[:17][seen].all()
    assert error[seen].max() < 0.1 * height, error.round()
    # the skier behind keeps his head and chest: they are not in the puppet
    x, y = behind[0, :2].astype(int)
    assert not rig.mask[y - 6:y + 7, x - 6:x + 7].any()
    chest = behind[[5, 6, 11, 12], :2].mean(0).astype(int)
    assert not rig.mask[chest[1], chest[0]]


def test_skier_photo_animates_at_body_scale(skiers):
    """The demo's wave on the skier photo: the target sits on the front skier's body at its size
    (it was put on the mixed skeleton, its neck by the other skier's chest) and the posed
    puppet keeps its silhouette."""
    from holdpose.refine.keyframes import load_builtin_motion

    image, rig, front, _ = skiers
    wave = load_builtin_motion("wave")
    aligned, _ = align_to_reference(wave, rig.points, rig.present.astype(np.float32),
                                    reference_size=(image.shape[1], image.shape[0]))
    points, scores = aligned.keypoints[:, 0], aligned.scores[:, 0]
    true_neck = front[[5, 6], :2].mean(0)
    true_shoulders = np.linalg.norm(front[5, :2] - front[6, :2])
    height = np.ptp(front[front[:, 2] > 0, 1])
    neck = with_virtual_joints(points, scores)[0][:, NECK]
    assert np.linalg.norm(neck - true_neck, axis=1).max() < 0.1 * height
    shoulders = np.linalg.norm(points[:, 5] - points[:, 6], axis=1)
    assert 0.8 < np.median(shoulders) / true_shoulders < 1.25
    reference_area = rig.coverage(rig.points, rig.present.astype(np.float32)).sum()
    for t in range(0, aligned.num_frames, 8):
        assert 0.7 < rig.coverage(points[t], scores[t]).sum() / reference_area < 1.4


@pytest.fixture(scope="module")
def anyone11():
    from holdpose.detect.extract import detect_reference_pose
    from holdpose.io.video import read_image

    image = read_image(fixture_path("reference", "ref_animateanyone_anyone-11.png"))
    return image, detect_reference_pose(image)


def body_motion(keypoints, scores, num_frames=12):
    """The pose swinging its arms and legs about their joints (bone lengths kept), on its canvas."""
    from holdpose.refine.align import rooted_tree

    pts, present = with_virtual_joints(keypoints[None].astype(np.float64), (scores[None] > 0.3).astype(np.float32))
    pts = pts[0]
    seq = PoseSequence.empty(num_frames, 1, size=(1000, 1000), fps=10)
    for t in range(num_frames):
        out = pts.copy()
        for parent, child, _ in rooted_tree(PELVIS):
            angle = 0.4 * np.sin(0.5 * t + child)
            c, s = np.cos(angle), np.sin(angle)
            d = pts[child] - pts[parent]
            out[child] = out[parent] + [c * d[0] - s * d[1], s * d[0] + c * d[1]]
        seq.keypoints[t, 0] = out[:133]
    seq.scores[:, 0] = np.where(scores > 0.3, 1.0, 0.0)
    seq.track_ids[:] = 0
    return seq


def test_knee_cut_photo_keeps_its_body_height(anyone11):
    """anyone-11 cut at the knees, driven by a whole body: the character keeps the size it has
    in the whole photo (the scale of a bone the photo lacks is the body's)."""
    from holdpose.detect.extract import detect_reference_pose

    image, (keypoints, scores) = anyone11
    knee_y = int(keypoints[[13, 14], 1].mean())
    cut_points, cut_scores = detect_reference_pose(np.ascontiguousarray(image[:knee_y]))
    assert (cut_scores[[15, 16]] == 0).all() and (cut_scores[[5, 6, 11, 12]] > 0).all()
    driving = body_motion(keypoints * 0.6, scores)  # a smaller dancer
    whole, whole_info = align_to_reference(driving, keypoints, scores, reference_size=(image.shape[1], image.shape[0]))
    cut, cut_info = align_to_reference(driving, cut_points, cut_scores, reference_size=(image.shape[1], knee_y))
    assert cut_info.body_ratio == pytest.approx(whole_info.body_ratio, rel=0.05)
    heights = [np.ptp(seq.keypoints[:, 0, [0, 15, 16], 1], axis=1) for seq in (whole, cut)]
    assert np.median(heights[1] / heights[0]) == pytest.approx(1, abs=0.05)


def test_photo_cut_through_the_middle_is_refused_in_one_line(astronaut, tmp_path, capsys):
    """The astronaut cut a quarter shoulder past her middle (one shoulder, no hips in view):
    MediaPipe drew a small whole body inside the cut photo, hips in the suit, and the puppet
    was rigged from it; now `holdpose animate` refuses the photo in one line saying what it lacks."""
    from holdpose.cli import main
    from holdpose.io.video import write_image

    write_image(tmp_path / "half.png", np.ascontiguousarray(astronaut[:, :257]))
    assert main(["-q", "keyframes", "wave", "-o", str(tmp_path / "wave.npz"), "--fps", "2"]) == 0
    capsys.readouterr()
    output = tmp_path / "out.mp4"
    assert main(["-q", "animate", str(tmp_path / "half.png"), str(tmp_path / "wave.npz"), "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert "torso is not in view" in err and "right shoulder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not output.exists()


def test_pose_made_up_inside_a_cut_photo_is_refused(anyone11):
    """anyone-11 cut a quarter shoulder past his middle: MediaPipe drew a small whole person inside
    it (the face at the crotch, the shoulders on the shorts) and the puppet was rigged from that;
    now the photo is refused, the pose not fitting the person's outline."""
    from holdpose.animate.warp import rig_reference

    image, (keypoints, _) = anyone11
    right, left = sorted(keypoints[[5, 6], 0])
    half = np.ascontiguousarray(image[:, :int((left + right) / 2 + 0.25 * (left - right))])
    with pytest.raises(HoldposeError, match="does not fit the person|torso is not in view") as err:
        rig_reference(half)
    assert "\n" not in str(err.value)


def test_turned_character_cut_at_the_chest_keeps_its_scale():
    """A character turned three quarters (shoulders foreshortened to half) in a photo cut at the
    chest shares only the shoulders' halves of the torso with the driver: alone they gave half
    the body ratio; the head and upper arms it shows keep it."""
    from test_align import animate, reference_pose

    ref, ref_scores = reference_pose()
    driving = animate(ref, scale=1.0)
    turned = ref.copy()
    neck = ref[[5, 6]].mean(0)
    turned[[5, 6]] = neck + 0.5 * (ref[[5, 6]] - neck)  # shoulders at half their width
    turned[[7, 8, 9, 10]] += (turned[[5, 6, 5, 6]] - ref[[5, 6, 5, 6]])  # arms hang from them
    cut_scores = ref_scores.copy()
    cut_scores[11:23] = 0  # hips and legs below the frame
    _, info = align_to_reference(driving, turned, cut_scores)
    assert info.body_ratio == pytest.approx(1.0, rel=0.15)


def test_body_cut_by_the_frame_goes_on_when_lifted(anyone11):
    """anyone-11 cut at the chest, lifted by a tenth of the photo's height (the dance bobs): the
    body goes on down to the frame's edge (its clothes carried on), where it used to end in the
    picture, a cut edge floating over the background."""
    from holdpose.animate.warp import rig_reference

    image, (keypoints, _) = anyone11
    chest = int((keypoints[[5, 6], 1].mean() + keypoints[[11, 12], 1].mean()) / 2)
    rig = rig_reference(np.ascontiguousarray(image[:chest]))
    lifted = rig.points - [0, chest / 10]
    coverage = rig.coverage(lifted, rig.present.astype(np.float32))
    shoulders = slice(*sorted(keypoints[[6, 5], 0].astype(int)))
    assert coverage[-3:, shoulders].mean() > 0.95
    frame = rig.deform(lifted, rig.present.astype(np.float32))
    assert np.abs(frame[-3:, shoulders].astype(int) - image[chest - 3:chest, shoulders]).mean() < 40
    assert rig.canvas == (image.shape[1], chest + round(0.75 * rig.scale))  # the body goes on below the photo
