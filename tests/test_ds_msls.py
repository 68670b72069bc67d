"""MSLS in its own layout (FORMATS.md 2.2): {train_val,test}/<city>/{query,database}/ + 4 CSVs -> one catalog."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import utm
from PIL import Image

from vgdata.build import BuildConfig, build_catalog, build_dataset
from vgdata.evalset import eval_set
from vgdata.export import export_catalog

SUBTASKS = ("all", "s2w", "w2s", "o2n", "n2o", "d2n", "n2d")
ORIGINS = {  # city -> (lat, lon) of its fixture origin
    "cph": (55.6761, 12.5683),
    "sf": (37.7749, -122.4194),
    "tokyo": (35.6762, 139.6503),
    "nairobi": (-1.2921, 36.8219),
    "lisbon": (38.7223, -9.1393),  # a train_val city in neither msls.py list: imported as train
}
SPLIT = {"cph": "val", "sf": "val", "tokyo": "train", "nairobi": "train", "lisbon": "train", "miami": "test"}


def _r(key, dx=0.0, dy=0.0, *, ca="90.5", when="2018-05-27", pano="False", night="False", view="Forward",
       panel="False", cluster="7", seq="seqA", frame="0", sub=("True",) * 7) -> dict:  # fmt: skip
    """One fixture image: key, metres east/north of its city's origin, and its CSV values as text."""
    names = ("key", "dx", "dy", "ca", "when", "pano", "night", "view", "panel", "cluster", "seq", "frame", "sub")
    return dict(zip(names, (key, dx, dy, ca, when, pano, night, view, panel, cluster, seq, frame, sub), strict=True))


F, MIXED = ("False",) * 7, ("True", "False", "True", "False", "True", "False", "True")
SIDES = {  # (top, city, side) -> images (all with a JPEG and every CSV row unless planted below)
    ("train_val", "cph", "database"): [
        _r("cphDb0aaaaaaaaaaaaaaaa", 0, 0, ca="359.5", frame="0"),
        _r("cphDb1aaaaaaaaaaaaaaaa", 10, 0, ca="10", frame="1", night="True", view="Sideways"),
        _r("cphDb2aaaaaaaaaaaaaaaa", 0, 30, frame="2", panel="True", cluster="12", sub=F),
        _r("cphDb3aaaaaaaaaaaaaaaa", 60, 0, seq="seqB", frame="0", view="Backward"),
        _r("cphDbPanoaaaaaaaaaaaaa", 3, 4, pano="True", seq="seqB", frame="1"),  # within reach, but a pano
        _r("cphDbGoneaaaaaaaaaaaaa", 100, 100),  # planted: CSV rows, no image
        _r("cphDbNoPostaaaaaaaaaaa", 5, 5),  # planted: missing from postprocessed.csv
    ],
    ("train_val", "cph", "query"): [
        _r("0123456789012345", 1, 1, ca="", when="2017-11-03 21:15:42", seq="000123", frame="5"),
        _r("cphQ1aaaaaaaaaaaaaaaaa", 0, 24, ca="181.25", sub=MIXED),
        _r("cphQ2aaaaaaaaaaaaaaaaa", 500, 500, ca="45"),
        _r("cphQPanoaaaaaaaaaaaaaa", 0, 0, pano="True"),
        _r("cphQBadFlagaaaaaaaaaaa", 2, 2, night="maybe"),  # planted: not a boolean
    ],
    ("train_val", "sf", "database"): [_r("sfDb0aaaaaaaaaaaaaaaaa", 0, 0), _r("sfDb1aaaaaaaaaaaaaaaaa", 20, 0)],
    ("train_val", "sf", "query"): [_r("sfQ0aaaaaaaaaaaaaaaaaa", 5, 0, ca="270", pano="0", night="1", panel="1")],
    ("train_val", "tokyo", "database"): [
        _r("tkDb0aaaaaaaaaaaaaaaaa", 0, 0),
        _r("tkDbSwapaaaaaaaaaaaaaa", 5, 5),  # planted: lon/lat swapped in raw.csv -> lat 139.65
    ],
    ("train_val", "nairobi", "database"): [_r("nbDb0aaaaaaaaaaaaaaaaa", 0, 0, ca="12.5", when="2018-05-27")],
    ("train_val", "lisbon", "database"): [_r("lsDb0aaaaaaaaaaaaaaaaa", 0, 0)],
    ("test", "miami", "query"): [
        _r("miQ0aaaaaaaaaaaaaaaaaa", seq="miseq", frame="3", sub=F),
        _r("miQ1aaaaaaaaaaaaaaaaaa", seq="miseq", frame="4"),
    ],
}
NO_IMAGE, NO_POST, SWAPPED = "cphDbGoneaaaaaaaaaaaaa", "cphDbNoPostaaaaaaaaaaa", "tkDbSwapaaaaaaaaaaaaaa"
BAD_FLAG, STRAY = "cphQBadFlagaaaaaaaaaaa", "cphStrayaaaaaaaaaaaaaa"
PLANTED = {NO_IMAGE, NO_POST, SWAPPED, BAD_FLAG}


def latlon(city: str, r: dict) -> tuple[float, float]:
    """The fixture's lat/lon of an image: its offset in metres from the city origin, in the origin's zone."""
    e, n, zone, letter = utm.from_latlon(*ORIGINS[city])
    lat, lon = utm.to_latlon(e + r["dx"], n + r["dy"], zone, letter)
    return float(lat), float(lon)


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", *header])  # the unnamed index column
        w.writerows(rows)


def make_msls(root: Path) -> Path:
    """A small MSLS tree: two val cities, two train cities (one southern), one unlisted, one test city."""
    for (top, city, side), images in SIDES.items():
        folder = root / top / city / side
        (folder / "images").mkdir(parents=True)
        for i, r in enumerate(images):
            if r["key"] != NO_IMAGE:
                Image.new("RGB", (32, 24), (i * 30, 90, 160)).save(folder / "images" / f"{r['key']}.jpg")
        indexed = list(enumerate(images))
        _write(folder / "seq_info.csv", ["key", "sequence_key", "frame_number"],
               [[i, r["key"], r["seq"], r["frame"]] for i, r in indexed])  # fmt: skip
        if top == "test":  # with a key column
            _write(folder / "subtask_index.csv", ["key", *SUBTASKS], [[i, r["key"], *r["sub"]] for i, r in indexed])
            continue
        # no key column: joined to seq_info.csv on the index column (rows shuffled to prove it)
        _write(folder / "subtask_index.csv", list(SUBTASKS), [[i, *r["sub"]] for i, r in indexed[::-1]])
        raw = []
        for i, r in indexed:
            lat, lon = latlon(city, r)
            if r["key"] == SWAPPED:
                lat, lon = lon, lat
            raw.append([i, r["key"], repr(lon), repr(lat), r["ca"], r["when"], r["pano"]])
        _write(folder / "raw.csv", ["key", "lon", "lat", "ca", "captured_at", "pano"], raw)
        post = []
        for i, r in indexed[::-1]:  # reversed: the importer joins on key, not row order
            e, n, _, _ = utm.from_latlon(*latlon(city, r))
            if r["key"] != NO_POST:
                post.append([i, r["key"], f"{e:.3f}", f"{n:.3f}", r["cluster"], r["panel"], r["night"], r["view"]])
        header = ["key", "easting", "northing", "unique_cluster", "control_panel", "night", "view_direction"]
        _write(folder / "postprocessed.csv", header, post)
    Image.new("RGB", (8, 8)).save(root / "train_val" / "cph" / "database" / "images" / f"{STRAY}.jpg")
    return root


@pytest.fixture(scope="module")
def msls(tmp_path_factory):
    root = make_msls(tmp_path_factory.mktemp("msls") / "MSLS")
    cat = tmp_path_factory.mktemp("mslscat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="msls", prefix="", dataset_root=root, workers=1))
    return cat, root, {r.collection: r for r in results}


def _expected() -> dict[str, tuple[str, str, str, dict]]:
    """key -> (top, city, side, row) for every image that must be imported."""
    return {r["key"]: (top, city, side, r) for (top, city, side), rows in SIDES.items() for r in rows
            if r["key"] not in PLANTED}  # fmt: skip


def _bool(text: str) -> bool:
    return {"True": True, "1": True, "False": False, "0": False}[text]


def test_collections_rows_positions_and_attributes(msls):
    cat, root, results = msls
    assert sorted(results) == [
        "test_queries", "train_database", "val_database", "val_database_pano", "val_queries", "val_queries_pano",
    ]  # fmt: skip
    images = {r["pano_id"]: r for r in pq.read_table(cat / "images").to_pylist()}
    attrs = {a["image_id"]: a for a in pq.read_table(cat / "attributes").to_pylist()}
    expected = _expected()
    assert sorted(images) == sorted(expected)
    for key, (top, city, side, e) in expected.items():
        r, a = images[key], attrs[images[key]["image_id"]]
        role = "queries" if side == "query" else "database"
        pano = top != "test" and _bool(e["pano"])
        assert r["path"] == f"{top}/{city}/{side}/images/{key}.jpg"
        assert r["collection"] == f"{SPLIT[city]}_{role}" + ("_pano" if pano else "")
        assert (r["width"], r["height_px"]) == (32, 24)
        assert (a["dataset"], a["split"], a["city"]) == ("msls", SPLIT[city], city)
        assert (a["sequence_id"], a["frame"]) == (e["seq"], int(e["frame"]))
        assert [a[f"msls_subtask_{s}"] for s in SUBTASKS] == [_bool(v) for v in e["sub"]]
        if top == "test":  # no coordinates, heading, time, pano flag or postprocessed fields
            assert all(r[k] is None for k in ("lat", "lon", "utm_east", "utm_zone", "utm_epsg", "heading", "timestamp"))
            assert all(a[k] is None for k in ("is_pano", "night", "source_east", "msls_unique_cluster"))
            continue
        lat, lon = latlon(city, e)
        east, north, zone, letter = utm.from_latlon(lat, lon)
        assert r["lat"] == pytest.approx(lat, abs=1e-12) and r["lon"] == pytest.approx(lon, abs=1e-12)
        assert r["utm_east"] == pytest.approx(east, abs=1e-3) and r["utm_north"] == pytest.approx(north, abs=1e-3)
        assert (r["utm_zone"], r["utm_letter"]) == (zone, letter)
        assert r["utm_epsg"] == (32600 if lat >= 0 else 32700) + zone
        assert r["heading"] == (None if e["ca"] == "" else float(e["ca"]))
        assert r["timestamp"] == e["when"].replace("-", "").replace(" ", "_").replace(":", "")
        assert (r["year"], r["month"]) == (int(e["when"][:4]), int(e["when"][5:7]))
        assert a["is_pano"] is pano
        assert (a["night"], a["view_direction"]) == (_bool(e["night"]), e["view"])
        assert (a["msls_unique_cluster"], a["msls_control_panel"]) == (e["cluster"], _bool(e["panel"]))
        assert a["source_east"] == pytest.approx(east, abs=1e-3) and a["source_north"] == pytest.approx(north, abs=1e-3)
    # per-city zones; nairobi is southern, with the 10,000,000 m false northing
    zones = {city: (images[k]["utm_zone"], images[k]["utm_letter"]) for k, (_, city, _, _) in expected.items()}
    assert zones["cph"] == (33, "U") and zones["sf"] == (10, "S") and zones["tokyo"] == (54, "S")
    assert zones["nairobi"] == (37, "M") and images["nbDb0aaaaaaaaaaaaaaaaa"]["utm_north"] > 9_800_000
    assert images["0123456789012345"]["timestamp"] == "20171103_211542"  # all-digit key kept as text, with its time


def test_rejects_counted_by_reason(msls):
    cat, root, results = msls
    assert {c: r.rejects_by_reason for c, r in results.items() if r.rejects_by_reason} == {
        "val_database": {"file not found": 1, "no metadata row": 1, "missing metadata": 1},
        "val_queries": {"bad metadata row": 1},
        "train_database": {"lat/lon out of range": 1},
    }
    rejects = {r["reason"]: r for r in pq.read_table(cat / "rejects").to_pylist()}
    assert Path(rejects["file not found"]["path"]).name == f"{NO_IMAGE}.jpg"
    assert Path(rejects["no metadata row"]["path"]).name == f"{STRAY}.jpg"
    assert (
        NO_POST in rejects["missing metadata"]["detail"]
        and "postprocessed.csv" in rejects["missing metadata"]["detail"]
    )
    bad = rejects["bad metadata row"]
    assert (bad["path"], bad["row"]) == ("train_val/cph/query/postprocessed.csv", 1)  # written reversed: first row
    assert "night" in bad["detail"] and "maybe" in bad["detail"]
    assert (rejects["lat/lon out of range"]["path"], rejects["lat/lon out of range"]["row"]) == (
        "train_val/tokyo/database/raw.csv",
        2,
    )


def test_val_positives_are_msls_25m_rule_panos_excluded(msls):
    """Positives == brute force on postprocessed easting/northing per city, <= 25 m, panos out on both sides."""
    cat, root, _ = msls
    res = eval_set(cat, name="msls_val", database="val_database", queries="val_queries", threshold=25)
    table = pq.read_table(res.manifest)
    rows = table.to_pylist()
    images = {r["image_id"]: r["pano_id"] for r in pq.read_table(cat / "images").to_pylist()}
    db = {r["idx"]: images[r["image_id"]] for r in rows if r["role"] == "database"}
    got = {images[r["image_id"]]: {db[i] for i in r["positives"]} for r in rows if r["role"] == "query"}
    source = {}  # key -> (city, easting, northing) read back from the fixture's postprocessed.csv
    for city in ("cph", "sf"):
        for side in ("query", "database"):
            folder = root / "train_val" / city / side
            with (folder / "raw.csv").open() as f:
                pano = {r["key"]: r["pano"] for r in csv.DictReader(f)}
            with (folder / "postprocessed.csv").open() as f:
                for r in csv.DictReader(f):
                    if r["key"] not in PLANTED and not _bool(pano[r["key"]]):
                        source[r["key"]] = (side, city, float(r["easting"]), float(r["northing"]))
    queries = {k: v for k, v in source.items() if v[0] == "query"}
    database = [(k, v) for k, v in source.items() if v[0] == "database"]
    assert sorted(got) == sorted(queries) and sorted(db.values()) == sorted(k for k, _ in database)
    for key, (_, city, e, n) in queries.items():
        keys = [k for k, v in database if v[1] == city]
        d = np.array([np.hypot(v[2] - e, v[3] - n) for k, v in database if v[1] == city])
        assert got[key] == {k for k, dist in zip(keys, d, strict=True) if dist <= 25.0}, key
    assert got["cphQ1aaaaaaaaaaaaaaaaa"] == {"cphDb0aaaaaaaaaaaaaaaa", "cphDb2aaaaaaaaaaaaaaaa"}  # 24 m in, 26 m out
    assert got["cphQ2aaaaaaaaaaaaaaaaa"] == set()


def test_at_export_of_val_queries_reimports_what_at_names_hold(msls, tmp_path):
    """'@' round trip: positions (1e-5 deg, 0.01 m), zone, letter, floor(heading), timestamp, pano_id."""
    cat, _, _ = msls
    dest = tmp_path / "at"
    out = export_catalog(cat, dest, collections=["val_queries"], names="at")
    assert out.files == {"val_queries": 4} and not out.rejects_by_reason
    cat2 = tmp_path / "cat2"
    build_catalog(BuildConfig(cat2, images=dest / "val_queries", collection="val_queries", workers=1))
    before = {r["pano_id"]: r for r in pq.read_table(cat / "images").to_pylist() if r["collection"] == "val_queries"}
    after = {r["pano_id"]: r for r in pq.read_table(cat2 / "images").to_pylist()}
    assert sorted(after) == sorted(before)
    for key, b in before.items():
        a = after[key]
        assert a["lat"] == pytest.approx(round(b["lat"], 5), abs=1e-9)
        assert a["lon"] == pytest.approx(round(b["lon"], 5), abs=1e-9)
        assert a["utm_east"] == pytest.approx(round(b["utm_east"], 2), abs=1e-6)
        assert a["utm_north"] == pytest.approx(round(b["utm_north"], 2), abs=1e-6)
        assert (a["utm_zone"], a["utm_letter"], a["utm_epsg"]) == (b["utm_zone"], b["utm_letter"], b["utm_epsg"])
        assert a["heading"] == (None if b["heading"] is None else float(math.floor(b["heading"])))
        assert (a["timestamp"], a["year"], a["month"]) == (b["timestamp"], b["year"], b["month"])


def test_damaged_csvs_are_rejects_not_errors(tmp_path):
    """A CSV without a column, a subtask row whose index matches nothing: rejects; the rest is read."""
    from vgdata.sources.ds_msls import read

    root = make_msls(tmp_path / "MSLS")
    post = root / "train_val" / "sf" / "query" / "postprocessed.csv"
    post.write_text(post.read_text().replace(",night,", ",nite,", 1))
    sub = root / "train_val" / "sf" / "database" / "subtask_index.csv"
    lines = sub.read_text().splitlines()
    lines[1] = "99" + lines[1][lines[1].index(",") :]  # first data row: index 1 (sfDb1, written reversed)
    sub.write_text("\n".join(lines) + "\n")
    colls = {c.name: c for c in read(root)}
    val_q = [(r[0], r[1], r[3]) for r in colls["val_queries"].rejects if "sf/" in r[1]]
    assert val_q == [
        ("metadata", "train_val/sf/query/postprocessed.csv", "bad metadata file"),
        ("metadata", "train_val/sf/query/raw.csv", "missing metadata"),
    ]
    val_db = [(r[1], r[2], r[3]) for r in colls["val_database"].rejects if "sf/" in r[1]]
    assert val_db == [
        ("train_val/sf/database/subtask_index.csv", 1, "bad metadata row"),
        ("train_val/sf/database/raw.csv", 2, "missing metadata"),
    ]
    kept = {r["pano_id"] for c in colls.values() for r in c.rows}
    assert "sfDb0aaaaaaaaaaaaaaaaa" in kept and "sfDb1aaaaaaaaaaaaaaaaa" not in kept
    assert "sfQ0aaaaaaaaaaaaaaaaaa" not in kept and "cphQ1aaaaaaaaaaaaaaaaa" in kept
    assert read(tmp_path) == []  # not an MSLS folder
