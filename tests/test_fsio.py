"""vgdata.fsio: the one atomic writer of vgdata (real files, real Parquet)."""

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vgdata.fsio import atomic_path, atomic_write_bytes, atomic_write_table


def test_clean_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.parquet"
    atomic_write_table(target, pa.table({"x": [1, 2]}))
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a parquet file")
        raise RuntimeError("disk on fire")
    assert pq.read_table(target).column("x").to_pylist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]


def test_new_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~0o022


def test_metadata_goes_into_the_parquet_key_value_metadata(tmp_path):
    atomic_write_table(tmp_path / "m.parquet", pa.table({"x": [1]}), {"vgdata.k": "v"})
    assert pq.read_schema(tmp_path / "m.parquet").metadata[b"vgdata.k"] == b"v"


def test_two_writers_use_different_temporary_names(tmp_path):
    with atomic_path(tmp_path / "a") as t1, atomic_path(tmp_path / "a") as t2:
        assert t1 != t2
        assert t1.name.startswith(".tmp-a.") and t2.name.startswith(".tmp-a.")
        t1.write_bytes(b"1")
        t2.write_bytes(b"2")
    assert (tmp_path / "a").read_bytes() in (b"1", b"2")
