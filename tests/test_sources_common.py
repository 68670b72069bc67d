"""Helpers used by every source: timestamps, safe paths, ids, lat folders, shard runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgdata import jobs
from vgdata.sources.common import canonical_timestamp, image_id, lat_folder, safe_relative


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("201311", ("201311", 2013, 11)),
        ("2013", ("2013", 2013, None)),
        ("20131105_143000", ("20131105_143000", 2013, 11)),
        ("2013-11", ("201311", 2013, 11)),
        ("2013-11-05", ("20131105", 2013, 11)),
        ("2013-11-05T14:30:00Z", ("20131105_143000", 2013, 11)),
        ("2013-11-05 14:30", ("20131105_1430", 2013, 11)),
        ("201313", None),
        ("2013-02-32", None),
        ("nov 2013", None),
        ("", None),
    ],
)
def test_canonical_timestamp(text, expected):
    assert canonical_timestamp(text) == expected


def test_safe_relative(tmp_path):
    assert safe_relative(tmp_path, "a/./b/../c.jpg") == "a/c.jpg"
    assert safe_relative(tmp_path, "..\\x.jpg") is None
    assert safe_relative(tmp_path, "/etc/passwd") is None
    assert safe_relative(tmp_path, "../x.jpg") is None
    (tmp_path / "link").symlink_to(tmp_path.parent)
    assert safe_relative(tmp_path, "link/x.jpg") is None


def test_ids_and_folders():
    assert image_id("database", "a.jpg") == image_id("database", "a.jpg")
    assert image_id("database", "a.jpg") != image_id("queries", "a.jpg")
    assert 0 <= image_id("x", "y") < 2**63
    assert lat_folder(37.70098) == "37.70" and lat_folder(37.7) == "37.70" and lat_folder(-33.86785) == "-33.86"


def _square(payload: dict) -> dict:
    Path(payload["out"]).write_text(str(payload["x"] ** 2))
    return {"x": payload["x"]}


def test_run_shards_in_real_processes_skips_finished(tmp_path):
    shards = [(f"{i:03d}", {"x": i, "out": str(tmp_path / f"{i}.txt")}) for i in range(5)]
    seen = []
    stats = jobs.run_shards(tmp_path / "job", shards, _square, workers=2, on_done=lambda s, st, n: seen.append(s))
    assert sorted(seen) == [s for s, _ in shards] and stats["004"] == {"x": 4}
    assert (tmp_path / "3.txt").read_text() == "9"
    assert json.loads((tmp_path / "job" / "002.done").read_text()) == {"x": 2}
    (tmp_path / "job" / "001.done").unlink()
    (tmp_path / "1.txt").unlink()
    ran = []
    jobs.run_shards(tmp_path / "job", shards, _square, workers=1, on_done=lambda s, st, n: ran.append(s))
    assert (tmp_path / "1.txt").read_text() == "1" and len(ran) == 5
