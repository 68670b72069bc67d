"""Issue 12, item 3 and item 8: one item's fault is one ``rejects`` row, never the whole run.

Every case builds a real small catalog (JPEG/PNG/TIFF files written with Pillow, real CSVs,
real list files) that mixes valid items with one bad item, then checks the bad item's exact
reject (source, path or CSV row, reason, and what the detail names) and that every valid item
was imported (ids and row counts). Pixel cases check the crops' values: 16-bit greyscale keeps
its levels, an EXIF-rotated panorama gives the crops of its upright twin. Parameter cases run
the CLI as a subprocess and check its one-line message, exit code and that no traceback shows.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from raw_panoramas import make_raw_panoramas

from vgdata import geo
from vgdata.build import BuildConfig, build_catalog
from vgdata.errors import UsageError, VgdataError
from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgdata.names import make_name
from vgdata.panorama import strip_windows
from vgdata.splits import split_val

REPO = Path(__file__).resolve().parents[2]
SF = (37.7749, -122.4194)
PANO_W = 64  # 64 x 32 panoramas: 12 crops of 10 x 10 px, distinct names


# ---------------------------------------------------------------- helpers


def read(cat: Path, table: str, collection: str) -> list[dict]:
    parts = sorted((cat / table).glob(f"{collection}-*.parquet"))
    return pq.read_table(parts).to_pylist() if parts else []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def sf_utm(lat: float = SF[0], lon: float = SF[1]) -> tuple[float, float, int, str]:
    u = geo.latlon_to_utm(lat, lon)
    return float(u.east), float(u.north), int(u.zone), str(u.letter)


def at_name(i: int, *, heading: str | int = 30, timestamp: str = "20130228", ext: str = ".jpg") -> str:
    """A valid '@' name of a point near SF (the ``i``-th, 11 m apart)."""
    lat, lon = SF[0] + i * 1e-4, SF[1]
    e, n, z, letter = sf_utm(lat, lon)
    name = make_name(
        utm_east=e, utm_north=n, utm_zone=z, utm_letter=letter, lat=lat, lon=lon, pano_id=f"p{i}",
        heading=None, timestamp=timestamp, extension=ext,
    )  # fmt: skip
    parts = name.split("@")
    parts[9] = str(heading)  # field 9: heading (empty: none)
    return "@".join(parts)


def gps_exif(lat: float = SF[0], lon: float = SF[1], orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation

    def dms(x: float) -> tuple:
        d = int(x)
        m = int((x - d) * 60)
        s = (x - d - m / 60) * 3600
        return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 1000), 1000))

    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: dms(abs(lat)), 3: "E" if lon >= 0 else "W"})
    exif.get_ifd(0x8825).update({4: dms(abs(lon))})
    return exif.tobytes()


def bad_name(path: Path, raw: bytes) -> Path:
    """``path / raw``, a file name whose bytes are not UTF-8."""
    return path / os.fsdecode(raw)


def panoramas(tmp: Path, n: int = 2) -> tuple[Path, Path, list[str]]:
    pano_dir, csv_path = make_raw_panoramas(tmp / "raw", n=n, width=PANO_W, seed=3)
    return pano_dir, csv_path, sorted(p.stem for p in pano_dir.glob("*.jpg"))


def add_pano_row(csv_path: Path, row: list[str]) -> int:
    """Append ``row`` (pano_id, lat, lon, heading, timestamp, [pitch, roll, altitude]); its 1-based data row."""
    lines = csv_path.read_text().splitlines()
    row = row + ["0", "0", "1"][len(row) - 5 :]
    lines.append(",".join(row))
    csv_path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


# ---------------------------------------------------------------- the cases


@dataclass
class Case:
    build: dict
    """BuildConfig arguments besides the catalog."""
    source: str
    path: str
    """The reject's path column."""
    row: int | None
    reason: str
    detail: str
    """A part of the reject's detail (the offending value or file)."""
    valid: set[str]
    """What must be imported: pano_id of every valid item."""
    per_item: int = 1
    """Image rows per valid item (12 crops per panorama)."""


CASES: dict[str, Callable[[Path], Case]] = {}


def case(fn: Callable[[Path], Case]) -> Callable[[Path], Case]:
    CASES[fn.__name__] = fn
    return fn


@case
def pano_tiny_8x4(tmp: Path) -> Case:
    """12 windows on 8 columns share names: today the whole import ended on an id collision."""
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("RGB", (8, 4), (10, 20, 30)).save(pano_dir / "tiny.jpg")
    add_pano_row(csv_path, ["tiny", "37.7749", "-122.4194", "10", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "panorama", str(pano_dir / "tiny.jpg"), None,
        "panorama too small", "8x4 panorama too small: its 12 crops would share names", set(good), 12,
    )  # fmt: skip


@case
def pano_no_band_4x2(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("RGB", (4, 2)).save(pano_dir / "flat.png")
    add_pano_row(csv_path, ["flat", "37.7749", "-122.4194", "10", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "panorama", str(pano_dir / "flat.png"), None,
        "panorama too small", "panorama height 2 too small for an SF-XL band", set(good), 12,
    )  # fmt: skip


@case
def pano_float_mode_tiff(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("F", (PANO_W, PANO_W // 2), 0.5).save(pano_dir / "float.tif")
    lines = csv_path.read_text().splitlines()
    lines[0] += ",path"
    lines = [lines[0]] + [line + "," for line in lines[1:]] + ["float,37.7749,-122.4194,10,201301,0,0,1,float.tif"]
    csv_path.write_text("\n".join(lines) + "\n")
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "panorama", str(pano_dir / "float.tif"), None,
        "unsupported pixel mode", "mode F: 32-bit float pixels of unknown range", set(good), 12,
    )  # fmt: skip


@case
def pano_int32_mode_tiff(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("I", (PANO_W, PANO_W // 2), 70000).save(pano_dir / "int.tif")
    lines = csv_path.read_text().splitlines()
    lines[0] += ",path"
    lines = [lines[0]] + [line + "," for line in lines[1:]] + ["int,37.7749,-122.4194,10,201301,0,0,1,int.tif"]
    csv_path.write_text("\n".join(lines) + "\n")
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "panorama", str(pano_dir / "int.tif"), None,
        "unsupported pixel mode", "mode I: 32-bit integer pixels of unknown range", set(good), 12,
    )  # fmt: skip


@case
def pano_default_path_symlink_out(tmp: Path) -> Case:
    """``<pano_id>.jpg`` found by the default lookup is a link leading out: refused like an explicit path."""
    pano_dir, csv_path, good = panoramas(tmp)
    outside = tmp / "secret.jpg"
    Image.new("RGB", (PANO_W, PANO_W // 2), (1, 2, 3)).save(outside)
    (pano_dir / "leak.jpg").symlink_to(outside)
    row = add_pano_row(csv_path, ["leak", "37.7749", "-122.4194", "10", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), row,
        "path outside folder", f"{pano_dir / 'leak.jpg'} leads outside {pano_dir}; not followed", set(good), 12,
    )  # fmt: skip


@case
def pano_duplicate_id(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    row = add_pano_row(csv_path, [good[0], "37.78", "-122.42", "20", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), row,
        "duplicate pano_id", f"pano_id={good[0]!r} first seen on row 1", set(good), 12,
    )  # fmt: skip


@case
def pano_30_february(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("RGB", (PANO_W, PANO_W // 2)).save(pano_dir / "feb.jpg")
    row = add_pano_row(csv_path, ["feb", "37.7749", "-122.4194", "10", "2013-02-30"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), row,
        "bad timestamp", "timestamp='2013-02-30'", set(good), 12,
    )  # fmt: skip


@case
def pano_month_13(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("RGB", (PANO_W, PANO_W // 2)).save(pano_dir / "m13.jpg")
    row = add_pano_row(csv_path, ["m13", "37.7749", "-122.4194", "10", "201313"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), row,
        "bad timestamp", "timestamp='201313'", set(good), 12,
    )  # fmt: skip


@case
def pano_csv_not_utf8(tmp: Path) -> Case:
    """One row with Latin-1 bytes: that row is a reject, the CSV is still read."""
    pano_dir, csv_path, good = panoramas(tmp)
    Image.new("RGB", (PANO_W, PANO_W // 2)).save(pano_dir / "caf.jpg")
    with csv_path.open("ab") as f:
        f.write(b"caf\xe9,37.7749,-122.4194,10,201301,0,0,1\n")
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), 3,
        "non-UTF-8 text", "pano_id='caf\ufffd'", set(good), 12,
    )  # fmt: skip


@case
def pano_id_too_long_for_a_file_name(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    long_id = "L" * 200
    Image.new("RGB", (PANO_W, PANO_W // 2)).save(pano_dir / f"{long_id}.jpg")
    add_pano_row(csv_path, [long_id, "37.7749", "-122.4194", "10", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "panorama", str(pano_dir / f"{long_id}.jpg"), None,
        "name too long", "at most 245 fit", set(good), 12,
    )  # fmt: skip


@case
def pano_id_control_character(tmp: Path) -> Case:
    pano_dir, csv_path, good = panoramas(tmp)
    row = add_pano_row(csv_path, ['"bell\x07"', "37.7749", "-122.4194", "10", "201301"])
    return Case(
        {"panoramas": pano_dir, "metadata": csv_path}, "metadata", str(csv_path), row,
        "bad pano_id", "pano_id='bell\\x07' contains a control character", set(good), 12,
    )  # fmt: skip


# '@' folders (--images)


def at_folder(tmp: Path, n: int = 3) -> tuple[Path, list[str]]:
    folder = tmp / "db"
    folder.mkdir()
    names = [at_name(i) for i in range(n)]
    for name in names:
        Image.new("RGB", (16, 16), (40, 80, 120)).save(folder / name)
    return folder, names


@case
def images_duplicate_list_line(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    listing = tmp / "db_images_paths.txt"
    listing.write_text(f"{names[0]}\n{names[1]}\n./{names[0]}\n{names[2]}\n")
    return Case(
        {"images": folder}, "image", str(listing), 3, "duplicate path",
        f"{names[0]!r} already listed on line 1", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_list_line_not_utf8(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    listing = tmp / "db_images_paths.txt"
    listing.write_bytes("\n".join(names).encode() + b"\n@bad\xff.jpg\n")
    return Case(
        {"images": folder}, "image", str(listing), 4, "non-UTF-8 file name",
        "'@bad\\\\xff.jpg'", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_file_name_not_utf8(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    raw = at_name(7).encode().replace(b"@p7@", b"@p\xe97@")
    Image.new("RGB", (16, 16)).save(bad_name(folder, raw), format="JPEG")
    shown = f"{folder}/" + raw.decode("utf-8", "backslashreplace")
    return Case(
        {"images": folder}, "image", shown, None, "non-UTF-8 file name",
        "bytes are not UTF-8", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_symlink_out_without_list(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    outside = tmp / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (16, 16)).save(outside / at_name(5))
    (folder / at_name(5)).symlink_to(outside / at_name(5))
    link = folder / at_name(5)
    return Case(
        {"images": folder}, "image", str(link), None, "path outside folder",
        f"symlink {link} leads to {outside / at_name(5)}, outside {folder}", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_broken_symlink(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    (folder / at_name(6)).symlink_to(folder / "gone.jpg")
    return Case(
        {"images": folder}, "image", str(folder / at_name(6)), None, "file not found",
        f"broken symlink to {folder / 'gone.jpg'}", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_16_bit_in_place(tmp: Path) -> Case:
    """Imported in place, a 16-bit PNG would be read as white by the trainer: refused."""
    folder, names = at_folder(tmp)
    name = at_name(4, ext=".png")
    Image.fromarray(np.full((16, 16), 32768, np.uint16)).save(folder / name)
    return Case(
        {"images": folder}, "image", str(folder / name), None, "unsupported pixel mode",
        "mode I;16: 16-bit greyscale", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_exif_rotated_in_place(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    name = at_name(4)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (16, 8)).save(folder / name, exif=exif.tobytes())
    return Case(
        {"images": folder}, "image", str(folder / name), None, "EXIF-rotated image",
        "EXIF orientation 6", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_name_30_february(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    name = at_name(4, timestamp="20130228").replace("@20130228@", "@20130230@")
    Image.new("RGB", (16, 16)).save(folder / name)
    return Case(
        {"images": folder}, "image", str(folder / name), None, "bad name",
        "has day 30 but month 02 of 2013 has 28", {"p0", "p1", "p2"},
    )  # fmt: skip


@case
def images_southern_letter_on_a_northern_name(tmp: Path) -> Case:
    folder, names = at_folder(tmp)
    parts = at_name(4).split("@")
    assert parts[4] == "S"
    parts[4] = "M"  # field 4: the band letter
    name = "@".join(parts)
    Image.new("RGB", (16, 16)).save(folder / name)
    return Case(
        {"images": folder}, "image", str(folder / name), None, "band letter inconsistent",
        "utm_letter 'M' but lat 37.77530 is in band S", {"p0", "p1", "p2"},
    )  # fmt: skip


# photos with EXIF GPS (add-queries --photos)


def photo_folder(tmp: Path) -> Path:
    folder = tmp / "flickr"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 30), (90, 140, 200)).save(folder / f"ph{i}.jpg", exif=gps_exif(SF[0] + i * 1e-3))
    return folder


@case
def photos_symlink_out(tmp: Path) -> Case:
    folder = photo_folder(tmp)
    outside = tmp / "private.jpg"
    Image.new("RGB", (40, 30)).save(outside, exif=gps_exif())
    (folder / "peek.jpg").symlink_to(outside)
    return Case(
        {"photos": folder, "collection": "queries_v1"}, "photo", str(folder / "peek.jpg"), None,
        "path outside folder", f"leads to {outside}", {"ph0", "ph1"},
    )  # fmt: skip


@case
def photos_file_name_not_utf8(tmp: Path) -> Case:
    folder = photo_folder(tmp)
    Image.new("RGB", (40, 30)).save(bad_name(folder, b"caf\xe9.jpg"), format="JPEG", exif=gps_exif(SF[0] + 0.01))
    return Case(
        {"photos": folder, "collection": "queries_v1"}, "photo", f"{folder}/caf\\xe9.jpg", None,
        "non-UTF-8 file name", "bytes are not UTF-8", {"ph0", "ph1"},
    )  # fmt: skip


@case
def photos_duplicate_name(tmp: Path) -> Case:
    folder = photo_folder(tmp)
    Image.new("RGB", (40, 30)).save(folder / "ph0.png", exif=gps_exif())
    return Case(
        {"photos": folder, "collection": "queries_v1"}, "photo", str(folder / "ph0.png"), None,
        "duplicate name", "already made from ph0.jpg", {"ph0", "ph1"},
    )  # fmt: skip


# query images with poses (add-queries --poses)

POSE_HEADER = ["path", "lat", "lon", "utm_east", "utm_north", "utm_zone", "utm_letter", "heading", "timestamp"]


def poses_case(tmp: Path, bad: list, reason: str, detail: str, bad_image: Image.Image | None = None) -> Case:
    """Two valid rows (lat/lon and UTM) and ``bad`` (a row of POSE_HEADER without its path)."""
    folder = tmp / "landmark"
    folder.mkdir()
    for name in ("q0.jpg", "q1.jpg", "bad.jpg"):
        Image.new("RGB", (48, 32), (120, 60, 30)).save(folder / name)
    bad_path = "bad.jpg"
    if bad_image is not None:
        bad_path = "bad.tif"
        bad_image.save(folder / bad_path)
    e, n, z, letter = sf_utm(SF[0] + 1e-3)
    rows = [
        ["q0.jpg", SF[0], SF[1], "", "", "", "", 10, "2013-02-28"],
        ["q1.jpg", "", "", e, n, z, letter, 20, "201302"],
        [bad_path, *bad],
    ]
    csv_path = write_csv(folder / "poses.csv", POSE_HEADER, rows)
    path = str(folder / bad_path) if bad_image is not None else str(csv_path)
    return Case({"poses": csv_path, "collection": "queries_v2"}, "pose", path, 3, reason, detail, {"q0", "q1"})


@case
def poses_absurd_easting(tmp: Path) -> Case:
    """PROJ refused 1e30 and the whole import ended; now the row is a reject."""
    _, n, z, letter = sf_utm()
    return poses_case(
        tmp, ["", "", 1e30, n, z, letter, 30, ""], "UTM out of range", "east 1e+30 m outside [100000, 900000]"
    )


@case
def poses_northing_beyond_any_hemisphere(tmp: Path) -> Case:
    e, _, z, letter = sf_utm()
    return poses_case(tmp, ["", "", e, -1e8, z, letter, 30, ""], "UTM out of range", "north -100000000 m is beyond")


@case
def poses_southern_letter_negative_northing(tmp: Path) -> Case:
    """Today this became a valid row (lat -54, lon 57 for a point in zone 10)."""
    e, _, z, _ = sf_utm()
    return poses_case(
        tmp, ["", "", e, -4e6, z, "M", 30, ""], "band letter inconsistent",
        "north -4000000 m is outside 1000000..10000000 m, the range of the southern (C-M) band letter 'M'",
    )  # fmt: skip


@case
def poses_southern_letter_for_a_northern_point(tmp: Path) -> Case:
    e, n, z, _ = sf_utm()
    return poses_case(
        tmp, ["", "", e, n, z, "M", 30, ""], "band letter inconsistent",
        "utm_letter 'M' but east/north give lat -52.",
    )  # fmt: skip


@case
def poses_northern_letter_with_false_northing(tmp: Path) -> Case:
    e, _, z, _ = sf_utm()
    return poses_case(
        tmp, ["", "", e, 9.9e6, z, "S", 30, ""], "band letter inconsistent",
        "use its southern letter (C-M)",
    )  # fmt: skip


@case
def poses_30_february(tmp: Path) -> Case:
    return poses_case(tmp, [SF[0], SF[1], "", "", "", "", 30, "20130230"], "bad timestamp", "timestamp='20130230'")


@case
def poses_float_image(tmp: Path) -> Case:
    return poses_case(
        tmp, [SF[0], SF[1], "", "", "", "", 30, ""], "unsupported pixel mode", "mode F",
        bad_image=Image.new("F", (48, 32), 0.25),
    )  # fmt: skip


@case
def poses_duplicate_name(tmp: Path) -> Case:
    folder = tmp / "landmark"
    c = poses_case(tmp, [SF[0], SF[1], "", "", "", "", 10, ""], "duplicate name", "already made from row 1 (q0.jpg)")
    rows = list(csv.reader(c.build["poses"].open()))
    rows[3] = ["q0.jpg", SF[0], SF[1], "", "", "", "", 10, "2013-02-28"]  # the same image, name and row values
    write_csv(folder / "poses.csv", rows[0], rows[1:])
    return c


@case
def poses_csv_not_utf8(tmp: Path) -> Case:
    c = poses_case(tmp, [SF[0], SF[1], "", "", "", "", 10, ""], "non-UTF-8 text", "path='b\ufffdd.jpg'")
    data = c.build["poses"].read_bytes().replace(b"bad.jpg", b"b\xe4d.jpg")
    c.build["poses"].write_bytes(data)
    return c


@pytest.mark.parametrize("kind", sorted(CASES))
def test_one_bad_item_is_one_reject_and_every_valid_item_is_built(kind, tmp_path):
    c = CASES[kind](tmp_path)
    cat = tmp_path / "cat"
    collection = c.build.get("collection", "database")
    r = build_catalog(BuildConfig(cat, workers=1, **c.build))

    rejects = read(cat, "rejects", collection)
    assert [(x["source"], x["path"], x["row"], x["reason"]) for x in rejects] == [(c.source, c.path, c.row, c.reason)]
    assert c.detail in rejects[0]["detail"]
    assert r.rejects_by_reason == {c.reason: 1}

    images = read(cat, "images", collection)
    assert {x["pano_id"] for x in images} == c.valid
    assert len(images) == r.images == len(c.valid) * c.per_item
    assert len({x["image_id"] for x in images}) == len(images)
    if c.per_item == 12:
        assert {x["pano_id"] for x in read(cat, "panoramas", collection)} == c.valid


def test_cases_cover_the_families():
    assert len(CASES) >= 20


# ---------------------------------------------------------------- pixels: levels and orientation


def crop_arrays(cat: Path, pano_id: str) -> list[np.ndarray]:
    rows = sorted((x for x in read(cat, "images", "database") if x["pano_id"] == pano_id), key=lambda x: x["heading"])
    return [np.asarray(Image.open(cat / "crops" / "database" / x["path"]).convert("RGB")).astype(int) for x in rows]


def test_16_bit_greyscale_panorama_keeps_its_levels(tmp_path):
    """A 0..65535 ramp across the columns gives the 8-bit ramp round(v / 257), not white."""
    pano_dir, csv_path, good = panoramas(tmp_path, n=1)
    width, height = 256, 128
    values = np.round(np.linspace(0, 65535, width)).astype(np.uint16)
    Image.fromarray(np.tile(values, (height, 1))).save(pano_dir / "deep.png")
    add_pano_row(csv_path, ["deep", "37.7749", "-122.4194", "0", "201301"])
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    assert (r.panoramas, r.rejects) == (2, 0)

    expected_cols = (values.astype(int) + 128) // 257
    crops = crop_arrays(cat, "deep")
    windows = strip_windows(width, height, 0.0)
    assert len(crops) == 12
    for crop, win in zip(crops, windows, strict=True):
        cols = np.take(expected_cols, np.arange(win.x0, win.x0 + win.size) % width)
        want = np.broadcast_to(cols[None, :, None], crop.shape)
        assert np.abs(crop - want).max() <= 3  # JPEG at quality 95
    mid = crops[0]  # heading 0 is the centre column: the middle of the ramp
    assert abs(mid.mean() - 128) < 2


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_panorama_gives_the_crops_of_its_upright_twin(tmp_path, orientation):
    from PIL import Image as I

    pano_dir, csv_path, _ = panoramas(tmp_path, n=1)
    rng = np.random.default_rng(orientation)
    upright = I.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    upright.save(pano_dir / "up.png")
    stored = upright.transpose(
        {3: I.Transpose.ROTATE_180, 6: I.Transpose.ROTATE_90, 8: I.Transpose.ROTATE_270}[orientation]
    )
    exif = I.Exif()
    exif[0x0112] = orientation
    stored.save(pano_dir / "turned.png", exif=exif.tobytes())
    assert stored.size == ((64, 32) if orientation == 3 else (32, 64))
    for pano_id in ("up", "turned"):
        add_pano_row(csv_path, [pano_id, "37.7749", "-122.4194", "45", "201301"])
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    assert (r.panoramas, r.rejects) == (3, 0)
    up, turned = crop_arrays(cat, "up"), crop_arrays(cat, "turned")
    assert len(up) == len(turned) == 12
    for a, b in zip(up, turned, strict=True):
        assert np.array_equal(a, b)
    panos = {p["pano_id"]: p for p in read(cat, "panoramas", "database")}
    assert (panos["turned"]["width"], panos["turned"]["height_px"]) == (64, 32)


def palette_image(rgb: tuple[int, int, int]) -> Image.Image:
    im = Image.new("P", (64, 32), 1)
    im.putpalette([0, 0, 0, *rgb] + [0] * (768 - 6))
    return im


@pytest.mark.parametrize(
    ("mode", "make", "rgb"),
    [
        ("L", lambda: Image.new("L", (64, 32), 77), (77, 77, 77)),
        ("P", lambda: palette_image((200, 30, 60)), (200, 30, 60)),
        ("LA", lambda: Image.new("LA", (64, 32), (150, 10)), (150, 150, 150)),
        ("RGBA", lambda: Image.new("RGBA", (64, 32), (10, 200, 90, 0)), (10, 200, 90)),
        ("1", lambda: Image.new("1", (64, 32), 1), (255, 255, 255)),
        ("CMYK", lambda: Image.new("CMYK", (64, 32), (0, 255, 255, 0)), (255, 0, 0)),
    ],
)
def test_8_bit_modes_are_converted_with_their_levels(tmp_path, mode, make, rgb):
    pano_dir, csv_path, _ = panoramas(tmp_path, n=1)
    im = make()
    assert im.mode == mode
    im.save(pano_dir / "odd.tif")
    lines = csv_path.read_text().splitlines()
    lines = [lines[0] + ",path", lines[1] + ","] + ["odd,37.7749,-122.4194,0,201301,0,0,1,odd.tif"]
    csv_path.write_text("\n".join(lines) + "\n")
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    assert (r.panoramas, r.rejects) == (2, 0)
    for crop in crop_arrays(cat, "odd"):
        assert np.abs(crop - np.array(rgb)).max() <= 2


def test_16_bit_query_photo_is_mid_grey(tmp_path):
    folder = photo_folder(tmp_path)
    Image.fromarray(np.full((30, 40), 32768, np.uint16)).save(folder / "deep.png", exif=gps_exif(SF[0] + 0.01))
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, photos=folder, collection="queries_v1", workers=1))
    assert (r.images, r.rejects) == (3, 0)
    (row,) = [x for x in read(cat, "images", "queries_v1") if x["pano_id"] == "deep"]
    pixels = np.asarray(Image.open(cat / "crops" / "queries_v1" / row["path"])).astype(int)
    assert np.abs(pixels - 128).max() <= 1


# ---------------------------------------------------------------- through the CLI: no traceback


@pytest.mark.slow
def test_cli_tiny_panorama_is_a_reject_not_an_abort(tmp_path):
    c = pano_tiny_8x4(tmp_path)
    p = run_cli("build-catalog", tmp_path / "cat", "--panoramas", c.build["panoramas"], "--metadata",
                c.build["metadata"], "--workers", "1", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    import json

    out = json.loads(p.stdout)
    assert (out["panoramas"], out["images"], out["rejects_by_reason"]) == (2, 24, {"panorama too small": 1})


@pytest.mark.slow
def test_cli_duplicate_list_line_is_a_reject(tmp_path):
    c = images_duplicate_list_line(tmp_path)
    p = run_cli("build-catalog", tmp_path / "cat", "--images", c.build["images"], "--workers", "1")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "database: 0 panoramas, 3 images, 1 rejected" in p.stdout and "duplicate path" in p.stdout


@pytest.mark.slow
def test_cli_absurd_utm_is_a_reject(tmp_path):
    c = poses_absurd_easting(tmp_path)
    p = run_cli("add-queries", tmp_path / "cat", "--collection", "queries_v2", "--poses", c.build["poses"],
                "--workers", "1")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "queries_v2: 0 panoramas, 2 images, 1 rejected" in p.stdout and "UTM out of range" in p.stdout


# ---------------------------------------------------------------- item 8: parameters at the door


GROUPS_PARAMS = [
    ({"m": float("inf")}, ["--M", "inf"], "--M must be a finite number of metres > 0, got inf"),
    ({"m": 0.0}, ["--M", "0"], "--M must be a finite number of metres > 0, got 0.0"),
    ({"m": float("nan")}, ["--M", "nan"], "--M must be a finite number of metres > 0, got nan"),
    ({"alpha": -30.0}, ["--alpha", "-30"], "--alpha must be a finite number of degrees > 0, got -30.0"),
    ({"alpha": float("inf")}, ["--alpha", "inf"], "--alpha must be a finite number of degrees > 0, got inf"),
    ({"n": 0}, ["--N", "0"], "--N must be a whole number >= 1, got 0"),
    ({"l": -1}, ["--L", "-1"], "--L must be a whole number >= 1, got -1"),
    (
        {"min_images_per_class": 0},
        ["--min-images-per-class", "0"],
        "--min-images-per-class must be a whole number >= 1, got 0",
    ),
    ({"groups_num": 0}, ["--groups-num", "0"], "--groups-num must be a whole number >= 1, got 0"),
]


@pytest.mark.parametrize(("kwargs", "args", "message"), GROUPS_PARAMS, ids=[a[0] + a[1] for _, a, _ in GROUPS_PARAMS])
def test_split_groups_parameters_are_checked_at_the_door(tmp_path, kwargs, args, message):
    """Checked before the catalog is opened: the catalog need not exist."""
    with pytest.raises(UsageError) as e:
        split_groups(GroupsConfig(tmp_path / "no-catalog", **kwargs))
    assert str(e.value) == message


@pytest.mark.parametrize("index", [0, 3, 5])
def test_split_groups_parameters_through_the_cli(tmp_path, index):
    _, args, message = GROUPS_PARAMS[index]
    p = run_cli("split-groups", tmp_path / "no-catalog", *args)
    assert (p.returncode, p.stderr.strip()) == (2, f"error: {message}")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda cat: split_val(cat, size=0), "size must be >= 1, got 0"),
        (lambda cat: split_val(cat, size=10, threshold=float("inf")), "threshold must be a finite number, got inf"),
        (lambda cat: split_val(cat, size=10, threshold=-5.0), "threshold must be > 0 metres, got -5.0"),
        (lambda cat: split_val(cat, size=10, grid_m=float("nan")), "grid_m must be a finite number, got nan"),
        (
            lambda cat: eval_set(cat, name="x", database="database", queries="q", threshold=0.0),
            "threshold must be a finite number of metres > 0, e.g. 25, got 0.0",
        ),
        (
            lambda cat: eval_set(cat, name="x", database="database", queries="q", threshold=float("inf")),
            "threshold must be a finite number of metres > 0, e.g. 25, got inf",
        ),
    ],
)
def test_threshold_and_size_are_checked_at_the_door(tmp_path, call, message):
    with pytest.raises(UsageError) as e:
        call(tmp_path / "no-catalog")
    assert str(e.value) == message


def test_threshold_through_the_cli(tmp_path):
    p = run_cli("split-val", tmp_path / "no-catalog", "--size", "10", "--threshold", "inf")
    assert (p.returncode, p.stderr.strip()) == (2, "error: threshold must be a finite number, got inf")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    ("n_crops", "step_deg", "message"),
    [
        (13, 30.0, "crops 0 and 12 would both target degree 0 and share a name"),
        (12, 0.5, "crops 0 and 1 would both target degree 0 and share a name"),
        (12, float("inf"), "step_deg must be finite, got inf"),
        (0, 30.0, "n_crops must be an integer >= 1, got 0"),
    ],
)
def test_strip_parameters_are_refused_before_any_work(tmp_path, n_crops, step_deg, message):
    pano_dir, csv_path, _ = panoramas(tmp_path, n=1)
    cfg = BuildConfig(tmp_path / "cat", panoramas=pano_dir, metadata=csv_path, n_crops=n_crops, step_deg=step_deg)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_catalog(cfg)
    assert not (tmp_path / "cat" / "build.json").exists()


def test_headings_all_null_get_a_hint_about_headings(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (16, 16)).save(folder / at_name(i, heading=""))
    cat = tmp_path / "cat"
    assert build_catalog(BuildConfig(cat, images=folder, workers=1)).images == 12
    hint = (
        "none of the 12 images of collection 'database' has a heading, and CosPlace classes need one; import "
        "'@' names with a heading (field 9), or give the metadata/poses CSV a heading column"
    )
    with pytest.raises(VgdataError) as e:
        split_groups(GroupsConfig(cat, min_images_per_class=1, groups_num=1))
    assert str(e.value) == hint
    p = run_cli("split-groups", cat, "--min-images-per-class", "1", "--groups-num", "1")
    assert (p.returncode, p.stderr.strip()) == (1, f"error: {hint}")
    assert "Traceback" not in p.stderr
