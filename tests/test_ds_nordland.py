"""Nordland raw (FORMATS.md 2.8): summer/*.png, winter/*.png, cleanImageNames.txt -> one catalog."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from vgdata.build import BuildConfig, build_catalog, build_dataset
from vgdata.errors import UsageError
from vgdata.evalset import eval_set
from vgdata.sources import ds_nordland

N_CLEAN = 24  # frames listed and in both seasons: more than 2 x 10 frames, so the +-10 window bites
CLEAN = [f"images-{k:05d}.png" for k in range(3, 3 + 2 * N_CLEAN, 2)]  # odd ride frames: renumbering matters
UNLISTED = {"summer": ["images-00000.png", "images-00100.png"], "winter": ["images-00000.png"]}
SUMMER_ONLY = "images-00200.png"  # listed, no winter frame
NOWHERE = "images-00300.png"  # listed, no file at all


def make_nordland(root: Path) -> Path:
    """A raw Nordland folder: the clean frames in both seasons plus the planted cases above."""
    for season in ("summer", "winter"):
        (root / season).mkdir(parents=True)
        for k, name in enumerate(CLEAN):
            Image.new("RGB", (32, 24), (k * 10, 40 if season == "summer" else 200, 90)).save(root / season / name)
        for name in UNLISTED[season]:
            Image.new("RGB", (32, 24)).save(root / season / name)
    Image.new("RGB", (32, 24)).save(root / "summer" / SUMMER_ONLY)
    (root / "summer" / "notes.txt").write_text("not an image\n")
    listed = [*reversed(CLEAN), SUMMER_ONLY, NOWHERE, CLEAN[0], "../winter/x.png"]  # any order, one twice, a path
    (root / "cleanImageNames.txt").write_text("\n".join(listed) + "\n")
    return root


def make_dvg_nordland(root: Path) -> Path:
    """The same clean frames as VPR-datasets-downloader writes them: '@0@<north>@@@@@<n>@@@@@@@@.jpg'."""
    for season, role in (("summer", "database"), ("winter", "queries")):
        folder = root / "images" / "test" / role
        folder.mkdir(parents=True)
        for n, _ in enumerate(sorted(CLEAN)):
            whole, frac = f"{n * 25 / 10.5:.6f}".split(".")  # DVG: zero-padded to 5, one decimal, truncated
            name = f"@0@{whole.zfill(5)}.{frac[0]}@@@@@{n}@@@@@@@@.jpg"
            Image.new("RGB", (32, 24), (n * 10, 40 if season == "summer" else 200, 90)).save(folder / name)
    return root


@pytest.fixture(scope="module")
def nordland(tmp_path_factory):
    root = make_nordland(tmp_path_factory.mktemp("nordland") / "nordland")
    cat = tmp_path_factory.mktemp("nordcat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="nordland", prefix="", dataset_root=root, workers=1))
    return cat, root, results


def test_collections_frames_positions_attributes(nordland):
    cat, root, results = nordland
    assert [r.collection for r in results] == ["test_database", "test_queries"]
    assert [r.images for r in results] == [N_CLEAN, N_CLEAN]
    images = pq.read_table(cat / "images").to_pylist()
    attrs = {a["image_id"]: a for a in pq.read_table(cat / "attributes").to_pylist()}
    for coll, season in (("test_database", "summer"), ("test_queries", "winter")):
        rows = sorted((r for r in images if r["collection"] == coll), key=lambda r: int(r["pano_id"]))
        assert [r["path"] for r in rows] == [f"{season}/{name}" for name in sorted(CLEAN)]
        for n, r in enumerate(rows):
            assert r["pano_id"] == str(n)
            assert (r["utm_east"], r["utm_north"]) == (0.0, pytest.approx(n * 2.380952380952, abs=1e-9))
            assert (r["utm_zone"], r["utm_letter"], r["utm_epsg"], r["lat"], r["lon"]) == (None,) * 5
            assert (r["heading"], r["timestamp"], r["year"]) == (None, None, None)
            assert (r["width"], r["height_px"]) == (32, 24)
            a = attrs[r["image_id"]]
            assert (a["dataset"], a["split"], a["frame"], a["coords_synthetic"]) == ("nordland", "test", n, True)
            assert (a["source_name"], a["nordland_season"]) == (sorted(CLEAN)[n], season)
            assert (a["night"], a["source_east"], a["source_north"]) == (None, None, None)


def test_rejects_and_skipped_frames(nordland):
    cat, root, results = nordland
    assert results[0].rejects_by_reason == {
        "not in cleanImageNames": 2,
        "frame in one season only": 1,
        "file not found": 1,
        "bad metadata row": 1,
    }
    assert results[1].rejects_by_reason == {"not in cleanImageNames": 1}
    rejects = pq.read_table(cat / "rejects").to_pylist()
    by_reason = {(r["collection"], r["reason"], Path(r["path"]).name) for r in rejects}
    assert by_reason == {
        ("test_database", "not in cleanImageNames", "images-00000.png"),
        ("test_database", "not in cleanImageNames", "images-00100.png"),
        ("test_database", "frame in one season only", SUMMER_ONLY),
        ("test_database", "file not found", "cleanImageNames.txt"),
        ("test_database", "bad metadata row", "cleanImageNames.txt"),
        ("test_queries", "not in cleanImageNames", "images-00000.png"),
    }
    assert [r["row"] for r in rejects if r["reason"] == "file not found"] == [N_CLEAN + 2]
    assert [r["row"] for r in rejects if r["reason"] == "bad metadata row"] == [N_CLEAN + 4]


def test_not_nordland_or_no_list(tmp_path):
    assert ds_nordland.read(tmp_path) == []
    for season in ("summer", "winter"):
        (tmp_path / season).mkdir()
    with pytest.raises(UsageError, match="cleanImageNames.txt"):
        ds_nordland.read(tmp_path)


def _positives_by_frame(cat: Path, name: str) -> dict[str, set[str]]:
    """Each query's positives as frame indices (pano_id), from the eval manifest."""
    pano = {r["image_id"]: r["pano_id"] for r in pq.read_table(cat / "images").to_pylist()}
    rows = pq.read_table(cat / "manifests" / f"eval_{name}.parquet").to_pylist()
    db = [pano[r["image_id"]] for r in rows if r["role"] == "database"]
    return {pano[r["image_id"]]: {db[i] for i in r["positives"]} for r in rows if r["role"] == "query"}


def test_positives_are_the_frames_within_10(nordland):
    cat, root, _ = nordland
    eval_set(cat, name="nordland", database="test_database", queries="test_queries", threshold=25)
    got = _positives_by_frame(cat, "nordland")
    expected = {str(i): {str(j) for j in range(N_CLEAN) if abs(i - j) <= 10} for i in range(N_CLEAN)}
    assert got == expected
    assert len(got["12"]) == 21 and len(got["0"]) == 11  # the full window, and one cut by the ride's start


def test_dvg_formatted_folder_gives_the_same_positives(nordland, tmp_path):
    """The downloader's '@' folders (zone-less names, east 0) imported with --images: the same positives."""
    cat, _, _ = nordland
    eval_set(cat, name="nordland", database="test_database", queries="test_queries", threshold=25)  # reused if made
    dvg = make_dvg_nordland(tmp_path / "dvg")
    dvg_cat = tmp_path / "dvgcat"
    for role in ("database", "queries"):
        folder = dvg / "images" / "test" / role
        build_catalog(BuildConfig(dvg_cat, images=folder, collection=role, workers=1))
    eval_set(dvg_cat, name="dvg", database="database", queries="queries", threshold=25)
    assert _positives_by_frame(dvg_cat, "dvg") == _positives_by_frame(cat, "nordland")
