"""vgtrain.fsio: every vgtrain file is written under a temporary name and renamed over the target.

Real files, real writers (Path.write_text, pyarrow, torch.save through vgtrain.checkpoint); a writer
that fails part-way must leave the old file as it was and no temporary file beside it.
"""

from __future__ import annotations

import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vgtrain import checkpoint
from vgtrain.fsio import TMP_PREFIX, atomic_path, atomic_write_text


class Boom(Exception):
    pass


def test_a_clean_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "recalls.json"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f"{TMP_PREFIX}recalls.json.")
        assert target.read_text() == "old\n"  # the target is untouched while the writer works
        tmp.write_text('{"new": 1}\n')
    assert json.loads(target.read_text()) == {"new": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["recalls.json"]


def test_a_writer_that_raises_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_bytes(b"<html>old</html>\n")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"<html>half a pa")  # part of the new file is on disk ...
        raise Boom  # ... when the writer fails
    assert target.read_bytes() == b"<html>old</html>\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_failing_parquet_writer_keeps_the_old_table(tmp_path):
    target = tmp_path / "predictions.parquet"
    old = pa.table({"query_idx": pa.array([0, 1], pa.int32())})
    pq.write_table(old, target)
    with pytest.raises(Boom), atomic_path(target) as tmp:
        pq.write_table(pa.table({"query_idx": pa.array([5, 6, 7], pa.int32())}), tmp)
        raise Boom
    assert pq.read_table(target).equals(old)
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]


def test_checkpoint_save_that_fails_in_torch_save_keeps_the_previous_checkpoint(tmp_path):
    """torch.save writes the tensor, then fails to pickle a function: last.pt and last.meta.json stay as they were."""
    first = {"w": torch.arange(6, dtype=torch.float32)}
    checkpoint.save(tmp_path, "last", model_state=first, train_state=None, meta={"epoch": 0, "config": {}})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["last.meta.json", "last.pt"]
    unpicklable = {"w": torch.zeros(1000), "f": lambda: 0}
    with pytest.raises(Exception, match="pickle|lambda"):
        checkpoint.save(tmp_path, "last", model_state=unpicklable, train_state=None, meta={"epoch": 1, "config": {}})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    weights, state, meta = checkpoint.load(tmp_path, "last")
    assert torch.equal(weights["w"], first["w"]) and state is None and meta["epoch"] == 0


def test_a_clean_exit_without_a_file_is_an_error_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "best.pt"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # the writer wrote nothing
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_new_files_get_the_permissions_of_a_plain_write_and_parents_are_made(tmp_path):
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as f:  # what the umask gives a file written in place
        f.write("x")
    target = tmp_path / "run" / "sub" / "last.meta.json"
    atomic_write_text(target, "{}\n")
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_temporary_names_differ_between_writes_of_one_file(tmp_path):
    target = tmp_path / "recalls.json"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() == "a"  # the outer writer finished last
    assert [p.name for p in tmp_path.iterdir()] == ["recalls.json"]
