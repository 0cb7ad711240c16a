"""Signals: SIGTERM is a clean stop like Ctrl-C (one message, temporary files removed, exit
143), worker processes never outlive their parent whatever kills it, everything exits within
two seconds, and a run after a killed one removes the killed run's leftovers."""

from __future__ import annotations

import signal
import sys

import pytest

from holdpose.cli import main
from holdpose.io.atomic import remove_stale_partials
from holdpose.io.posefile import save_poses

from conftest import random_sequence
from signal_checks import (EXIT_LIMIT_SECONDS, holdpose_command, long_pose_file, make_video, partial_exists,
                           stop_mid_run, workers_running)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("signals") / "clip.mp4")


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGKILL, -9, None)])
def test_extraction_stopped_by_a_signal_leaves_no_worker_and_no_file(video, tmp_path, sig, code, word):
    result = stop_mid_run(holdpose_command("extract", video, "-o", tmp_path / "p.json", "--workers", 2), sig,
                          ready=workers_running(2), out_dir=tmp_path)
    assert result["exit_code"] == code, result
    assert result["workers_seen"] >= 2
    assert result["survivors"] == [], "a worker outlived its parent"
    assert result["left_in_output"] == []
    assert result["seconds_to_exit"] < EXIT_LIMIT_SECONDS
    if word:
        assert result["stderr"] == f"holdpose: {word}; no partial output was kept"


def test_sigterm_during_a_render_removes_the_temporary_video(tmp_path):
    long_pose_file(tmp_path / "long.npz")
    out = tmp_path / "out"
    out.mkdir()
    result = stop_mid_run(holdpose_command("render", tmp_path / "long.npz", "-o", out / "maps.mp4"), signal.SIGTERM,
                          ready=partial_exists(out), out_dir=out)
    assert result["exit_code"] == 143 and result["stderr"] == "holdpose: terminated; no partial output was kept"
    assert result["left_in_output"] == []
    assert result["seconds_to_exit"] < EXIT_LIMIT_SECONDS


def test_the_next_run_removes_what_a_killed_run_left(tmp_path):
    dead_pid = 2**22 + 7  # above Linux's largest pid: no such process
    stale_file = tmp_path / f".r.json.{dead_pid}.partial"
    stale_file.write_text("half")
    stale_folder = tmp_path / f".frames.{dead_pid}.partial"
    stale_folder.mkdir()
    (stale_folder / "frame_000000.json").write_text("{}")
    live = tmp_path / f".r.json.{1}.partial"  # pid 1 is alive: another run's file is left alone
    live.write_text("busy")
    save_poses(random_sequence(num_frames=3), tmp_path / "p.npz")
    assert main(["-q", "refine", str(tmp_path / "p.npz"), "-o", str(tmp_path / "r.json")]) == 0
    assert not stale_file.exists() and live.exists()
    assert remove_stale_partials(tmp_path / "frames") == [stale_folder]
    assert not stale_folder.exists()


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, capfd):
    import subprocess

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        save_poses(random_sequence(num_frames=200, num_people=2), tmp_path / "p.npz")
        assert main(["-q", "render", str(tmp_path / "p.npz"), "-o", str(tiny / "maps.mp4")]) == 2
        assert capfd.readouterr().err == f"holdpose: error: {tiny / 'maps.mp4'}: No space left on device\n"
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)])
