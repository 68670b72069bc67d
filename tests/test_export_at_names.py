"""At-folder export with '@' names made from the catalog's columns (``--names at|auto``), re-imported."""

from __future__ import annotations

import math
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.build import BuildConfig, build_catalog
from vgdata.errors import UsageError
from vgdata.export import ExportResult, _export_collection, export_catalog
from vgdata.names import parse_name

runner = CliRunner()


def rows_of(cat, collection: str) -> list[dict]:
    parts = sorted((cat / "images").glob(f"{collection}-*.parquet"))
    return pq.read_table(parts).to_pylist()


def floor_or_none(x: float | None) -> float | None:
    return None if x is None else float(math.floor(x))


@pytest.mark.parametrize("collection", ["queries_v1", "queries_v2"])
def test_at_names_reimport_with_the_catalog_values(tiny_catalog, tmp_path, collection):
    """queries_v1: EXIF photos (no heading); queries_v2: poses (heading and pitch, negative pitches too)."""
    out = tmp_path / "out"
    res = export_catalog(tiny_catalog, out, collections=[collection], names="at", copy=True)
    source = {r["pano_id"]: r for r in rows_of(tiny_catalog, collection)}
    assert res.files == {collection: len(source)} and res.named == len(source) and res.rejects_by_reason == {}
    written = (out / f"{collection}_images_paths.txt").read_text().splitlines()
    assert sorted(written) == sorted(os.listdir(out / collection))  # flat, every listed file exists
    cat2 = tmp_path / "cat2"
    again = build_catalog(BuildConfig(cat2, images=out / collection, collection=collection, workers=1))
    assert again.images == len(source) and again.rejects == 0
    back = rows_of(cat2, collection)
    assert sorted(r["pano_id"] for r in back) == sorted(source)
    for row in back:
        src = source[row["pano_id"]]
        assert (row["lat"], row["lon"]) == (round(src["lat"], 5), round(src["lon"], 5))
        assert (row["utm_east"], row["utm_north"]) == (round(src["utm_east"], 2), round(src["utm_north"], 2))
        assert (row["utm_zone"], row["utm_letter"], row["utm_epsg"]) == (
            src["utm_zone"],
            src["utm_letter"],
            src["utm_epsg"],
        )
        assert row["heading"] == floor_or_none(src["heading"])  # the SF-XL style: integer degrees
        assert row["pitch"] == floor_or_none(src["pitch"])
        assert (row["timestamp"], row["year"], row["month"], row["tile"]) == (
            src["timestamp"],
            src["year"],
            src["month"],
            src["tile"],
        )
        assert (row["width"], row["height_px"]) == (src["width"], src["height_px"])
        assert parse_name(row["path"]).extension == os.path.splitext(src["path"])[1]
    if collection == "queries_v2":
        assert any(r["pitch"] is not None and r["pitch"] < 0 for r in source.values())


def test_auto_keeps_at_paths_and_the_default_is_unchanged(tiny_catalog, tmp_path):
    res = export_catalog(tiny_catalog, tmp_path / "out", collections=["queries_v1"])
    paths = sorted(r["path"] for r in rows_of(tiny_catalog, "queries_v1"))
    assert res.named == 0 and sorted(os.listdir(tmp_path / "out" / "queries_v1")) == paths
    with pytest.raises(UsageError, match="unknown --names"):
        export_catalog(tiny_catalog, tmp_path / "x", names="short")


def test_names_for_plain_paths_no_utm_and_duplicates(tmp_path):
    """Rows as the catalog query gives them, with non-'@' paths (MSLS keys): made names, rejects, first one wins."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.png", "sub/d.jpg", "@1@2@@@@@x@@@@@@@@.jpg"):
        Image.new("RGB", (8, 8)).save(root / name)
    base = {"utm_east": 551184.256, "utm_north": 4180910.144, "utm_zone": 10, "utm_letter": "S", "lat": 37.7740972,
            "lon": -122.4187989, "pano_id": "key1", "tile": None, "heading": 271.9, "pitch": None,
            "timestamp": "20180815"}  # fmt: skip
    rows = [
        {**base, "path": "a.jpg"},
        {**base, "path": "b.jpg"},  # same columns as a.jpg: the same name
        {**base, "path": "c.png", "pano_id": "key2", "tile": 3},
        {**base, "path": "sub/d.jpg", "utm_zone": None, "utm_letter": None},  # no UTM
        {**base, "path": "@1@2@@@@@x@@@@@@@@.jpg", "utm_zone": None, "utm_letter": None, "lat": None, "lon": None},
    ]
    result = ExportResult(dest=str(tmp_path), files={}, linked=0, copied=0)  # auto keeps the Nordland-style '@' name
    written = _export_collection(rows, root, tmp_path / "out", "c", "auto", False, result)
    first = "@0551184.26@4180910.14@10@S@037.77410@-122.41880@key1@@271@@@@20180815@@.jpg"
    assert written == [first, "@0551184.26@4180910.14@10@S@037.77410@-122.41880@key2@03@271@@@@20180815@@.png",
                       "@1@2@@@@@x@@@@@@@@.jpg"]  # fmt: skip
    assert os.path.samefile(tmp_path / "out" / first, root / "a.jpg")  # b.jpg did not overwrite it
    assert result.rejects_by_reason == {"duplicate name": 1, "no UTM": 1} and result.named == 2
    assert result.reject_examples == [f"c/b.jpg: duplicate name ({first})", "c/sub/d.jpg: no UTM"]
    # --names at: the Nordland-style row cannot get a full name
    result = ExportResult(dest=str(tmp_path), files={}, linked=0, copied=0)
    _export_collection(rows[4:], root, tmp_path / "out2", "c", "at", False, result)
    assert result.rejects_by_reason == {"no UTM": 1}


def test_cli_names_option(tiny_catalog, tmp_path):
    res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(tmp_path / "o"), "--collection", "queries_v2",
                                     "--names", "at"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "queries_v2: 4 files" in res.output and "4 under made '@' names" in res.output
    res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(tmp_path / "o"), "--names", "odd"])
    assert res.exit_code == 2 and "unknown --names 'odd'" in res.output
