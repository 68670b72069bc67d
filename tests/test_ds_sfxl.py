"""SF-XL as shipped (FORMATS.md 2.1, REFERENCE.md a.1/a.3): sf_xl/{processed,raw,small}/... -> one catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import utm
from PIL import Image

from vgdata.build import BuildConfig, build_dataset
from vgdata.evalset import eval_set
from vgdata.names import make_name
from vgdata.sources import ds_sfxl

LAT0, LON0 = 37.7749, -122.4194  # San Francisco: UTM 10S
DB = [  # (dlat, dlon, heading, pano_id); the last two are written as 9-part short names (no heading)
    (0.0, 0.0, 0, "pA"),
    (0.0001, 0.0, 30, "pB"),
    (0.0002, 0.00005, 210, "pC"),
    (0.0005, 0.0, 330, "pD"),
    (0.0010, 0.0001, None, "bZ1VXzxFCSKi9wcz8H5pZA0"),
    (0.0012, 0.0001, None, "qq1"),
]
V1 = [(0.00005, 0.0), (0.0004, 0.00002), (0.0011, 0.0001), (0.01, 0.01)]  # queries_v1: no heading
NIGHT = [(0.00015, 0.00001), (0.0030, 0.0)]
LISTED = [3, 0, 5, 1, 4, 2]  # the test database list's order (CosPlace keeps it)


def _name(dlat: float, dlon: float, *, heading: int | None = None, pano: str = "", ts: str = "201311") -> str:
    """A full SF-XL '@' name for a point offset from (LAT0, LON0), UTM from the `utm` package as SF-XL did."""
    lat, lon = LAT0 + dlat, LON0 + dlon
    e, n, zone, letter = utm.from_latlon(lat, lon)
    return make_name(
        utm_east=e, utm_north=n, utm_zone=zone, utm_letter=letter, lat=lat, lon=lon, pano_id=pano, heading=heading,
        timestamp=ts,
    )  # fmt: skip


def _short(full: str, ts: str = "201311") -> str:
    """The 9-part test-database variant: ``@east@north@zone@letter@lat@lon@pano_id@<timestamp>.jpg``."""
    return "@" + "@".join(full.split("@")[1:8]) + f"@{ts}.jpg"


def _img(path: Path, size: tuple[int, int] = (32, 32), colour: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (colour * 30 % 256, 80, 120)).save(path)


def db_names() -> list[str]:
    names = []
    for dlat, dlon, heading, pano in DB:
        full = _name(dlat, dlon, heading=heading, pano=pano)
        names.append(_short(full) if heading is None else full)
    return names


def make_sfxl(root: Path) -> Path:
    """A tiny ``sf_xl`` tree: a few images per folder, a list file for processed/test/database, planted bad rows."""
    p = root / "processed"
    for k, (dlat, head) in enumerate([(0.0, 0), (0.0, 30), (0.0060, 270)]):  # train crops in latitude sub-folders
        lat_dir = f"{int((LAT0 + dlat) * 100) / 100:.2f}"
        _img(p / "train" / lat_dir / _name(dlat, 0.0, heading=head, pano=f"t{k}", ts="201606"), colour=k)
    _img(p / "val" / "database" / _name(0.002, 0.0, heading=90, pano="vd"))
    _img(p / "val" / "queries" / _name(0.002, 0.00001, heading=120, pano="vq"))
    names = db_names()
    for k, name in enumerate(names):
        _img(p / "test" / "database" / name, colour=k)
    _img(p / "test" / "database" / _name(0.02, 0.0, heading=0, pano="unlisted"))  # not in the list: not imported
    gone = _name(0.003, 0.0, heading=60, pano="gone")  # planted: listed, no file
    listing = [names[i] for i in LISTED[:3]] + [gone] + [names[i] for i in LISTED[3:]]
    (p / "test" / "database_images_paths.txt").write_text("\n".join(listing) + "\n")
    for k, (dlat, dlon) in enumerate(V1):
        _img(p / "test" / "queries_v1" / _name(dlat, dlon, ts=""), size=(48, 32), colour=k)
    _img(p / "test" / "queries_v2" / _name(0.0001, 0.0001, ts="201502"), size=(40, 30))
    for k, (dlat, dlon) in enumerate(NIGHT):
        _img(p / "test" / "queries_night" / _name(dlat, dlon, ts="2022"), size=(48, 32), colour=k)
    _img(p / "test" / "queries_night" / "IMG_0001.jpg")  # planted: not an '@' name
    _img(p / "test" / "queries_occlusion" / _name(0.0, 0.00002, ts=""))
    raw = root / "raw" / "train"
    _img(raw / "database" / _name(0.004, 0.0, heading=0, pano="rp", ts="201404"))
    _img(raw / "database" / _name(0.004, 0.0, heading=30, pano="rp", ts="201404"))
    _img(raw / "panoramas" / _name(0.004, 0.0, heading=174, pano="rp", ts="201404"), size=(65, 10))
    small = root / "small"
    _img(small / "train" / "37.77" / _name(0.0, 0.0, heading=0, pano="s0"))
    for folder in ("val/database", "val/queries", "test/database", "test/queries_v1"):
        _img(small / folder / _name(0.0003, 0.0, heading=None if folder.endswith("v1") else 0, pano="s1"))
    return root


FAST = ["test_database", "test_queries_v1", "test_queries_night"]


@pytest.fixture(scope="module")
def sfxl(tmp_path_factory):
    root = make_sfxl(tmp_path_factory.mktemp("sfxl") / "sf_xl")
    cat = tmp_path_factory.mktemp("sfxlcat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="sfxl", prefix="", dataset_root=root, only=FAST, workers=1))
    return cat, root, {r.collection: r for r in results}


def test_collection_names_and_constants(sfxl):
    root = sfxl[1]
    found = {c.name: c for c in ds_sfxl.read(root)}
    assert list(found) == [
        "train_database", "val_database", "val_queries", "test_database", "test_queries_night",
        "test_queries_occlusion", "test_queries_v1", "test_queries_v2", "raw_train_database", "raw_train_panoramas",
        "small_train_database", "small_val_database", "small_val_queries", "small_test_database",
        "small_test_queries_v1",
    ]  # fmt: skip
    assert found["raw_train_panoramas"].at_folder == "raw/train/panoramas"
    assert found["train_database"].at_folder == "processed/train"
    c = {name: coll.constant for name, coll in found.items()}
    assert c["test_queries_night"] == {
        "split": "test", "sfxl_part": "processed", "sfxl_condition": "night", "night": True, "is_pano": None,
    }  # fmt: skip
    assert (c["test_queries_occlusion"]["sfxl_condition"], c["test_queries_occlusion"]["night"]) == ("occlusion", None)
    assert (c["test_queries_v1"]["sfxl_condition"], c["test_queries_v1"]["night"]) == (None, None)
    assert (c["raw_train_panoramas"]["is_pano"], c["raw_train_panoramas"]["sfxl_part"]) == (True, "raw")
    assert (c["small_val_queries"]["split"], c["small_val_queries"]["sfxl_part"]) == ("val", "small")
    assert ds_sfxl.read(root / "processed" / "val") == []  # not an sf_xl root


def _rows(cat: Path, collection: str) -> list[dict]:
    return [r for r in pq.read_table(cat / "images").to_pylist() if r["collection"] == collection]


def test_names_verbatim_heading_utm_time_and_list_order(sfxl):
    cat, root, results = sfxl
    assert list(results) == ["test_database", "test_queries_night", "test_queries_v1"]  # in read order
    attrs = {a["image_id"]: a for a in pq.read_table(cat / "attributes").to_pylist()}
    names = db_names()
    rows = _rows(cat, "test_database")
    assert [r["path"] for r in rows] == [names[i] for i in LISTED]  # the list's order, the missing one left out
    for r in rows + _rows(cat, "test_queries_v1"):
        f = Path(r["path"]).name.split("@")
        assert (r["utm_east"], r["utm_north"]) == (float(f[1]), float(f[2]))  # verbatim from the name
        assert (r["utm_zone"], r["utm_letter"], r["utm_epsg"]) == (10, "S", 32610)
        assert (r["lat"], r["lon"]) == (float(f[5]), float(f[6]))
        e, n, zone, letter = utm.from_latlon(r["lat"], r["lon"])
        assert (zone, letter) == (10, "S") and np.hypot(e - r["utm_east"], n - r["utm_north"]) < 0.02
        assert r["pano_id"] == (f[7] or None)  # queries_v1 names have none
        heading = f[9] if len(f) == 16 else ""
        assert r["heading"] == (float(heading) if heading else None)
    assert [r["heading"] for r in rows] == [330.0, 0.0, None, 30.0, None, 210.0]
    assert [(r["timestamp"], r["year"], r["month"]) for r in rows] == [("201311", 2013, 11)] * 6
    v1 = _rows(cat, "test_queries_v1")
    assert [r["heading"] for r in v1] == [None] * len(V1)  # queries_v1: empty heading -> null
    assert {(r["year"], r["month"]) for r in v1} == {(None, None)}  # no time in the name
    assert {(r["width"], r["height_px"]) for r in v1} == {(48, 32)}
    for coll, night, condition in (("test_queries_night", True, "night"), ("test_queries_v1", None, None)):
        got = {(a["dataset"], a["split"], a["night"], a["sfxl_condition"], a["sfxl_part"], a["is_pano"])
               for a in attrs.values() if a["collection"] == coll}  # fmt: skip
        assert got == {("sfxl", "test", night, condition, "processed", None)}


def test_rejects_counted_by_reason(sfxl):
    cat, root, results = sfxl
    assert results["test_database"].rejects_by_reason == {"file not found": 1}
    assert results["test_queries_night"].rejects_by_reason == {"bad name": 1}
    assert results["test_queries_v1"].rejects == 0
    paths = {Path(r["path"]).name for r in pq.read_table(cat / "rejects").to_pylist()}
    assert paths == {"IMG_0001.jpg", _name(0.003, 0.0, heading=60, pano="gone")}


@pytest.mark.parametrize("queries", ["test_queries_v1", "test_queries_night"])
def test_positives_at_25m_equal_brute_force_on_the_names(sfxl, queries):
    cat, _, _ = sfxl
    eval_set(cat, name=queries, database="test_database", queries=queries, threshold=25)
    rows = pq.read_table(cat / "manifests" / f"eval_{queries}.parquet").to_pylist()
    db = [r for r in rows if r["role"] == "database"]
    q = [r for r in rows if r["role"] == "query"]

    def en(r: dict) -> np.ndarray:
        f = Path(r["path"]).name.split("@")
        return np.array([float(f[1]), float(f[2])])

    dbe = np.stack([en(r) for r in db])
    for r in q:
        d = np.linalg.norm(dbe - en(r), axis=1)
        assert r["positives"] == [int(i) for i in np.flatnonzero(d <= 25.0)]
    assert sum(len(r["positives"]) for r in q) >= 3 and any(r["positives"] == [] for r in q)


@pytest.mark.slow
def test_every_collection_builds(tmp_path):
    root = make_sfxl(tmp_path / "sf_xl")
    results = build_dataset(BuildConfig(tmp_path / "cat", dataset="sfxl", prefix="", dataset_root=root, workers=1))
    counts = {r.collection: r.images for r in results}
    assert counts["raw_train_panoramas"] == 1 and counts["raw_train_database"] == 2
    assert counts["test_queries_v2"] == counts["test_queries_occlusion"] == counts["small_test_queries_v1"] == 1
    assert sum(r.rejects for r in results) == 2  # the two planted in the fast tests
    pano = _rows(tmp_path / "cat", "raw_train_panoramas")[0]
    assert (pano["heading"], pano["width"], pano["height_px"]) == (174.0, 65, 10)  # the strip's centre column
    train = _rows(tmp_path / "cat", "train_database")  # crops in latitude sub-folders, found recursively
    assert sorted(r["path"].split("/")[0] for r in train) == ["37.77", "37.77", "37.78"]
    assert [r["heading"] for r in sorted(train, key=lambda r: r["pano_id"])] == [0.0, 30.0, 270.0]
    attrs = {a["image_id"]: a for a in pq.read_table(tmp_path / "cat" / "attributes").to_pylist()}
    assert {(attrs[r["image_id"]]["split"], attrs[r["image_id"]]["sfxl_part"]) for r in train} == {
        ("train", "processed")
    }
    raw = {
        (a["split"], a["sfxl_part"], a["is_pano"]) for a in attrs.values() if a["collection"] == "raw_train_panoramas"
    }
    assert raw == {("train", "raw", True)}
