"""Extraction with the real offline MediaPipe models on real photos."""

import json

import numpy as np

from holdpose.detect.extract import extract_poses
from holdpose.detect.mediapipe import MediaPipeDetector
from holdpose.io.video import VideoWriter, write_image

from conftest import fixture_path


def test_astronaut_gives_one_person_with_sensible_landmarks(astronaut):
    with MediaPipeDetector() as detector:
        keypoints, scores = detector(astronaut)
    assert keypoints.shape == (1, 133, 2) and scores.shape == (1, 133)
    kp, sc = keypoints[0], scores[0]
    nose, left_eye, right_eye = kp[0], kp[1], kp[2]
    left_shoulder, right_shoulder = kp[5], kp[6]
    assert (sc[[0, 1, 2, 5, 6]] > 0.9).all()
    # Her face is around (225, 130) in the 512x512 photo; shoulders lower and wider.
    assert np.allclose(nose, [225, 130], atol=25)
    assert left_eye[1] < nose[1] and right_eye[1] < nose[1]
    assert left_eye[0] > right_eye[0]  # she faces the camera: her left is on the image's right
    assert left_shoulder[0] > nose[0] > right_shoulder[0]
    assert left_shoulder[1] > nose[1] + 60 and right_shoulder[1] > nose[1] + 60
    assert 150 < left_shoulder[0] - right_shoulder[0] < 260
    face = kp[23:91]
    assert (sc[23:91] == 1).all()
    assert (face.min(0) > [150, 60]).all() and (face.max(0) < [300, 200]).all()
    assert face[8, 1] > nose[1]  # chin below the nose


def test_frames_without_people_are_kept_as_missing(tmp_path, astronaut):
    small = astronaut[::2, ::2].copy()  # 256x256
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=10, size=(256, 256)) as writer:
        for i in range(8):
            writer.write(np.zeros_like(small) if i in (3, 4) else small)
    seq = extract_poses(path, progress=False)
    assert seq.num_frames == 8 and seq.fps == 10 and seq.size == (256, 256)
    found = (seq.scores[:, 0] > 0).any(-1)
    assert found.tolist() == [True, True, True, False, False, True, True, True]
    assert (seq.track_ids[:, 0] == np.where(found, 0, -1)).all()


def test_two_workers_keep_frame_order(tmp_path, astronaut):
    small = astronaut[::2, ::2].copy()
    folder = tmp_path / "frames"
    folder.mkdir()
    shifts = list(range(0, 48 * 2, 2))
    for i, dx in enumerate(shifts):  # the person moves right 2 px a frame
        frame = np.roll(small, dx // 2, axis=1)
        write_image(folder / f"{i:04d}.png", frame)
    seq = extract_poses(folder, workers=2, fps=24, progress=False)
    assert seq.num_frames == 48
    nose_x = seq.keypoints[:, 0, 0, 0]
    assert (seq.scores[:, 0, 0] > 0.5).all()
    assert np.corrcoef(nose_x, np.arange(48))[0, 1] > 0.98  # monotone motion survives the split


def test_several_people_on_a_real_photo():
    image_path = fixture_path("images", "coco_000000197388.jpg")  # five skiers
    seq = extract_poses(image_path, max_people=6, progress=False)
    assert seq.num_frames == 1
    people = (seq.track_ids[0] >= 0).sum()
    assert people >= 3
    ann = json.loads(fixture_path("images", "annotations.json").read_text())
    gt_noses = np.array([a["keypoints"][:2] for a in ann["annotations"]
                         if a["image_id"] == 197388 and a["keypoints"][2] > 0])
    found_noses = seq.keypoints[0, seq.track_ids[0] >= 0, 0]
    nearest = np.linalg.norm(found_noses[:, None] - gt_noses[None], axis=-1).min(1)
    assert (nearest < 40).sum() >= 2  # at least two sit on real skiers' heads


def test_top_down_in_ground_truth_boxes():
    from holdpose.io.video import read_image

    image = read_image(fixture_path("images", "coco_000000000785.jpg"))
    ann = json.loads(fixture_path("images", "annotations.json").read_text())
    gt = next(a for a in ann["annotations"] if a["image_id"] == 785)
    x, y, w, h = gt["bbox"]
    with MediaPipeDetector() as detector:
        keypoints, scores = detector.detect_in_boxes(image, np.array([[x, y, x + w, y + h]]))
    gt_kp = np.array(gt["keypoints"]).reshape(17, 3)
    visible = gt_kp[:, 2] > 0
    err = np.linalg.norm(keypoints[0, :17][visible] - gt_kp[visible, :2], axis=-1)
    assert np.median(err) < 0.05 * h  # PCK-style: typical error under 5 % of the person's height


def test_a_script_without_main_guard_fails_fast_with_advice(tmp_path):
    """Worker processes import the calling script again; without `if __name__ == "__main__":`
    that used to restart workers forever. Now it is one clear error, within seconds."""
    import subprocess
    import sys

    video = tmp_path / "grey.mp4"
    with VideoWriter(video, fps=25, size=(64, 64)) as writer:
        for t in range(60):  # enough frames for two workers
            writer.write(np.full((64, 64, 3), 4 * t, np.uint8))
    script = tmp_path / "unguarded.py"
    script.write_text(f"from holdpose.detect.extract import extract_poses\nextract_poses({str(video)!r}, progress=False)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr.splitlines()[-1]


def test_frame_chunks_cover_every_frame_once():
    from holdpose.parallel import MIN_FRAMES_PER_WORKER, frame_chunks

    for num_frames in (1, 23, 47, 48, 49, 288, 1001):
        for workers in (1, 2, 3, 8):
            chunks = frame_chunks(num_frames, workers)
            assert chunks[0][0] == 0 and chunks[-1][1] == num_frames
            assert all(a < b for a, b in chunks) and all(b == c for (_, b), (c, _) in zip(chunks, chunks[1:]))
            assert len(chunks) == max(1, min(workers, num_frames // MIN_FRAMES_PER_WORKER))
            sizes = [b - a for a, b in chunks]
            assert max(sizes) - min(sizes) <= 1


def test_a_header_that_counts_one_frame_too_many_is_not_a_truncated_video():
    """The talking-head fixture's MP4 header says 142 frames and 141 decode, as many encoders write
    them: extraction returns the 141 frames (a file cut short, lacking far more, is still an error:
    tests/test_cli.py)."""
    from holdpose.detect.extract import extract_poses
    from holdpose.io.video import FrameSource

    path = fixture_path("videos", "talk_animateanyone_talkinghead_3.mp4")
    assert FrameSource(path).num_frames == 142
    seq = extract_poses(path, short_side=128, workers=2, progress=False)
    assert len(seq.keypoints) == 141 and (seq.scores[:, 0, :5] > 0).all(axis=1).mean() > 0.9
