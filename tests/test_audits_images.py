"""The ``images`` audits of ``vgdata/sql/tests/images_*.sql``: each returns exactly the one bad row fed to it
among good ones (run directly with DuckDB over a table named ``images``), and nothing on a real catalog."""

from __future__ import annotations

import math

import duckdb
import pyarrow as pa
import pytest

from vgdata.build import register_collection
from vgdata.catalog import SQL_DIR, Catalog
from vgdata.fsio import atomic_write_table
from vgdata.schema import IMAGES, from_columns

AUDITS = ("images_duplicate_id", "images_heading_out_of_range", "images_bad_utm_zone", "images_utm_epsg_mismatch")


def row(image_id: int, **kw) -> dict:
    base = {"image_id": image_id, "path": f"x/{image_id}.jpg", "collection": "database", "lat": 37.77,
            "lon": -122.42, "utm_zone": 10, "utm_letter": "S", "utm_epsg": 32610, "heading": 90.0}  # fmt: skip
    return {**base, **kw}


GOOD = [
    row(1),  # San Francisco: 10S, 32610
    row(2, lat=-33.87, lon=151.21, utm_zone=56, utm_letter="H", utm_epsg=32756, heading=359.5),  # Sydney
    row(3, lat=None, lon=None, utm_zone=None, utm_letter=None, utm_epsg=None, heading=None),  # no zone (Nordland)
    row(4, lat=31.999999, heading=0.0),  # 1e-6 degrees below band S (32..40 N): either band counts at an edge
    row(5, lat=None, lon=None, utm_zone=11, utm_letter="T", utm_epsg=32611),  # a zone without lat: no band check
    row(6, lat=0.0, lon=3.0, utm_zone=31, utm_letter="N", utm_epsg=32631),  # the equator is band N, northern
    row(7, lat=-0.5, lon=3.0, utm_zone=31, utm_letter="M", utm_epsg=32731),  # just south of it: M, southern
    row(8, lat=83.9, lon=20.0, utm_zone=33, utm_letter="X", utm_epsg=32633),  # band X spans 72..84 N
]


def run(audit: str, rows: list[dict]) -> list[dict]:
    con = duckdb.connect()
    con.execute((SQL_DIR / "core" / "_macros.sql").read_text())
    table = pa.Table.from_pylist(rows, schema=IMAGES)  # as given: no derived column, bad rows kept
    con.register("images_arrow", table)
    con.execute("create table images as select * from images_arrow")
    rel = con.sql((SQL_DIR / "tests" / f"{audit}.sql").read_text())
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_headers_name_what_they_return_and_need():
    for audit in AUDITS:
        lines = (SQL_DIR / "tests" / f"{audit}.sql").read_text().splitlines()
        assert lines[0].startswith("-- returns: ")
        assert "-- needs: images" in [line.strip() for line in lines if line.startswith("--")]


@pytest.mark.parametrize("audit", AUDITS)
def test_good_rows_pass(audit):
    assert run(audit, GOOD) == []


def test_duplicate_id():
    got = run("images_duplicate_id", [*GOOD, row(2, path="y/other.jpg")])
    assert [(r["image_id"], r["n"]) for r in got] == [(2, 2)]


@pytest.mark.parametrize("heading", [360.0, -0.5, -1e-9, 720.0, math.nan, math.inf, -math.inf])
def test_heading_out_of_range(heading):
    got = run("images_heading_out_of_range", [*GOOD, row(99, heading=heading)])
    assert [r["image_id"] for r in got] == [99]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"utm_zone": 0}, "zone not an integer in 1..60"),
        ({"utm_zone": 61}, "zone not an integer in 1..60"),
        ({"utm_letter": "I"}, "letter not one of C..X without I and O"),
        ({"utm_letter": "O"}, "letter not one of C..X without I and O"),
        ({"utm_letter": "Y"}, "letter not one of C..X without I and O"),
        ({"utm_letter": "s"}, "letter not one of C..X without I and O"),  # the catalog holds upper case
        ({"utm_letter": None}, "zone without a letter"),
        ({"utm_zone": None}, "letter without a zone"),
        ({"utm_letter": "T"}, "letter not the band of lat"),  # lat 37.77 is band S (32..40 N)
        ({"utm_letter": "H"}, "letter not the band of lat"),  # a southern letter on a northern point
        ({"lat": -37.77, "utm_letter": "S"}, "letter not the band of lat"),  # a northern letter, southern point
        ({"lat": 32.0001}, None),  # 1e-4 degrees inside band S: fine (a control, not a bad row)
        ({"lat": 31.9999}, "letter not the band of lat"),  # 1e-4 degrees into band R: beyond the 1e-5 tolerance
    ],
)
def test_bad_utm_zone(bad, problem):
    got = run("images_bad_utm_zone", [*GOOD, row(99, **bad)])
    assert [(r["image_id"], r["problem"]) for r in got] == ([] if problem is None else [(99, problem)])


@pytest.mark.parametrize(
    "bad",
    [
        {"utm_epsg": 32710},  # the other hemisphere of zone 10
        {"utm_epsg": 32611},  # another zone
        {"utm_epsg": None},  # a part written before the column existed
        {"utm_zone": None, "utm_letter": None, "utm_epsg": 32610, "lat": None},  # a code without a zone
        {"utm_epsg": 4326},  # not a UTM code at all
    ],
)
def test_utm_epsg_mismatch(bad):
    got = run("images_utm_epsg_mismatch", [*GOOD, row(99, **bad)])
    assert [(r["image_id"], r["utm_epsg"]) for r in got] == [(99, bad["utm_epsg"])]
    expected = None if bad.get("utm_zone", 10) is None else 32610  # zone 10, letter S: 32600 + 10
    assert got[0]["expected_utm_epsg"] == expected


def test_a_real_catalog_passes_every_images_audit(tmp_path):
    """Real Parquet parts written through the schema (utm_epsg derived there), read through the catalog view."""
    cat = tmp_path / "cat"
    cols = {k: [r[k] for r in GOOD] for k in ("image_id", "path", "lat", "lon", "utm_zone", "utm_letter", "heading")}
    atomic_write_table(cat / "images" / "database-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, "database", image_root="crops/database", source={"generated": True})
    con = Catalog(cat).connect()
    try:
        assert con.sql("select image_id, utm_epsg from images order by 1").fetchall() == [
            (r["image_id"], r["utm_epsg"]) for r in GOOD
        ]
        for audit in AUDITS:
            assert con.sql((SQL_DIR / "tests" / f"{audit}.sql").read_text()).fetchall() == [], audit
    finally:
        con.close()
