"""Import of '@' folders, export to the '@' layout, info: values and round trips."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image

from vgdata.build import BuildConfig, build_catalog
from vgdata.catalog import Catalog
from vgdata.export import export_catalog
from vgdata.info import catalog_info

SFXL = [
    "37.70/@0544388.51@4172758.25@10@S@037.70098@-122.49646@kPnABhWJ1kA61eMNPLs1vQ@@210@@@@201606@@.jpg",
    "37.70/@0544388.51@4172758.25@10@S@037.70098@-122.49646@kPnABhWJ1kA61eMNPLs1vQ@@0@@@@201606@@.jpg",
    "37.77/@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg",
    "37.77/@0549678.37@4180874.60@10@S@037.77386@-122.43590@abc@01@090@000@@@20130501_120000@note@.jpg",
]


def make_folder(root, names, size=(64, 48)):
    for i, n in enumerate(names):
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i * 40 % 255, 10, 10)).save(p)
    return root


def test_import_sfxl_folder_values(tmp_path):
    folder = make_folder(tmp_path / "a@b" / "database", SFXL)  # an '@' in a parent folder
    (folder / "notes.jpg").write_bytes(b"not an image")  # not an '@' name
    (folder / "37.77" / "@1@2@10@S@037.7@-122.4@x@@@@@@@@.jpg").write_bytes(b"")  # '@' name, empty file
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, images=folder, workers=1))
    assert (r.images, r.panoramas) == (4, 0)
    assert r.rejects_by_reason == {"bad name": 1, "unreadable image": 1}
    rows = {x["path"]: x for x in pq.read_table(sorted((cat / "images").glob("*.parquet"))).to_pylist()}
    first = rows[SFXL[0]]
    assert (first["utm_east"], first["utm_north"], first["utm_zone"], first["utm_letter"]) == (
        544388.51,
        4172758.25,
        10,
        "S",
    )
    assert (first["heading"], first["year"], first["month"], first["pano_id"]) == (
        210.0,
        2016,
        6,
        "kPnABhWJ1kA61eMNPLs1vQ",
    )
    assert (first["width"], first["height_px"]) == (64, 48)
    assert rows[SFXL[2]]["heading"] is None and rows[SFXL[2]]["year"] == 2013
    last = rows[SFXL[3]]
    assert (last["tile"], last["heading"], last["pitch"], last["timestamp"]) == (1, 90.0, 0.0, "20130501_120000")
    assert Catalog(cat).image_root("database") == folder.resolve()


def test_images_paths_txt_is_honoured(tmp_path):
    folder = make_folder(tmp_path / "train", SFXL)
    (tmp_path / "train_images_paths.txt").write_text(f"{SFXL[3]}\n{SFXL[0]}\n../escape.jpg\n")
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, images=folder, workers=1))
    assert r.images == 2 and r.rejects_by_reason == {"path outside folder": 1}
    paths = pq.read_table(sorted((cat / "images").glob("*.parquet"))).column("path").to_pylist()
    assert paths == [SFXL[3], SFXL[0]]  # the list's order, not sorted


def test_export_names_byte_identical_and_reimport(tmp_path):
    folder = make_folder(tmp_path / "database", SFXL)
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, images=folder, workers=1))
    build_catalog(BuildConfig(cat, images=make_folder(tmp_path / "q", SFXL[2:]), collection="queries_v1", workers=1))
    out = tmp_path / "export"
    res = export_catalog(cat, out)
    assert res.files == {"database": 4, "queries_v1": 2} and res.linked == 6
    exported = sorted(p.relative_to(out / "database").as_posix() for p in (out / "database").rglob("*.jpg"))
    assert exported == sorted(SFXL)
    src = folder / SFXL[0]
    assert os.stat(out / "database" / SFXL[0]).st_ino == os.stat(src).st_ino  # a hard link, not a copy
    assert (out / "database_images_paths.txt").read_text().splitlines() == sorted(SFXL)
    # Re-import the export: same names, same rows (but for the image root).
    again = build_catalog(BuildConfig(tmp_path / "cat2", images=out / "database", workers=1))
    assert again.images == 4
    a = pq.read_table(sorted((cat / "images").glob("database-*.parquet"))).sort_by("path").to_pylist()
    b = pq.read_table(sorted((tmp_path / "cat2" / "images").glob("database-*.parquet"))).sort_by("path").to_pylist()
    assert a == b


def test_export_of_cut_crops_reimports_with_same_metadata(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    export_catalog(cat, tmp_path / "out", copy=True)
    build_catalog(BuildConfig(tmp_path / "cat2", images=tmp_path / "out" / "database", workers=1))
    a = pq.read_table(sorted((cat / "images").glob("database-*.parquet"))).sort_by("path")
    b = pq.read_table(sorted((tmp_path / "cat2" / "images").glob("database-*.parquet"))).sort_by("path")
    assert a.column("path").to_pylist() == b.column("path").to_pylist()
    assert a.column("image_id").to_pylist() == b.column("image_id").to_pylist()
    # Headings: exact azimuth in the cut catalog, the name's integer after import; same 30-degree bin.
    ha, hb = a.column("heading").to_pylist(), b.column("heading").to_pylist()
    assert all(int(x // 30) == int(y // 30) and y == int(x) for x, y in zip(ha, hb, strict=True))


def test_info_values(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    info = catalog_info(cat)
    assert info["collections"] == [{"collection": "database", "images": 72, "panoramas": 6, "with_heading": 72}]
    assert {(y["year"], y["images"]) for y in info["years"]} == {(2013, 36), (2017, 36)}
    assert info["zones"] == [{"utm_zone": 10, "utm_letter": "S", "images": 72}]
    assert info["bbox"][0]["lat_min"] == pytest.approx(37.7749)
    assert info["rejects"] == []
    assert info["fingerprint"] == json.loads((cat / "build.json").read_text())["fingerprint"]
