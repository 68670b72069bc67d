"""SVOX (FORMATS.md 2.7): svox/images/{train,val,test}/{gallery,queries,queries_<condition>} -> one catalog."""

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
from vgdata.sources import ds_svox

LAT0, LON0 = 51.7520, -1.2577  # Oxford: UTM 30U
GALLERY = [(0.0, 0.0, 0), (0.0001, 0.0, 90), (0.00022, 0.00003, 180), (0.0006, 0.0, 270), (0.0015, 0.0002, 45)]
NIGHT = [(0.00005, 0.00001), (0.0007, 0.0), (0.005, 0.0)]
CONDITIONS = ("overcast", "rain", "snow", "sun")


def _name(dlat: float, dlon: float, *, heading: int | None = None, pano: str = "", letter: str | None = None) -> str:
    """A DVG-style '@' name for a point offset from (LAT0, LON0), UTM from the `utm` package."""
    lat, lon = LAT0 + dlat, LON0 + dlon
    e, n, zone, band = utm.from_latlon(lat, lon)
    return make_name(
        utm_east=e, utm_north=n, utm_zone=zone, utm_letter=letter or band, lat=lat, lon=lon, pano_id=pano,
        heading=heading, timestamp="201410", style="dvg",
    )  # fmt: skip


def _img(path: Path, colour: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (colour * 40 % 256, 60, 160)).save(path)


def make_svox(root: Path) -> Path:
    """A tiny ``svox`` folder: a gallery and condition-named query sets per split, one planted bad row."""
    test = root / "images" / "test"
    for k, (dlat, dlon, heading) in enumerate(GALLERY):
        _img(test / "gallery" / _name(dlat, dlon, heading=heading, pano=f"g{k}"), colour=k)
    _img(test / "queries" / _name(0.00012, 0.0))
    for k, (dlat, dlon) in enumerate(NIGHT):
        _img(test / "queries_night" / _name(dlat, dlon), colour=k)
    for k, cond in enumerate(CONDITIONS):
        _img(test / f"queries_{cond}" / _name(0.0002 * k, 0.0), colour=k)
    _img(test / "queries_night" / _name(0.0003, 0.0, letter="S"))  # planted: Oxford is in band U, not S
    for split in ("train", "val"):
        _img(root / "images" / split / "gallery" / _name(0.003, 0.0, heading=0, pano=f"{split}g"))
        _img(root / "images" / split / "queries" / _name(0.003, 0.00001))
    return root


FAST = ["test_database", "test_queries_night"]


@pytest.fixture(scope="module")
def svox(tmp_path_factory):
    root = make_svox(tmp_path_factory.mktemp("svox") / "svox")
    cat = tmp_path_factory.mktemp("svoxcat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="svox", prefix="", dataset_root=root, only=FAST, workers=1))
    return cat, root, {r.collection: r for r in results}


def test_collection_names_and_conditions(svox, tmp_path):
    root = svox[1]
    found = {c.name: c for c in ds_svox.read(root)}
    assert list(found) == [
        "train_database", "train_queries", "val_database", "val_queries", "test_database", "test_queries",
        "test_queries_night", "test_queries_overcast", "test_queries_rain", "test_queries_snow", "test_queries_sun",
    ]  # fmt: skip
    assert found["test_database"].at_folder == "images/test/gallery"  # the gallery is the database
    for name, coll in found.items():
        condition = name.removeprefix(f"{coll.constant['split']}_queries_") if "queries_" in name else None
        assert coll.constant == {
            "split": name.split("_")[0],
            "svox_condition": condition,
            "night": True if condition == "night" else None,
        }
    assert [c.name for c in ds_svox.read(root / "images")] == list(found)  # DIR may be svox/images too
    assert ds_svox.read(tmp_path) == []


def test_rows_utm_30u_headings_attributes_rejects(svox):
    cat, root, results = svox
    assert list(results) == FAST
    assert results["test_queries_night"].rejects_by_reason == {"band letter inconsistent": 1}
    assert results["test_database"].rejects == 0
    bad = [r["path"] for r in pq.read_table(cat / "rejects").to_pylist()]
    assert [Path(p).name for p in bad] == [_name(0.0003, 0.0, letter="S")]
    images = pq.read_table(cat / "images").to_pylist()
    attrs = {a["image_id"]: a for a in pq.read_table(cat / "attributes").to_pylist()}
    assert sorted(r["collection"] for r in images) == ["test_database"] * 5 + ["test_queries_night"] * 3
    for r in images:
        f = Path(r["path"]).name.split("@")
        assert (r["utm_east"], r["utm_north"]) == (float(f[1]), float(f[2]))
        assert (r["utm_zone"], r["utm_letter"], r["utm_epsg"]) == (30, "U", 32630)
        e, n, zone, letter = utm.from_latlon(r["lat"], r["lon"])
        assert (zone, letter) == (30, "U") and np.hypot(e - r["utm_east"], n - r["utm_north"]) < 0.02
        assert r["heading"] == (float(f[9]) if f[9] else None)
        assert (r["timestamp"], r["year"], r["month"]) == ("201410", 2014, 10)
        a = attrs[r["image_id"]]
        cond = {"test_database": None, "test_queries_night": "night"}[r["collection"]]
        assert (a["dataset"], a["split"], a["svox_condition"]) == ("svox", "test", cond)
        assert a["night"] == (True if cond == "night" else None)
    gallery = sorted((r for r in images if r["collection"] == "test_database"), key=lambda r: r["pano_id"])
    assert [r["heading"] for r in gallery] == [float(h) for _, _, h in GALLERY]


def test_positives_at_25m_equal_brute_force_on_the_names(svox):
    cat, _, _ = svox
    eval_set(cat, name="svox_night", database="test_database", queries="test_queries_night", threshold=25)
    rows = pq.read_table(cat / "manifests" / "eval_svox_night.parquet").to_pylist()

    def en(r: dict) -> np.ndarray:
        f = Path(r["path"]).name.split("@")
        return np.array([float(f[1]), float(f[2])])

    db = np.stack([en(r) for r in rows if r["role"] == "database"])
    queries = [r for r in rows if r["role"] == "query"]
    assert len(queries) == len(NIGHT)
    for r in queries:
        assert r["positives"] == [int(i) for i in np.flatnonzero(np.linalg.norm(db - en(r), axis=1) <= 25.0)]
    assert sorted(len(r["positives"]) for r in queries) == [0, 1, 3]  # by hand: 5.6, 5.6, 19 m; 11 m; none
