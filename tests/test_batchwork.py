"""The pieces batch commands share: the folder walker and the shard rule."""

import os
from dataclasses import make_dataclass
from pathlib import Path

from vidstyle.batchwork import BatchSummary, in_shard, walk


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_walk_yields_files_sorted_depth_first_and_skips_hidden(tmp_path):
    _touch(tmp_path / "b.mp4")
    _touch(tmp_path / "a" / "z.mp4")
    _touch(tmp_path / ".hidden" / "x.mp4")
    _touch(tmp_path / ".x.mp4")
    found = [p.relative_to(tmp_path).as_posix() for p in walk(tmp_path, descend=lambda d: True)]
    assert found == ["a/z.mp4", "b.mp4"]


def test_walk_yields_a_folder_it_is_told_not_to_enter(tmp_path):
    _touch(tmp_path / "clip" / "00001.png")
    found = list(walk(tmp_path, descend=lambda d: d.name != "clip"))
    assert found == [tmp_path / "clip"]


def test_walk_does_not_follow_a_link_back_up_the_tree(tmp_path):
    _touch(tmp_path / "in" / "sub" / "v.mp4")
    os.symlink("..", tmp_path / "in" / "sub" / "up")
    found = list(walk(tmp_path / "in", descend=lambda d: True))
    assert found == [tmp_path / "in" / "sub" / "v.mp4"]


def test_walk_enters_one_folder_reached_by_two_links_once(tmp_path):
    _touch(tmp_path / "real" / "v.mp4")
    os.symlink(tmp_path / "real", tmp_path / "link1")
    found = [p.name for p in walk(tmp_path, descend=lambda d: True)]
    assert found == ["v.mp4"]


def test_shard_rule_splits_ids_into_disjoint_shards_and_takes_names_that_are_not_utf8():
    ids = [f"clip{i}" for i in range(40)] + [os.fsdecode(b"bad\xff.mp4")]
    shards = [{i for i in ids if in_shard(i, (k, 3))} for k in range(3)]
    assert set().union(*shards) == set(ids)
    assert sum(len(s) for s in shards) == len(ids)
    assert all(shards)


def test_summary_counts_by_status_and_rounds_seconds():
    Row = make_dataclass("Row", ["status", "seconds"])
    summary = BatchSummary(results=[Row("ok", 1.23456), Row("failed", 2.0), Row("ok", 0.5)], seconds=3.21)
    assert summary.count("ok") == 2 and summary.count("failed") == 1
    data = summary.to_dict()
    assert data["done"] == 2 and data["failed"] == 1 and data["results"][0]["seconds"] == 1.235
