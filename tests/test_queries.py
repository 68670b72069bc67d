"""Query sets: EXIF-GPS photos (SF-XL test v1 style) and 6DoF pose CSVs (test v2 style).

Real JPEG/PNG files with EXIF written by Pillow (PIL.Image.Exif), real CSVs, the real
build pipeline (shards, Parquet parts, DuckDB views).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from raw_panoramas import make_raw_panoramas

from vgdata import geo
from vgdata.build import BuildConfig, build_catalog
from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.names import parse_name
from vgdata.sources import photos, poses

SF_LAT = 37 + 46 / 60 + 30.1 / 3600  # 37°46'30.1"N = 37.7750277...
SF_LON = -(122 + 25 / 60 + 10.2 / 3600)  # 122°25'10.2"W = -122.4195


def rational(x: float, den: int = 10) -> IFDRational:
    return IFDRational(round(x * den), den)


def dms(d: int, m: int, s: float) -> tuple:
    return (IFDRational(d, 1), IFDRational(m, 1), rational(s))


def sf_gps(extra: dict | None = None) -> dict:
    """A GPS IFD for 37°46'30.1"N 122°25'10.2"W plus ``extra`` tags (tag number -> value)."""
    return {1: "N", 2: dms(37, 46, 30.1), 3: "W", 4: dms(122, 25, 10.2), **(extra or {})}


def make_exif(gps: dict | None = None, *, orientation=None, date=None, date_original=None) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if date is not None:
        exif[0x0132] = date
    if date_original is not None:
        exif.get_ifd(0x8769)[0x9003] = date_original
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    return exif


def make_photo(path: Path, size=(1200, 800), gps: dict | None = None, *, noise=False, **exif_kw) -> Path:
    """A real image file with EXIF; ``noise`` makes it large enough to truncate meaningfully."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if noise:
        arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        im = Image.fromarray(arr)
    else:
        im = Image.new("RGB", size, (90, 140, 200))
    im.save(path, exif=make_exif(gps, **exif_kw).tobytes())
    return path


# ---------------------------------------------------------------- photos: EXIF parsing


def test_exif_written_by_pillow_round_trips(tmp_path):
    p = make_photo(
        tmp_path / "a.jpg",
        gps=sf_gps({5: b"\x01", 6: rational(12.5), 16: "T", 17: rational(123.4)}),
        orientation=6,
        date="2014:01:02 03:04:05",
        date_original="2013:11:05 14:03:07",
    )
    with Image.open(p) as im:
        exif = im.getexif()
        gps = exif.get_ifd(0x8825)
        assert exif[0x0112] == 6 and exif[0x0132] == "2014:01:02 03:04:05"
        assert exif.get_ifd(0x8769)[0x9003] == "2013:11:05 14:03:07"
        assert (gps[1], gps[3]) == ("N", "W")
        assert [float(x) for x in gps[2]] == [37.0, 46.0, 30.1]
        assert [float(x) for x in gps[4]] == [122.0, 25.0, 10.2]
        assert (gps[5], float(gps[6]), gps[16], float(gps[17])) == (b"\x01", 12.5, "T", 123.4)


def test_read_photo_values(tmp_path):
    gps = sf_gps({5: b"\x01", 6: rational(12.5), 16: "T", 17: rational(123.4)})
    p = make_photo(tmp_path / "a.jpg", gps=gps, date="2014:01:02 03:04:05", date_original="2013:11:05 14:03:07")
    fields, reason, _ = photos.read_photo(p)
    assert reason == ""
    assert fields["lat"] == pytest.approx(37.775028, abs=1e-6)
    assert fields["lon"] == pytest.approx(-122.419500, abs=1e-6)
    assert fields["lat"] == pytest.approx(SF_LAT, abs=1e-12) and fields["lon"] == pytest.approx(SF_LON, abs=1e-12)
    assert fields["altitude"] == -12.5  # GPSAltitudeRef 1: below sea level
    assert fields["heading"] == pytest.approx(123.4, abs=1e-9)
    # DateTimeOriginal wins over DateTime
    assert (fields["timestamp"], fields["year"], fields["month"]) == ("20131105_140307", 2013, 11)


def test_read_photo_south_east_magnetic_and_datetime_fallback(tmp_path):
    gps = {1: "S", 2: dms(33, 51, 54.5), 3: "E", 4: dms(151, 12, 35.6), 6: rational(40.0), 16: "M", 17: rational(365)}
    p = make_photo(tmp_path / "syd.jpg", gps=gps, date="2019:07:31 23:59:58")
    fields, reason, _ = photos.read_photo(p)
    assert reason == ""
    assert fields["lat"] == pytest.approx(-(33 + 51 / 60 + 54.5 / 3600), abs=1e-12)
    assert fields["lon"] == pytest.approx(151 + 12 / 60 + 35.6 / 3600, abs=1e-12)
    assert fields["altitude"] == 40.0 and fields["heading"] == pytest.approx(5.0)
    assert (fields["timestamp"], fields["year"], fields["month"]) == ("20190731_235958", 2019, 7)


def test_read_photo_without_direction_or_date(tmp_path):
    fields, reason, _ = photos.read_photo(make_photo(tmp_path / "a.jpg", gps=sf_gps(), date="0000:00:00 00:00:00"))
    assert reason == ""
    assert (fields["heading"], fields["altitude"], fields["timestamp"], fields["year"]) == (None, None, None, None)


@pytest.mark.parametrize(
    ("gps", "reason", "detail"),
    [
        (None, "no GPS", "no GPS IFD"),
        ({0: b"\x02\x02\x00\x00", 1: "N", 2: dms(37, 0, 0)}, "no GPS", "GPSLongitude"),
        (sf_gps({2: (IFDRational(37, 1), IFDRational(46, 0), IFDRational(1, 1))}), "bad GPS", "zero denominator"),
        ({2: dms(37, 46, 30.1), 3: "W", 4: dms(122, 25, 10.2)}, "bad GPS", "GPSLatitudeRef"),
        (sf_gps({1: "X"}), "bad GPS", "GPSLatitudeRef"),
        (sf_gps({17: IFDRational(1, 0)}), "bad GPS", "GPSImgDirection"),
        (sf_gps({6: IFDRational(5, 0)}), "bad GPS", "GPSAltitude"),
    ],
)
def test_read_photo_rejects(tmp_path, gps, reason, detail):
    fields, got, text = photos.read_photo(make_photo(tmp_path / "a.jpg", gps=gps))
    assert fields is None and got == reason and detail in text


def test_read_photo_unreadable(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    assert photos.read_photo(tmp_path / "x.jpg")[1] == "unreadable image"


def test_exif_timestamp_forms():
    assert photos.exif_timestamp("2013:11:05 14:03:07\x00") == ("20131105_140307", 2013, 11)
    assert photos.exif_timestamp("2013:11:05") == ("20131105", 2013, 11)
    assert photos.exif_timestamp("2013:13:05 14:03:07") is None
    assert photos.exif_timestamp("    :  :     :  :  ") is None
    assert photos.exif_timestamp(None) is None


def test_output_size():
    assert photos.output_size(1200, 800, 480) == (720, 480)
    assert photos.output_size(800, 1200, 480) == (480, 720)
    assert photos.output_size(300, 200, 480) == (300, 200)  # never upscaled
    assert photos.output_size(1201, 800, 480) == (721, 480)  # 720.6 rounds up
    assert photos.output_size(4000, 3000, 0) == (4000, 3000)  # 0 keeps the size
    assert photos.output_size(960, 960, 480) == (480, 480)


def test_write_query_image_draft_and_orientation(tmp_path):
    src = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(src)
    dst = tmp_path / "out.jpg"
    assert photos.write_query_image(src, dst, 480, 95) == (640, 480)
    with Image.open(dst) as im:
        assert im.size == (640, 480) and im.mode == "RGB" and im.format == "JPEG"
    assert photos.write_query_image(src, dst, 0, 95) == (4000, 3000)
    assert not list(tmp_path.glob(".tmp-*"))


# ---------------------------------------------------------------- photos through the pipeline


@pytest.fixture
def db_catalog(tmp_path) -> Path:
    """A catalog with a tiny ``database`` collection (3 generated panoramas x 12 crops)."""
    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=3, width=832, seed=2)
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    assert r.images == 36
    return cat


def rows_of(cat: Path, collection: str) -> dict[str, dict]:
    parts = sorted((cat / "images").glob(f"{collection}-*.parquet"))
    return {r["pano_id"]: r for r in pq.read_table(parts).to_pylist()}


def rejects_of(cat: Path, collection: str) -> list[dict]:
    parts = sorted((cat / "rejects").glob(f"{collection}-*.parquet"))
    return pq.read_table(parts).to_pylist()


def make_photo_folder(folder: Path) -> None:
    band = Image.new("RGB", (600, 400), (0, 0, 255))
    band.paste((255, 0, 0), (0, 0, 600, 200))  # top half red (as stored), bottom blue
    make_photo(folder / "a.jpg", (1200, 800), sf_gps({17: rational(123.4)}), date_original="2013:11:05 14:03:07")
    make_photo(folder / "a.png", (1200, 800), sf_gps({17: rational(123.4)}), date_original="2013:11:05 14:03:07")
    make_photo(folder / "sub" / "b@x.JPG", (300, 200), sf_gps({6: rational(7.5)}), date="2016:06:01 10:00:00")
    rot = folder / "rot.jpeg"
    band.save(rot, exif=make_exif(sf_gps(), orientation=6).tobytes())
    syd = {1: "S", 2: dms(33, 51, 54.5), 3: "E", 4: dms(151, 12, 35.6)}
    make_photo(folder / "sub" / "syd.png", (800, 1000), syd)
    make_photo(folder / "nogps.jpg")
    make_photo(folder / "north.jpg", gps={1: "N", 2: dms(85, 0, 0), 3: "E", 4: dms(10, 0, 0)})
    make_photo(folder / "zero.jpg", gps=sf_gps({4: (IFDRational(122, 0), IFDRational(0, 1), IFDRational(0, 1))}))
    full = make_photo(folder / "trunc.jpg", (1200, 800), sf_gps(), noise=True)
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not a photo")


def test_photos_build_values(db_catalog, tmp_path):
    folder = tmp_path / "flickr"
    make_photo_folder(folder)
    cat = db_catalog
    r = build_catalog(BuildConfig(cat, photos=folder, collection="queries_v1", workers=1))
    assert (r.images, r.panoramas) == (4, 0)
    assert r.rejects_by_reason == {
        "bad GPS": 1,
        "duplicate name": 1,
        "lat/lon out of range": 1,
        "no GPS": 1,
        "unreadable image": 1,
    }
    rej = {Path(x["path"]).name: x for x in rejects_of(cat, "queries_v1")}
    assert rej["a.png"]["reason"] == "duplicate name" and "a.jpg" in rej["a.png"]["detail"]
    assert rej["trunc.jpg"]["reason"] == "unreadable image" and rej["trunc.jpg"]["source"] == "photo"
    assert (rej["nogps.jpg"]["reason"], rej["zero.jpg"]["reason"]) == ("no GPS", "bad GPS")
    assert rej["north.jpg"]["reason"] == "lat/lon out of range" and rej["north.jpg"]["row"] is None

    rows = rows_of(cat, "queries_v1")
    assert sorted(rows) == ["a", "b_x", "rot", "syd"]
    root = Catalog(cat).image_root("queries_v1")
    assert root == (cat / "crops" / "queries_v1").resolve()
    a = rows["a"]
    assert a["lat"] == pytest.approx(37.775028, abs=1e-6) and a["lon"] == pytest.approx(-122.4195, abs=1e-6)
    utm = geo.latlon_to_utm(np.array([a["lat"]]), np.array([a["lon"]]))
    assert (a["utm_east"], a["utm_north"]) == (float(utm.east[0]), float(utm.north[0]))
    assert (a["utm_zone"], a["utm_letter"]) == (10, "S")
    assert a["heading"] == pytest.approx(123.4) and a["altitude"] is None
    assert (a["timestamp"], a["year"], a["month"], a["tile"], a["pitch"]) == ("20131105_140307", 2013, 11, None, None)
    assert (a["width"], a["height_px"]) == (720, 480)
    n = parse_name(a["path"])
    assert "/" not in a["path"] and (n.pano_id, n.heading, n.timestamp, n.extension) == (
        "a",
        "123",
        "20131105_140307",
        ".jpg",
    )
    assert (n.lat, n.lon, n.utm_east) == ("037.77503", "-122.41950", f"{a['utm_east']:010.2f}")

    b = rows["b_x"]  # '@' in the stem sanitised; no GPSImgDirection -> null heading, empty field
    assert b["heading"] is None and parse_name(b["path"]).heading == "" and b["altitude"] == 7.5
    assert (b["width"], b["height_px"], b["year"], b["month"]) == (300, 200, 2016, 6)
    syd = rows["syd"]
    assert syd["lat"] < 0 and syd["lon"] > 0 and (syd["utm_zone"], syd["utm_letter"]) == (56, "H")
    assert (syd["width"], syd["height_px"]) == (480, 600) and syd["timestamp"] is None

    rot = rows["rot"]  # orientation 6: stored 600x400 landscape -> upright 400x600 portrait
    assert (rot["width"], rot["height_px"]) == (400, 600)
    with Image.open(root / rot["path"]) as im:
        assert im.size == (400, 600) and im.format == "JPEG" and im.mode == "RGB"
        assert not im.getexif()  # written without EXIF: already upright
        right, left = im.getpixel((350, 300)), im.getpixel((50, 300))
    assert right[0] > 200 and right[2] < 60  # the stored top (red) is now on the right
    assert left[2] > 200 and left[0] < 60

    for row in rows.values():
        f = root / row["path"]
        assert f.parent == root and f.is_file()
        with Image.open(f) as im:
            assert im.size == (row["width"], row["height_px"])
    assert not list(root.glob(".tmp-*"))

    con = Catalog(cat).connect()
    assert con.sql("select count(*) from images where collection='queries_v1'").fetchall()[0][0] == 4
    assert con.sql("select count(*) from images where collection='database'").fetchall()[0][0] == 36
    assert con.sql("select count(*) from rejects where collection='queries_v1'").fetchall()[0][0] == 5
    con.close()

    again = build_catalog(BuildConfig(cat, photos=folder, collection="queries_v1", workers=1))
    assert again.up_to_date and again.images == 4 and again.fingerprint == r.fingerprint


def test_photos_short_side_zero_and_shards(tmp_path):
    folder = tmp_path / "p"
    for i in range(5):
        make_photo(folder / f"p{i}.jpg", (1000, 700), sf_gps({17: rational(10.0 * i)}))
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, photos=folder, collection="q", short_side=0, shard_size=1, workers=1))
    assert (r.images, r.rejects, r.shards) == (5, 0, 2)  # 4 photos per shard
    rows = rows_of(cat, "q")
    assert {(x["width"], x["height_px"]) for x in rows.values()} == {(1000, 700)}
    assert [rows[f"p{i}"]["heading"] for i in range(5)] == [0.0, 10.0, 20.0, 30.0, 40.0]


# ---------------------------------------------------------------- poses: unit


S = math.sqrt(0.5)


@pytest.mark.parametrize(
    ("q", "heading"),
    [
        ((0.0, 0.0, 0.0, 1.0), 180.0),  # identity: atan2(0, -1) = pi
        ((0.0, S, 0.0, S), 90.0),  # +90 deg about y: atan2(2yw, -1 + 2y^2) = atan2(1, 0)
        ((0.0, -S, 0.0, S), 270.0),  # -90 deg about y: atan2(-1, 0) = -90
        ((0.0, 1.0, 0.0, 0.0), 0.0),  # 180 deg about y: atan2(0, 1) = 0
        ((0.0, 0.0, S, S), 180.0),  # 90 deg about z: atan2(0, -1)
        ((0.0, math.sin(math.radians(15)), 0.0, math.cos(math.radians(15))), 150.0),  # 30 deg about y: 180 - 30
        ((0.0, 0.0, 0.0, 1.005), 180.0),  # within 1% of unit norm: normalised
    ],
)
def test_quaternion_heading_hand_values(q, heading):
    assert poses.quaternion_heading(*q) == pytest.approx(heading, abs=1e-9)


def test_quaternion_formula_matches_the_downloader_expression():
    rng = np.random.default_rng(3)
    for q in rng.normal(size=(50, 4)):
        x, y, z, w = q / np.linalg.norm(q)
        yaw = math.atan2(2 * (z * x + y * w), -1 + 2 * (x * x + y * y))
        expected = (((yaw / math.pi) + 1) * 180 + 180) % 360  # REFERENCE e.2, line 77
        got = poses.quaternion_heading(x, y, z, w)
        assert min(abs(got - expected), 360 - abs(got - expected)) < 1e-9


@pytest.mark.parametrize("q", [(0, 0, 0, 0), (0, 0, 0, 2), (0.5, 0, 0, 0.5), (S, 0, 0, S)])
def test_bad_quaternions(q):
    with pytest.raises(poses.BadQuaternion):
        poses.quaternion_heading(*q)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (["lat", "lon", "heading"], "path"),
        (["path", "lat", "heading"], "lon (or utm_east, utm_north, utm_zone, utm_letter"),
        (["path", "utm_east", "utm_north", "utm_zone", "heading"], "lat, lon (or utm_letter"),
        (["path", "lat", "lon", "pitch"], "heading (or yaw, or qx, qy, qz, qw)"),
        (["path", "lat", "lon", "qx", "qy", "qz"], "qw (or heading)"),
    ],
)
def test_missing_columns_usage_error(tmp_path, header, named):
    csv_path = write_csv(tmp_path / "poses.csv", header, [])
    with pytest.raises(UsageError) as e:
        poses.read_poses(csv_path, tmp_path, "q")
    msg = str(e.value)
    assert "\n" not in msg and named in msg and str(csv_path) in msg


def test_usable_headers_are_accepted(tmp_path):
    for header in (
        ["PATH", " Lat ", "lon", "yaw"],
        ["path", "utm_east", "utm_north", "utm_zone", "utm_letter", "qx", "qy", "qz", "qw"],
    ):
        rows, rejects = poses.read_poses(write_csv(tmp_path / "p.csv", header, []), tmp_path, "q")
        assert rows == [] and rejects.num_rows == 0


# ---------------------------------------------------------------- poses through the pipeline

HEADER = ["path", "lat", "lon", "utm_east", "utm_north", "utm_zone", "utm_letter", "heading", "yaw"]
HEADER += ["qx", "qy", "qz", "qw", "pitch", "roll", "altitude", "timestamp", "pano_id"]


def pose_row(path, **kw) -> list:
    return [path] + [kw.get(c, "") for c in HEADER[1:]]


def test_poses_build_values(db_catalog, tmp_path):
    raw = tmp_path / "sf_landmark"
    for name, size in [("q1.jpg", (1000, 750)), ("q2.jpg", (640, 480)), ("sub/q3.jpg", (600, 800))]:
        make_photo(raw / "images" / name, size)
    (raw / "images" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "outside.jpg").write_bytes(b"")
    lat2, lon2 = 37.7902, -122.4010
    u2 = geo.latlon_to_utm(np.array([lat2]), np.array([lon2]))
    e2, n2 = float(u2.east[0]), float(u2.north[0])
    rows = [
        # 1: lat/lon + heading (UTM given too: lat/lon wins, UTM recomputed)
        pose_row(
            "images/q1.jpg",
            lat=37.7749,
            lon=-122.4194,
            utm_east=1,
            utm_north=2,
            utm_zone=10,
            utm_letter="S",
            heading=-30.5,
            pitch=5,
            roll=-1,
            altitude=12.5,
            timestamp="2013-11-05",
        ),  # fmt: skip
        # 2: UTM only + yaw
        pose_row("images/q2.jpg", utm_east=f"{e2:.4f}", utm_north=f"{n2:.4f}", utm_zone=10, utm_letter="s", yaw=45),
        # 3: lat/lon + quaternion (90 deg about y -> heading 90), explicit pano_id
        pose_row("images/sub/q3.jpg", lat=37.76, lon=-122.43, qx=0, qy=S, qz=0, qw=S, pano_id="Q@3"),
        pose_row("", lat=37.7, lon=-122.4, heading=0),  # 4: missing value (path)
        pose_row("images/q1.jpg", lat=37.7, heading=0),  # 5: missing value (position)
        pose_row("images/q1.jpg", lat=37.7, lon=-122.4),  # 6: missing value (orientation)
        pose_row("images/q1.jpg", lat="abc", lon=-122.4, heading=0),  # 7: non-numeric value
        pose_row("images/q1.jpg", lat=37.7, lon=-122.4, heading="inf"),  # 8: non-numeric (not finite)
        pose_row("images/q1.jpg", lat=91, lon=-122.4, heading=0),  # 9: lat/lon out of range
        pose_row("images/missing.jpg", lat=37.7, lon=-122.4, heading=0),  # 10: file not found
        pose_row("images/broken.jpg", lat=37.7, lon=-122.4, heading=0),  # 11: unreadable image
        pose_row("../outside.jpg", lat=37.7, lon=-122.4, heading=0),  # 12: path outside folder
        pose_row("images/q1.jpg", lat=37.7, lon=-122.4, qx=0, qy=0, qz=0, qw=0),  # 13: bad quaternion
        pose_row("images/q1.jpg", utm_east=e2, utm_north=n2, utm_zone=61, utm_letter="S", heading=0),  # 14: bad zone
        pose_row("images/q1.jpg", lat=37.7, lon=-122.4, heading=0, timestamp="2013-13"),  # 15: bad timestamp
        pose_row("images/q2.jpg", utm_east=e2, utm_north=n2, utm_zone=10, utm_letter="S", heading=45.2),  # 16: dup
    ]
    csv_path = write_csv(raw / "poses.csv", HEADER, rows)
    cat = db_catalog
    r = build_catalog(BuildConfig(cat, poses=csv_path, collection="queries_v2", workers=1))
    assert (r.images, r.panoramas) == (3, 0)
    assert r.rejects_by_reason == {
        "bad UTM zone": 1,
        "bad quaternion": 1,
        "bad timestamp": 1,
        "duplicate name": 1,
        "file not found": 1,
        "lat/lon out of range": 1,
        "missing value": 3,
        "non-numeric value": 2,
        "path outside folder": 1,
        "unreadable image": 1,
    }
    by_row = {x["row"]: x for x in rejects_of(cat, "queries_v2")}
    assert {row: x["reason"] for row, x in by_row.items() if x["reason"] == "missing value"} == {
        4: "missing value",
        5: "missing value",
        6: "missing value",
    }
    assert "empty path" in by_row[4]["detail"] and "position" in by_row[5]["detail"]
    assert "orientation" in by_row[6]["detail"] and "inf" in by_row[8]["detail"]
    assert by_row[10]["path"].endswith("missing.jpg") and by_row[11]["path"].endswith("broken.jpg")
    assert by_row[11]["reason"] == "unreadable image" and by_row[11]["source"] == "pose"
    assert by_row[16]["reason"] == "duplicate name" and "row 2" in by_row[16]["detail"]
    assert by_row[7]["path"] == str(csv_path)

    got = rows_of(cat, "queries_v2")
    assert sorted(got) == ["Q_3", "q1", "q2"]
    q1 = got["q1"]
    assert (q1["lat"], q1["lon"], q1["heading"], q1["pitch"], q1["roll"], q1["altitude"]) == (
        37.7749,
        -122.4194,
        329.5,
        5.0,
        -1.0,
        12.5,
    )
    u1 = geo.latlon_to_utm(np.array([37.7749]), np.array([-122.4194]))
    assert (q1["utm_east"], q1["utm_north"], q1["utm_zone"]) == (float(u1.east[0]), float(u1.north[0]), 10)
    assert (q1["timestamp"], q1["year"], q1["month"]) == ("20131105", 2013, 11)
    assert (q1["width"], q1["height_px"]) == (640, 480)
    n1 = parse_name(q1["path"])
    assert (n1.pano_id, n1.heading, n1.pitch, n1.timestamp) == ("q1", "329", "", "20131105")

    q2 = got["q2"]  # UTM only: lat/lon recovered, UTM recomputed from it
    assert q2["lat"] == pytest.approx(lat2, abs=1e-6) and q2["lon"] == pytest.approx(lon2, abs=1e-6)
    assert q2["utm_east"] == pytest.approx(e2, abs=1e-3) and q2["utm_north"] == pytest.approx(n2, abs=1e-3)
    assert (q2["utm_zone"], q2["utm_letter"], q2["heading"]) == (10, "S", 45.0)
    assert (q2["width"], q2["height_px"], q2["timestamp"]) == (640, 480, None)

    q3 = got["Q_3"]
    assert q3["heading"] == pytest.approx(90.0, abs=1e-9) and parse_name(q3["path"]).heading == "90"
    assert (q3["width"], q3["height_px"], q3["pitch"]) == (480, 640, None)

    root = Catalog(cat).image_root("queries_v2")
    for row in got.values():
        with Image.open(root / row["path"]) as im:
            assert im.size == (row["width"], row["height_px"])
    con = Catalog(cat).connect()
    assert con.sql("select count(*) from images where collection='queries_v2'").fetchall()[0][0] == 3
    con.close()

    again = build_catalog(BuildConfig(cat, poses=csv_path, collection="queries_v2", workers=1))
    assert again.up_to_date and again.fingerprint == r.fingerprint


def test_poses_images_folder_option(tmp_path):
    imgs = tmp_path / "elsewhere"
    make_photo(imgs / "x.jpg", (480, 480))
    csv_path = write_csv(tmp_path / "meta" / "p.csv", ["path", "lat", "lon", "heading"], [["x.jpg", 37.7, -122.4, 1]])
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, poses=csv_path, poses_images=imgs, collection="q", workers=1))
    assert (r.images, r.rejects) == (1, 0)
    with pytest.raises(UsageError, match="poses images folder not found"):
        build_catalog(BuildConfig(tmp_path / "c2", poses=csv_path, poses_images=tmp_path / "nope", collection="q"))
    # the CSV's folder is the default: x.jpg is not there
    r2 = build_catalog(BuildConfig(tmp_path / "c3", poses=csv_path, collection="q", workers=1))
    assert r2.images == 0 and r2.rejects_by_reason == {"file not found": 1}


def test_poses_missing_columns_through_build(tmp_path):
    csv_path = write_csv(tmp_path / "p.csv", ["path", "heading"], [["x.jpg", 1]])
    with pytest.raises(UsageError, match="lacks column"):
        build_catalog(BuildConfig(tmp_path / "cat", poses=csv_path, collection="q"))
