"""Helpers used by every source: timestamps, safe paths, ids, lat folders, shard runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgdata import jobs
from vgdata.sources.common import (
    UnsupportedMode,
    canonical_timestamp,
    display_path,
    image_id,
    lat_folder,
    name_too_long,
    rgb8,
    safe_relative,
    scan_images,
)


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
        ("2013-02-30", None),  # impossible dates are not dates
        ("20130229", None),
        ("2013-04-31T10:00:00Z", None),
        ("20120229", ("20120229", 2012, 2)),
        ("2000-02-29", ("20000229", 2000, 2)),
        ("1900-02-29", None),
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


@pytest.mark.parametrize(
    ("value", "level"), [(0, 0), (128, 0), (129, 1), (32768, 128), (65406, 254), (65407, 255), (65535, 255)]
)
def test_rgb8_scales_16_bit_greyscale(value, level):
    import numpy as np
    from PIL import Image

    im = Image.fromarray(np.full((2, 3), value, np.uint16))
    assert im.mode == "I;16"
    out = rgb8(im)
    assert out.mode == "RGB" and out.size == (3, 2)
    assert np.asarray(out).tolist() == [[[level] * 3] * 3] * 2


@pytest.mark.parametrize("mode", ["I", "F", "RGBa", "La", "HSV"])
def test_rgb8_refuses_modes_without_known_levels(mode):
    from PIL import Image

    with pytest.raises(UnsupportedMode, match=f"^mode {mode}: "):
        rgb8(Image.new(mode, (2, 2)))


def test_scan_images_refuses_links_out_broken_links_and_non_utf8_names(tmp_path):
    import os

    folder, outside = tmp_path / "in", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    for rel in ("a.jpg", "sub/b.PNG", "notes.txt", ".tmp-c.jpg.part"):
        (folder / rel).write_bytes(b"x")
    (outside / "x.jpg").write_bytes(b"x")
    (folder / "out.jpg").symlink_to(outside / "x.jpg")
    (folder / "in.jpg").symlink_to(folder / "a.jpg")  # a link inside the folder is fine
    (folder / "gone.jpg").symlink_to(folder / "nothing.jpg")
    (folder / "outdir").symlink_to(outside)  # a linked folder is not descended into
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"x")
    paths, refused = scan_images(folder)
    assert paths == ["a.jpg", "in.jpg", "sub/b.PNG"]
    assert refused == [
        (f"{folder}/caf\\xe9.jpg", "non-UTF-8 file name",
         "the file name's bytes are not UTF-8 (shown with \\x escapes); rename it to UTF-8"),
        (f"{folder}/gone.jpg", "file not found", f"broken symlink to {folder}/nothing.jpg"),
        (f"{folder}/out.jpg", "path outside folder",
         f"symlink {folder}/out.jpg leads to {outside}/x.jpg, outside {folder}"),
    ]  # fmt: skip
    assert display_path(folder / os.fsdecode(b"caf\xe9.jpg")) == f"{folder}/caf\\xe9.jpg"


def test_name_too_long():
    assert name_too_long("a" * 245) is None
    assert name_too_long("a" * 246).endswith("is 246 bytes; at most 245 fit (shorten the pano_id or file stem)")
    assert name_too_long("\u00e9" * 123) is not None  # 246 UTF-8 bytes
