"""OSV-5M in its own layout (FORMATS.md 2.6): {train,test}.csv + extracted images/{train,test}/ -> one catalog."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import utm
from PIL import Image

from vgdata.build import BuildConfig, build_dataset

HEADER = (
    "id,latitude,longitude,thumb_original_url,country,sequence,captured_at,lon_bin,lat_bin,cell,region,"
    "sub-region,city,land_cover,road_index,drive_side,climate,soil,dist_sea,quadtree_10_5000,quadtree_10_25000,"
    "quadtree_10_1000,quadtree_10_50000,quadtree_10_12500,quadtree_10_500,quadtree_10_2500,unique_region,"
    "unique_sub-region,unique_city,unique_country,creator_username,creator_id"
).split(",")

# id, lat, lon, country, sequence, captured_at, city, expected timestamp; 16-digit ids (pandas would make floats)
TRAIN = [
    ("3859149887465501", 60.4, 5.3, "NO", "seqA", "1600000000123", "Bergen", "20200913_122640"),  # 32V exception
    ("1111222233334444", 78.2, 15.6, "SJ", "seqB", "1489363200000.0", "Longyearbyen", "20170313_000000"),  # 33X
    ("2000000000000007", -43.804769384023, -176.61409250805, "NZ", "", "2019-05-04", "Waitangi", "20190504"),  # 1G
]
TEST = [("0000000000000042", 48.8566, 2.3522, "FR", "seqP", "2021-06-01T10:20:30Z", "Paris", "20210601_102030")]


def _row(pid, lat, lon, country, seq, cap, city, _ts, k) -> dict[str, str]:
    row = dict.fromkeys(HEADER, "")
    row.update(id=pid, latitude=str(lat), longitude=str(lon), country=country, sequence=seq, captured_at=cap)
    row.update(city=city, cell=f"({k}, 8)", region=f"Region {k}", **{"sub-region": f"Sub {k}"})
    row.update(thumb_original_url=f"https://example.org/{pid}.jpg", lon_bin=f"{k}.0", lat_bin=str(k + 1))
    row.update(land_cover=str(k), road_index="4.661764145", drive_side="1", climate="15", soil="nan")
    row.update(dist_sea="0.0068841379890803", unique_region=f"R{k}_{country}", unique_country=country)
    row.update({f"quadtree_10_{s}": str(k * 10 + j) for j, s in enumerate((5000, 25000, 1000, 50000, 12500))})
    row.update(quadtree_10_500="7.0", quadtree_10_2500="", creator_username=f"user{k}", creator_id="111336221091714")
    row.update({"unique_sub-region": f"S{k}", "unique_city": f"{city}_NaN_{country}"})
    return row


def make_osv5m(root: Path) -> Path:
    """A tiny OSV-5M folder, images extracted (train flat, test in a sub-folder), with planted bad items."""
    for split, rows, sub in (("train", TRAIN, ""), ("test", TEST, "00")):
        folder = root / "images" / split / sub
        folder.mkdir(parents=True)
        with (root / f"{split}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=HEADER)
            w.writeheader()
            for k, r in enumerate(rows):
                w.writerow(_row(*r, k))
                Image.new("RGB", (48, 32), (k * 40, 90, 10)).save(folder / f"{r[0]}.jpg")
    bad = [
        ("5000000000000001", 95.0, 10.0, "XX", "s", "1600000000000", "Nowhere", ""),  # bad lat (image present)
        ("5000000000000002", 10.0, 10.0, "XX", "s", "1600000000000", "Gone", ""),  # no image
    ]
    with (root / "train.csv").open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        for r in bad:
            w.writerow(_row(*r, 9))
        broken = _row("5000000000000003", 1.0, 1.0, "XX", "s", "1600000000000", "Broken", "", 9)
        w.writerow({**broken, "quadtree_10_500": "seven"})  # a non-number in an int column (image present)
    for pid in ("5000000000000001", "5000000000000003", "9999"):  # 9999: an image without a row
        Image.new("RGB", (48, 32)).save(root / "images" / "train" / f"{pid}.jpg")
    with zipfile.ZipFile(root / "images" / "test" / "01.zip", "w") as z:  # a zip left unextracted
        z.writestr("0000000000000099.jpg", b"not extracted")
    return root


@pytest.fixture(scope="module")
def osv_catalog(tmp_path_factory):
    root = make_osv5m(tmp_path_factory.mktemp("osv") / "osv5m")
    cat = tmp_path_factory.mktemp("osvcat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="osv5m", prefix="", dataset_root=root, workers=1))
    return cat, root, results


def test_rows_positions_zones_times_and_columns(osv_catalog):
    cat, root, results = osv_catalog
    assert [r.collection for r in results] == ["train_database", "test_queries"]
    images = {r["pano_id"]: r for r in pq.read_table(cat / "images").to_pylist()}
    attrs = {r["image_id"]: r for r in pq.read_table(cat / "attributes").to_pylist()}
    assert sorted(images) == sorted(r[0] for r in TRAIN + TEST)
    for split, rows, sub in (("train", TRAIN, ""), ("test", TEST, "00/")):
        for k, (pid, lat, lon, country, seq, cap, city, ts) in enumerate(rows):
            r = images[pid]
            e, n, zone, letter = utm.from_latlon(lat, lon)  # utm applies the Norway/Svalbard exceptions
            assert r["path"] == f"images/{split}/{sub}{pid}.jpg"
            assert r["collection"] == {"train": "train_database", "test": "test_queries"}[split]
            assert (r["lat"], r["lon"]) == (lat, lon)
            assert r["utm_east"] == pytest.approx(e, abs=1e-3) and r["utm_north"] == pytest.approx(n, abs=1e-3)
            assert (r["utm_zone"], r["utm_letter"]) == (zone, letter)
            assert r["utm_epsg"] == (32600 if lat >= 0 else 32700) + zone
            assert r["heading"] is None
            assert (r["timestamp"], r["year"], r["month"]) == (ts, int(ts[:4]), int(ts[4:6]))
            assert (r["width"], r["height_px"]) == (48, 32)
            a = attrs[r["image_id"]]
            assert (a["dataset"], a["split"], a["city"], a["sequence_id"]) == ("osv5m", split, city, seq or None)
            assert (a["osv5m_country"], a["osv5m_captured_at"], a["osv5m_cell"]) == (country, cap, f"({k}, 8)")
            assert (a["osv5m_sub_region"], a["osv5m_unique_sub_region"]) == (f"Sub {k}", f"S{k}")
            assert a["osv5m_thumb_original_url"] == f"https://example.org/{pid}.jpg"
            assert (a["osv5m_lon_bin"], a["osv5m_lat_bin"], a["osv5m_land_cover"]) == (float(k), k + 1.0, float(k))
            assert (a["osv5m_road_index"], a["osv5m_dist_sea"]) == (4.661764145, 0.0068841379890803)
            assert a["osv5m_soil"] is None  # 'nan' in the CSV
            assert [a[f"osv5m_quadtree_10_{s}"] for s in (5000, 25000, 1000, 50000, 12500, 500, 2500)] == [
                k * 10,
                k * 10 + 1,
                k * 10 + 2,
                k * 10 + 3,
                k * 10 + 4,
                7,
                None,
            ]
            assert (a["osv5m_creator_id"], a["osv5m_creator_username"]) == ("111336221091714", f"user{k}")
            assert a["osv5m_unique_city"] == f"{city}_NaN_{country}" and a["place_id"] is None


def test_zones_are_the_exception_zones(osv_catalog):
    """Bergen is 32V (not 31V) and Svalbard 33X (zone 33 widened); a southern point carries 327zz."""
    cat, _, _ = osv_catalog
    by = {r["pano_id"]: r for r in pq.read_table(cat / "images").to_pylist()}
    assert (by[TRAIN[0][0]]["utm_zone"], by[TRAIN[0][0]]["utm_letter"]) == (32, "V")
    assert (by[TRAIN[1][0]]["utm_zone"], by[TRAIN[1][0]]["utm_letter"]) == (33, "X")
    assert by[TRAIN[2][0]]["utm_epsg"] == 32701


def test_rejects_counted_by_reason(osv_catalog):
    cat, root, results = osv_catalog
    assert results[0].rejects_by_reason == {
        "lat/lon out of range": 1,
        "file not found": 1,
        "bad metadata row": 1,
        "no metadata row": 1,
    }
    assert results[1].rejects_by_reason == {"zipped images": 1}
    rejects = pq.read_table(cat / "rejects").to_pylist()
    by_reason = {r["reason"]: r for r in rejects}
    assert Path(by_reason["no metadata row"]["path"]).name == "9999.jpg"
    assert by_reason["file not found"]["row"] == len(TRAIN) + 2
    assert by_reason["bad metadata row"]["row"] == len(TRAIN) + 3
    assert "quadtree_10_500" in by_reason["bad metadata row"]["detail"]
    assert "unzip images/test/*.zip" in by_reason["zipped images"]["detail"]


def test_only_zips_gives_one_reject_per_zip(tmp_path):
    root = tmp_path / "osv"
    (root / "images" / "test").mkdir(parents=True)
    with (root / "test.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        w.writerow(_row(*TEST[0], 0))
    for name in ("00.zip", "01.zip"):
        with zipfile.ZipFile(root / "images" / "test" / name, "w") as z:
            z.writestr(f"{TEST[0][0]}.jpg", b"x")
    from vgdata.sources import ds_osv5m

    (coll,) = ds_osv5m.read(root)
    assert coll.name == "test_queries" and coll.rows == []
    assert [(Path(r[1]).name, r[3]) for r in coll.rejects] == [("00.zip", "zipped images"), ("01.zip", "zipped images")]
    assert ds_osv5m.read(tmp_path) == []  # not an OSV-5M folder
