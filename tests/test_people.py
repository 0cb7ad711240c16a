"""People as a choice: tracks, --person ID|largest|longest|all, multi-person alignment, `holdpose people`."""

import numpy as np
import pytest

from holdpose.cli import main
from holdpose.errors import HoldposeError
from holdpose.io.posefile import load_poses, save_poses
from holdpose.io.video import read_image
from holdpose.people import choose_people, list_tracks, parse_person
from holdpose.refine.align import PELVIS, align_to_reference, with_virtual_joints
from holdpose.sequence import PoseSequence

from test_align import animate, reference_pose


def crowd():
    """Three people on a 512x512 canvas, 40 frames: track 7 (big, the whole clip, in slot 1 for the
    first half and slot 0 after), track 3 (small, frames 0-19) and track 9 (medium, frames 20-39)."""
    ref, _ = reference_pose()
    big = animate(ref, scale=0.9, shift=(-90, 20), seed=1)
    small = animate(ref, scale=0.3, shift=(150, 150), seed=2)
    medium = animate(ref, scale=0.5, shift=(60, 100), seed=3)
    seq = PoseSequence.empty(40, 2, size=(512, 512), fps=25)
    for t in range(40):
        people = [(small, 3), (big, 7)] if t < 20 else [(big, 7), (medium, 9)]
        for slot, (who, track_id) in enumerate(people):
            seq.keypoints[t, slot], seq.scores[t, slot] = who.keypoints[t, 0], who.scores[t, 0]
            seq.track_ids[t, slot] = track_id
    return seq


def test_tracks_are_listed_by_id_with_frames_and_mean_box():
    tracks = {tr.id: tr for tr in list_tracks(crowd())}
    assert sorted(tracks) == [3, 7, 9]
    assert (tracks[7].frames, tracks[7].first, tracks[7].last) == (40, 0, 39)
    assert (tracks[3].frames, tracks[3].first, tracks[3].last) == (20, 0, 19)
    assert (tracks[9].frames, tracks[9].first, tracks[9].last) == (20, 20, 39)
    assert tracks[7].area > tracks[9].area > tracks[3].area


def test_choose_by_id_follows_the_track_across_slots():
    seq = crowd()
    one = choose_people(seq, 7)
    assert one.num_people == 1 and (one.track_ids[:, 0] == 7).all()
    slot_of_7 = (seq.track_ids == 7).argmax(1)
    np.testing.assert_array_equal(one.keypoints[:, 0], seq.keypoints[np.arange(40), slot_of_7])
    nine = choose_people(seq, "9")
    assert (nine.track_ids[:20, 0] == -1).all() and (nine.scores[:20] == 0).all() and (nine.track_ids[20:, 0] == 9).all()


def test_largest_longest_all():
    seq = crowd()
    assert (choose_people(seq, "largest").track_ids[:, 0] == 7).all()
    assert (choose_people(seq, "longest").track_ids[:, 0] == 7).all()
    seq.scores[:, :, :] = np.where(seq.track_ids[..., None] == 7, 0, seq.scores)  # 7 gone: 3 and 9 tie on frames
    seq.track_ids[seq.track_ids == 7] = -1
    assert (choose_people(seq, "largest").track_ids[20:, 0] == 9).all()
    assert choose_people(seq, "all") is seq and choose_people(seq, None) is seq


def test_unknown_person_is_one_line_naming_the_ids():
    with pytest.raises(HoldposeError, match=r"person 5 is not a track id of crowd.json; they have 3, 7, 9"):
        choose_people(crowd(), 5, what="crowd.json")
    with pytest.raises(ValueError, match="--person takes a track id"):
        parse_person("tallest")


def test_align_keeps_everyone_inside_a_valid_sequence_each_about_their_own_root():
    seq = crowd()
    ref, ref_scores = reference_pose()
    ref_small = ref * 0.5  # a 256x256 reference: the character is half the size of the canvas before
    aligned, info = align_to_reference(seq, ref_small, ref_scores, reference_size=(256, 256))
    aligned.validate()
    xy = aligned.keypoints[aligned.present]
    assert ((xy >= 0) & (xy < 256)).all(-1).mean() > 0.99  # on the 256x256 canvas (a toe may stick out)
    # the main person (most body points: track 7) becomes the character, at the reference's root
    main_slot = (aligned.track_ids[0] == 7).argmax()
    assert main_slot == 1
    pelvis = with_virtual_joints(aligned.keypoints[:, 1], aligned.scores[:, 1])[0][:, PELVIS]
    ref_pelvis = with_virtual_joints(ref_small, ref_scores)[0][PELVIS]
    assert np.allclose(pelvis[0], ref_pelvis, atol=0.01)
    # the other person in slot 0 (track 3 in frames 0-19) stays where they were in the picture (half scale)
    before = with_virtual_joints(seq.keypoints[0, 0], seq.scores[0, 0])[0][PELVIS]
    after = with_virtual_joints(aligned.keypoints[0, 0], aligned.scores[0, 0])[0][PELVIS]
    assert np.allclose(after, before * 0.5, atol=0.5)
    # and keeps their size relative to the main person (both scaled by the main body ratio)
    def height(kp, sc):
        return np.ptp(kp[sc > 0.3][:, 1])
    ratio_before = height(seq.keypoints[0, 0], seq.scores[0, 0]) / height(seq.keypoints[0, 1], seq.scores[0, 1])
    ratio_after = height(aligned.keypoints[0, 0], aligned.scores[0, 0]) / height(aligned.keypoints[0, 1],
                                                                                   aligned.scores[0, 1])
    assert ratio_after == pytest.approx(ratio_before, rel=0.1)


def test_sequence_check_names_the_person_and_the_cause():
    seq = crowd()
    slot = (seq.track_ids[5] == 3).argmax()
    seq.keypoints[5, slot, 9] = [5000, 10]
    with pytest.raises(HoldposeError, match=r"left_wrist of person slot \d \(track id 3\) in frame 5 .*far outside "
                                            r"the 512x512 canvas .*--person"):
        seq.validate()


def test_cli_people_align_render_with_person(tmp_path, capsys):
    seq = crowd()
    save_poses(seq, tmp_path / "crowd.npz")
    assert main(["-q", "people", str(tmp_path / "crowd.npz")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("person 3: 20 frames (0-19), mean box") and out[1].startswith("person 7: 40 frames")
    strip = read_image(tmp_path / "crowd.people.png")
    assert strip.shape[0] == 3 * 128 and strip[:, 72:].any(-1).mean() > 0.01  # a row of drawn thumbnails per track

    ref, ref_scores = reference_pose()
    save_poses(PoseSequence.single_pose(ref * 0.5, ref_scores, size=(256, 256)), tmp_path / "ref.npz")
    assert main(["-q", "align", str(tmp_path / "crowd.npz"), "--reference", str(tmp_path / "ref.npz"),
                 "-o", str(tmp_path / "all.npz")]) == 0
    assert load_poses(tmp_path / "all.npz").num_people == 2
    assert main(["-q", "align", str(tmp_path / "crowd.npz"), "--reference", str(tmp_path / "ref.npz"),
                 "--person", "9", "-o", str(tmp_path / "nine.npz")]) == 0
    nine = load_poses(tmp_path / "nine.npz")
    assert nine.num_people == 1 and set(np.unique(nine.track_ids)) == {-1, 9}

    save_poses(seq[0], tmp_path / "first.npz")
    for person in ("all", "3"):
        assert main(["-q", "render", str(tmp_path / "first.npz"), "--person", person,
                     "-o", str(tmp_path / f"map_{person}.png")]) == 0
    both, three = read_image(tmp_path / "map_all.png"), read_image(tmp_path / "map_3.png")
    assert three.any(-1).sum() < 0.5 * both.any(-1).sum()  # frame 0: the small person only

    assert main(["-q", "render", str(tmp_path / "first.npz"), "--person", "5", "-o", str(tmp_path / "x.png")]) == 2
    assert "person 5 is not a track id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["-q", "render", str(tmp_path / "first.npz"), "--person", "tallest", "-o", str(tmp_path / "x.png")])
    assert "--person takes a track id" in capsys.readouterr().err


def test_evaluate_scores_only_the_chosen_person(tmp_path, monkeypatch):
    import holdpose.evaluate.run as run

    save_poses(crowd(), tmp_path / "crowd.npz")
    (tmp_path / "out.mp4").write_bytes(b"")
    seen = {}

    def fake_evaluate_video(video, *, target, **kwargs):
        seen["target"] = target
        raise HoldposeError("stop here")

    monkeypatch.setattr(run, "evaluate_video", fake_evaluate_video)
    assert main(["-q", "evaluate", str(tmp_path / "out.mp4"), "--target", str(tmp_path / "crowd.npz"),
                 "--person", "longest", "-o", str(tmp_path / "report")]) == 2
    assert seen["target"].num_people == 1 and set(np.unique(seen["target"].track_ids)) == {7}


def test_refine_track_reports_ids_before_and_after(tmp_path, capsys):
    seq = crowd()
    seq.track_ids[25:] = np.where(seq.track_ids[25:] == 7, 11, seq.track_ids[25:])  # 7 split in two tracklets
    save_poses(seq, tmp_path / "split.npz")
    assert main(["refine", str(tmp_path / "split.npz"), "--track", "-o", str(tmp_path / "tracked.npz")]) == 0
    assert "person ids 4 -> 3" in capsys.readouterr().out


@pytest.mark.slow
def test_multi_person_video_end_to_end_from_the_cli(tmp_path, astronaut, capsys):
    """extract -> refine --track -> align -> render (everyone) -> animate (one chosen person)."""
    import cv2

    from holdpose.io.video import VideoWriter, write_image

    small = cv2.resize(astronaut, (192, 192), interpolation=cv2.INTER_AREA)
    with VideoWriter(tmp_path / "two.mp4", fps=8, size=(480, 256)) as writer:
        for t in range(6):
            frame = np.full((256, 480, 3), 90, np.uint8)
            frame[40:232, 10 + 4 * t:202 + 4 * t] = small
            frame[40:232, 278 - 4 * t:470 - 4 * t] = small[:, ::-1]
            writer.write(frame)
    write_image(tmp_path / "ref.png", astronaut)
    d = str(tmp_path)
    assert main(["-q", "extract", f"{d}/two.mp4", "--max-people", "2", "-o", f"{d}/raw.npz"]) == 0
    assert main(["-q", "refine", f"{d}/raw.npz", "--track", "--video", f"{d}/two.mp4", "-o", f"{d}/clean.npz"]) == 0
    clean = load_poses(tmp_path / "clean.npz")
    assert clean.num_people == 2 and len(list_tracks(clean)) == 2
    assert main(["-q", "align", f"{d}/clean.npz", "--reference", f"{d}/ref.png", "-o", f"{d}/aligned.npz"]) == 0
    aligned = load_poses(tmp_path / "aligned.npz")
    assert len(list_tracks(aligned)) == 2
    assert main(["-q", "render", f"{d}/aligned.npz", "--person", "all", "-o", f"{d}/maps.mp4"]) == 0
    assert main(["-q", "animate", f"{d}/ref.png", f"{d}/clean.npz", "--person", "largest", "-o", f"{d}/out.mp4"]) == 0
    used = load_poses(tmp_path / "out.poses.json")
    assert used.num_people == 1 and used.num_frames == 6


def test_a_wide_walk_on_a_narrow_reference_stays_on_its_canvas(caplog):
    ref, ref_scores = reference_pose()
    walk = animate(ref, num_frames=60, scale=1.0)  # the pelvis walks 3 px a frame: 177 px
    walk.size = (1280, 512)
    walk.keypoints[:, 0, :, 0] += np.linspace(0, 400, 60)[:, None]  # and 400 px more: 577 px in all
    narrow = ref.copy()
    narrow[:, 0] -= 106  # the character in a 300x512 portrait canvas
    aligned, info = align_to_reference(walk, narrow, ref_scores, reference_size=(300, 512))
    pelvis = with_virtual_joints(aligned.keypoints[:, 0], aligned.scores[:, 0])[0][:, PELVIS]
    assert (pelvis[:, 0] >= 0).all() and (pelvis[:, 0] <= 300).all()
    assert pelvis[-1, 0] - pelvis[0, 0] > 0.9 * (300 - pelvis[0, 0])  # still walks as far as the canvas lets
    aligned.validate()
    assert "root motion scaled" in caplog.text


def test_cli_people_with_a_video_and_nobody_tracked(tmp_path, capsys):
    """A pose file without people lists none and writes an empty strip; it does not read the video."""
    from holdpose.io.video import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", fps=25, size=(64, 64)) as writer:
        for _ in range(3):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    save_poses(PoseSequence.empty(3, 1, size=(64, 64), fps=25), tmp_path / "nobody.npz")
    assert main(["-q", "people", str(tmp_path / "nobody.npz"), "--video", str(tmp_path / "v.mp4")]) == 0
    assert capsys.readouterr().out.strip().endswith(": 0 people in 3 frames")
    assert read_image(tmp_path / "nobody.people.png").shape[0] == 128
