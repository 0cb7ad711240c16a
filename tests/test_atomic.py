"""io/atomic: an output appears whole or not at all."""

from __future__ import annotations

import pytest

from holdpose.io.atomic import atomic_path


def test_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        tmp.write_text("half")
        assert not target.exists() and tmp.parent == target.parent  # same filesystem: the rename is atomic
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, broken")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_interrupt_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_directory_replaces_a_folder_as_a_whole(tmp_path):
    target = tmp_path / "maps"
    target.mkdir()
    (target / "stale.png").write_bytes(b"x")
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir() and list(tmp.iterdir()) == []
        (tmp / "000.png").write_bytes(b"y")
    assert sorted(p.name for p in target.iterdir()) == ["000.png"]


def test_a_stale_temporary_of_the_same_process_is_replaced(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            stale = tmp
            raise ValueError
    stale.write_text("left by a killed run")
    with atomic_path(target) as tmp:
        assert not tmp.exists()  # cleared before use
        tmp.write_text("fresh")
    assert target.read_text() == "fresh"
