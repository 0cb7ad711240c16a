"""holdpose batch on this machine: planning, the manifest, resume, failure isolation, a dead worker."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from holdpose.batch.jobs import plan_jobs
from holdpose.batch.manifest import ManifestWriter, plan_run, read_manifest
from holdpose.batch.runner import run_batch
from holdpose.cli import main
from holdpose.errors import HoldposeError
from holdpose.io.posefile import save_poses

from batch_clips import cut_clips, truncate_copy
from conftest import fixture_path, random_sequence

REPO = Path(__file__).resolve().parents[1]


def records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def pose_files(tmp_path) -> Path:
    """Four pose files in two sub-folders, and one that is not JSON."""
    poses = tmp_path / "poses"
    for i, sub in enumerate(["a", "a", "b", "b"]):
        (poses / sub).mkdir(parents=True, exist_ok=True)
        save_poses(random_sequence(num_frames=12, num_people=1, seed=i), poses / sub / f"motion{i}.json")
    (poses / "b" / "broken.json").write_text("{not json")
    return poses


# --- planning ---------------------------------------------------------------------


def test_plan_names_outputs_after_inputs_and_keeps_subfolders(pose_files, tmp_path):
    jobs = plan_jobs("render", [pose_files], tmp_path / "out")
    assert [j.key for j in jobs] == ["a/motion0.mp4", "a/motion1.mp4", "b/broken.mp4", "b/motion2.mp4",
                                     "b/motion3.mp4"]
    assert jobs[0].output == str((tmp_path / "out" / "a" / "motion0.mp4").resolve())
    assert jobs[0].inputs == {"input": str(pose_files / "a" / "motion0.json")}


def test_plan_list_file_table_and_collisions(pose_files, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text("# two motions\nposes/a/motion0.json\n\nposes/b   # a folder\n")
    keys = [j.key for j in plan_jobs("refine", [listing], tmp_path / "out", output_suffix=".npz")]
    assert keys == ["motion0.npz", "broken.npz", "motion2.npz", "motion3.npz"]

    with pytest.raises(HoldposeError, match="would both write motion0.json"):
        plan_jobs("refine", [pose_files / "a" / "motion0.json", listing], tmp_path / "out")

    table = tmp_path / "pairs.csv"
    table.write_text("reference,poses,output\nref.png,poses/a/motion0.json,\nref.png,poses/b/motion2.json,x/y\n")
    (tmp_path / "ref.png").write_bytes(b"")
    jobs = plan_jobs("animate", [table], tmp_path / "out")
    assert [j.key for j in jobs] == ["ref/motion0.mp4", "x/y.mp4"]
    assert jobs[1].inputs == {"poses": str(pose_files / "b" / "motion2.json"), "reference": str(tmp_path / "ref.png")}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"poses": "poses/a/motion0.json"}\n')
    with pytest.raises(HoldposeError, match=r"bad.jsonl:1: a animate job needs poses and reference"):
        plan_jobs("animate", [bad], tmp_path / "out")


def test_plan_animate_crosses_references_and_motions(pose_files, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("anna.png", "bo.jpg"):
        (refs / name).write_bytes(b"")
    jobs = plan_jobs("animate", [pose_files / "a"], tmp_path / "out", references=[refs], options={"backend": "warp"})
    assert [j.key for j in jobs] == ["anna/motion0.mp4", "anna/motion1.mp4", "bo/motion0.mp4", "bo/motion1.mp4"]
    with pytest.raises(HoldposeError, match="needs the characters: --reference"):
        plan_jobs("animate", [pose_files / "a"], tmp_path / "out")


def test_plan_skips_its_own_outputs_and_finds_evaluate_targets(tmp_path):
    videos = tmp_path / "videos"
    (videos / "out").mkdir(parents=True)
    for name in ("a.mp4", "b.mp4", "out/a.mp4"):
        (videos / name).write_bytes(b"")
    (videos / "a.poses.json").write_text("[]")
    jobs = plan_jobs("evaluate", [videos], videos / "out")
    assert [j.key for j in jobs] == ["a", "b"]  # videos/out/a.mp4 is the batch's own output folder
    assert jobs[0].inputs["target"] == str(videos / "a.poses.json") and "target" not in jobs[1].inputs
    (tmp_path / "empty").mkdir()
    with pytest.raises(HoldposeError, match="no extract inputs found in .*empty"):
        plan_jobs("extract", [tmp_path / "empty"], tmp_path / "o2")


# --- the manifest -------------------------------------------------------------------


def test_manifest_keeps_last_record_skips_torn_lines_and_plans_the_rest(pose_files, tmp_path):
    jobs = plan_jobs("refine", [pose_files / "a"], tmp_path / "out")
    path = tmp_path / "out" / "manifest.jsonl"
    with ManifestWriter(path) as manifest:
        manifest.append({"job": jobs[0].key, "status": "failed", "fingerprint": jobs[0].fingerprint})
        manifest.append({"job": jobs[0].key, "status": "done", "fingerprint": jobs[0].fingerprint})
        manifest.append({"job": jobs[1].key, "status": "failed", "fingerprint": jobs[1].fingerprint})
    with open(path, "a") as f:
        f.write('{"job": "torn", "sta')  # a write cut short by a crash
    with ManifestWriter(path) as manifest:  # starts a fresh line after the torn one
        manifest.append({"job": "later", "status": "done"})
    found = read_manifest(path)
    assert set(found) == {jobs[0].key, jobs[1].key, "later"} and found[jobs[0].key]["status"] == "done"

    Path(jobs[0].output).parent.mkdir(parents=True, exist_ok=True)
    Path(jobs[0].output).write_text("[]")
    plan = plan_run(jobs, found)
    assert (plan.done, plan.failed, plan.todo) == ([jobs[0]], [jobs[1]], [])
    assert plan_run(jobs, found, retry_failed=True).todo == [jobs[1]]
    os.remove(jobs[0].output)  # output gone: done again
    assert plan_run(jobs, found).todo == [jobs[0]]
    changed = plan_jobs("refine", [pose_files / "a"], tmp_path / "out", options={"fill": True})
    assert plan_run(changed, found).todo == changed  # other options: every job again


# --- running ------------------------------------------------------------------------


def test_batch_refine_isolates_failures_resumes_and_matches_single_commands(pose_files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["-q", "batch", "refine", str(pose_files), "-o", str(out), "--fill", "--smooth", "--processes", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("holdpose: error: 1 of 5 jobs failed (b/broken.json: ") and "not readable JSON" in err
    assert "Traceback" not in err
    first = records(out)
    assert sorted(r["status"] for r in first) == ["done"] * 4 + ["failed"]
    for record in first:
        assert record["seconds"] is not None and record["host"]
        if record["status"] == "done":
            single = tmp_path / "single.json"
            assert main(["-q", "refine", record["inputs"]["input"], "-o", str(single), "--fill", "--smooth"]) == 0
            assert Path(record["output"]).read_bytes() == single.read_bytes()

    assert main(argv) == 2  # rerun: nothing done twice, the failure is not retried...
    assert "1 of 5 jobs failed; every error is in" in capsys.readouterr().err
    assert len(records(out)) == 5
    (pose_files / "b" / "broken.json").write_text("[]")  # ...until fixed and asked for
    assert main(argv + ["--retry-failed"]) == 2  # an empty sequence is still an error, recorded again
    assert [r["job"] for r in records(out)[5:]] == ["b/broken.json"]


def test_run_batch_api_runs_in_this_process_with_one_process_and_skips_on_rerun(pose_files, tmp_path):
    jobs = plan_jobs("render", [pose_files / "a"], tmp_path / "maps", options={"size": [64, 48]})
    first = run_batch(jobs, tmp_path / "maps", processes=1, progress=False)
    assert (first.done, first.already_done, first.failed) == (2, 0, [])
    assert {r["pid"] for r in records(tmp_path / "maps")} == {os.getpid()}
    from holdpose.io.video import FrameSource

    maps = FrameSource(jobs[0].output)
    assert (maps.num_frames, maps.size) == (12, (64, 48))
    again = run_batch(jobs, tmp_path / "maps", processes=1, progress=False)
    assert (again.done, again.already_done) == (0, 2) and len(records(tmp_path / "maps")) == 2


def test_batch_extract_matches_single_command_with_one_worker(tmp_path):
    clips = cut_clips(fixture_path("videos"), tmp_path / "clips", [("talk_animateanyone_talkinghead_3.mp4", 2)],
                      seconds=1.0, short_side=160)
    truncate_copy(clips[0], tmp_path / "clips" / "cut.mp4")
    out = tmp_path / "out"
    assert main(["-q", "batch", "extract", str(tmp_path / "clips"), "-o", str(out)]) == 2
    done = {r["job"]: r for r in records(out)}
    assert done["cut.json"]["status"] == "failed" and "cut.mp4" in done["cut.json"]["error"]
    for clip in clips:
        single = tmp_path / f"{clip.stem}.single.json"
        assert main(["-q", "extract", str(clip), "-o", str(single), "--workers", "1"]) == 0
        assert (out / f"{clip.stem}.json").read_bytes() == single.read_bytes()
        assert done[f"{clip.stem}.json"]["frames"] == 30


def test_an_address_that_does_not_answer_is_one_line_not_a_hang(tmp_path, capsys):
    pytest.importorskip("ray")
    save_poses(random_sequence(num_frames=3), tmp_path / "m.json")
    assert main(["-q", "batch", "refine", str(tmp_path / "m.json"), "-o", str(tmp_path / "out"),
                 "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("holdpose: error: --ray: Ray cluster 127.0.0.1:1 does not answer")


def _pool_workers(pid: int) -> list[int]:
    """Pids of the spawned pool processes under ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_embedded_pool_retries_jobs_of_a_killed_worker(tmp_path):
    clips = cut_clips(fixture_path("videos"), tmp_path / "clips",
                      [("talk_animateanyone_talkinghead_3.mp4", s) for s in (0, 1, 2, 3)], seconds=1.5, short_side=256)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "holdpose.cli", "-q", "batch", "extract", str(tmp_path / "clips"), "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(_pool_workers(proc.pid)) < 2:
        time.sleep(0.2)
    time.sleep(2.0)  # the workers are importing or detecting: a job is running
    os.kill(_pool_workers(proc.pid)[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "4 done, 0 failed" in stdout and "trying again" in stderr
    assert sorted(r["job"] for r in records(out)) == [f"{c.stem}.json" for c in clips]  # once each, none lost


@pytest.mark.slow
def test_batch_animate_pairs_every_reference_with_every_motion(tmp_path, capsys):
    reference = fixture_path("reference", "ref_animateanyone_anyone-11.png")
    motions = tmp_path / "motions"
    motions.mkdir()
    assert main(["-q", "keyframes", "wave", "-o", str(motions / "wave.json"), "--fps", "8"]) == 0
    out = tmp_path / "out"
    assert main(["-q", "batch", "animate", str(motions), "--reference", str(reference), "-o", str(out)]) == 0
    assert "1 jobs: 1 done" in capsys.readouterr().out
    [record] = records(out)
    assert record["job"] == "ref_animateanyone_anyone-11/wave.mp4" and record["frames"] == 24
    single = tmp_path / "single.mp4"
    assert main(["-q", "animate", str(reference), str(motions / "wave.json"), "-o", str(single)]) == 0
    assert Path(record["output"]).read_bytes() == single.read_bytes()
    assert (out / "ref_animateanyone_anyone-11" / "wave.poses.json").read_bytes() == \
        single.with_suffix(".poses.json").read_bytes()

    with pytest.raises(SystemExit):  # a flag of another backend is refused before any job runs
        main(["-q", "batch", "animate", str(motions), "--reference", str(reference), "-o", str(out), "--steps", "x"])
    assert main(["-q", "batch", "animate", str(motions), "--reference", str(reference), "-o", str(tmp_path / "o2"),
                 "--steps", "4"]) == 2
    assert "--steps is for" in capsys.readouterr().err and not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_ctrl_c_keeps_whole_records_and_a_rerun_does_the_rest(tmp_path):
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(5):  # renders of a few seconds each
        save_poses(random_sequence(num_frames=600, num_people=1, size=(192, 144), seed=i), poses / f"m{i}.npz")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "holdpose.cli", "batch", "render", str(poses), "-o", str(out), "--processes", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "manifest.jsonl").is_file() and records(out)):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("holdpose: interrupted; ") and "run the same command again" in last, stderr
    first = records(out)  # every line whole
    assert 1 <= len(first) < 5 and all(r["status"] == "done" for r in first)

    assert main(["-q", "batch", "render", str(poses), "-o", str(out)]) == 0
    final = records(out)
    assert sorted(r["job"] for r in final) == [f"m{i}.mp4" for i in range(5)]  # the rest, none twice
    assert final[:len(first)] == first and not list(out.glob(".*.partial"))
