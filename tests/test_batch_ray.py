"""holdpose batch --ray on a real local Ray cluster (2 CPUs, started and stopped here): the same
records and outputs as the embedded pool, failures isolated, reruns resume, and a job whose worker
process is killed by pid is retried and recorded once."""

import json
import os
from pathlib import Path

import pytest

from holdpose.cli import main
from holdpose.io.posefile import save_poses

from batch_clips import WorkerKiller, cut_clips, garble_copy, truncate_copy
from conftest import fixture_path, random_sequence

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    # Ray's workers run at nice 15 by default: on a busy shared machine the tests would crawl
    os.environ["RAY_worker_niceness"] = "0"
    # address="local": a new cluster even when an address file of an earlier one is left in /tmp/ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    del os.environ["RAY_worker_niceness"]
    yield ray
    ray.shutdown()


def records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]


def test_ray_batch_records_failures_resumes_and_matches_embedded(cluster, tmp_path, capsys):
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(3):
        save_poses(random_sequence(num_frames=10, num_people=2, seed=i), poses / f"m{i}.json")
    (poses / "bad.json").write_text('[{"people": 3}]')
    common = ["-q", "batch", "refine", str(poses), "--track", "--fill"]
    assert main(common + ["-o", str(tmp_path / "local")]) == 2
    ray_run = common + ["-o", str(tmp_path / "ray"), "--ray", "auto"]
    assert main(ray_run) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("holdpose: error: 1 of 4 jobs failed (bad.json: ") and "OpenPose JSON frame" in err

    local, remote = records(tmp_path / "local"), records(tmp_path / "ray")
    assert sorted((r["job"], r["status"], r["error"]) for r in local) == \
        sorted((r["job"], r["status"], r["error"]) for r in remote)
    assert {r["pid"] for r in remote} != {os.getpid()}  # ran in Ray's workers
    for i in range(3):
        assert (tmp_path / "ray" / f"m{i}.json").read_bytes() == (tmp_path / "local" / f"m{i}.json").read_bytes()

    assert main(ray_run) == 2 and len(records(tmp_path / "ray")) == 4  # nothing twice
    assert main(ray_run + ["--retry-failed"]) == 2
    assert [r["job"] for r in records(tmp_path / "ray")[4:]] == ["bad.json"]
    assert ray.is_initialized()  # the caller's cluster is left running


def test_ray_retries_the_job_of_a_killed_worker(cluster, tmp_path):
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(3):  # each render takes a few seconds: long enough to be killed in the middle
        save_poses(random_sequence(num_frames=600, num_people=1, size=(192, 144), seed=i), poses / f"m{i}.npz")
    killer = WorkerKiller(after=0.3)
    killer.start()
    out = tmp_path / "out"
    assert main(["-q", "batch", "render", str(poses), "-o", str(out), "--ray", "auto"]) == 0
    killer.join()
    assert killer.killed is not None
    done = records(out)
    assert sorted(r["job"] for r in done) == ["m0.mp4", "m1.mp4", "m2.mp4"]  # once each, none lost
    assert killer.killed not in {r["pid"] for r in done}
    assert all(r["status"] == "done" and r["frames"] == 600 for r in done)
    single = tmp_path / "single.mp4"
    assert main(["-q", "render", str(poses / "m0.npz"), "-o", str(single)]) == 0
    assert (out / "m0.mp4").read_bytes() == single.read_bytes()
    assert not list(out.glob(".*.partial"))  # what the killed worker was writing is cleaned up


@pytest.mark.slow
def test_ray_fault_batch_on_real_clips(cluster, tmp_path):
    """The figure's scenario, smaller: real clips, 2 corrupt, a worker killed; done once each."""
    clips = cut_clips(fixture_path("videos"), tmp_path / "clips",
                      [("talk_animateanyone_talkinghead_3.mp4", s) for s in (0, 1.5, 3)], seconds=1.5, short_side=192)
    truncate_copy(clips[0], tmp_path / "clips" / "truncated.mp4")
    garble_copy(clips[1], tmp_path / "clips" / "garbled.mp4")
    killer = WorkerKiller(after=1.0)
    killer.start()
    out = tmp_path / "out"
    argv = ["-q", "batch", "extract", str(tmp_path / "clips"), "-o", str(out), "--ray", "auto"]
    assert main(argv) == 2
    killer.join()
    assert killer.killed is not None
    status = {r["job"]: r["status"] for r in records(out)}
    assert status == {"clip_00.json": "done", "clip_01.json": "done", "clip_02.json": "done",
                      "garbled.json": "failed", "truncated.json": "failed"}
    for clip in clips:
        single = tmp_path / "single.json"
        assert main(["-q", "extract", str(clip), "-o", str(single), "--workers", "1"]) == 0
        assert (out / f"{clip.stem}.json").read_bytes() == single.read_bytes()
    assert main(argv) == 2 and len(records(out)) == 5

