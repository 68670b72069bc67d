"""utm_epsg, the one key of a UTM coordinate system: Python helper and SQL macro against pyproj's EPSG
registry, the column a real build stores, and CosPlace classes keyed on it in two zones and both hemispheres."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from vgdata import geo
from vgdata.build import BuildConfig, build_catalog, register_collection
from vgdata.catalog import SQL_DIR, Catalog
from vgdata.fsio import atomic_write_table
from vgdata.names import make_name
from vgdata.schema import IMAGES, from_columns

utm = pytest.importorskip("utm")

ZONES = range(1, 61)
LETTERS = "CDEFGHJKLMNPQRSTUVWX"  # the 20 UTM latitude bands (no I, no O): C..M south, N..X north
PAIRS = [(z, south) for z in ZONES for south in (False, True)]


def pyproj_epsg(zone: int, south: bool) -> int:
    """The EPSG code PROJ's database gives a WGS 84 UTM definition."""
    params = {"proj": "utm", "zone": zone, "datum": "WGS84", **({"south": True} if south else {})}
    code = CRS.from_dict(params).to_epsg()
    assert code is not None
    return code


def macros() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute((SQL_DIR / "core" / "_macros.sql").read_text())
    return con


# ---------- the Python helper and the SQL macro, all 120 systems


def test_python_helper_matches_pyproj_for_all_120_systems():
    zones = np.array([z for z, _ in PAIRS])
    south = np.array([s for _, s in PAIRS])
    got = geo.utm_epsg(zones, ~south)
    assert got.dtype == np.int32
    assert got.tolist() == [pyproj_epsg(z, s) for z, s in PAIRS]
    for code, (z, s) in zip(got.tolist(), PAIRS, strict=True):  # and the registry's own name for the code
        assert CRS.from_epsg(code).name == f"WGS 84 / UTM zone {z}{'S' if s else 'N'}"


def test_python_helper_takes_band_letters():
    # every letter of every zone: C..M are southern, N..X northern, either case
    zones = np.repeat(np.arange(1, 61), len(LETTERS))
    letters = np.tile(np.array(list(LETTERS)), 60)
    expected = [pyproj_epsg(int(z), letter < "N") for z, letter in zip(zones, letters, strict=True)]
    assert geo.utm_epsg(zones, letters).tolist() == expected
    assert geo.utm_epsg(zones, np.char.lower(letters)).tolist() == expected
    with pytest.raises(geo.GeoError, match="not in"):
        geo.utm_epsg(10, "I")
    with pytest.raises(geo.GeoError, match="1..60"):
        geo.utm_epsg(61, "S")


def test_inverse_for_all_120_systems():
    codes = np.array([pyproj_epsg(z, s) for z, s in PAIRS])
    zone, northern = geo.utm_epsg_zone(codes)
    assert zone.tolist() == [z for z, _ in PAIRS]
    assert northern.tolist() == [not s for _, s in PAIRS]
    for bad in (32600, 32661, 32700, 32761, 4326, 0):
        with pytest.raises(geo.GeoError, match="not UTM EPSG codes"):
            geo.utm_epsg_zone(bad)


def test_sql_macro_equals_python_helper_for_all_120_systems():
    con = macros()
    rows = [(z, letter) for z in ZONES for letter in LETTERS + LETTERS.lower()]
    con.execute("create table t (zone smallint, letter varchar)")
    con.executemany("insert into t values (?, ?)", rows)
    got = con.sql("select zone, letter, utm_epsg(zone, letter) from t").fetchall()
    python = geo.utm_epsg([z for z, _ in rows], [letter for _, letter in rows]).tolist()
    assert [code for *_, code in got] == python
    assert {code for *_, code in got} == {pyproj_epsg(z, s) for z, s in PAIRS}  # all 120, nothing else
    inverse = con.sql(
        "select distinct e, utm_epsg_zone(e), utm_epsg_northern(e) from (select utm_epsg(zone, letter) as e from t)"
    ).fetchall()
    assert sorted(inverse) == sorted((pyproj_epsg(z, s), z, not s) for z, s in PAIRS)


@pytest.mark.parametrize(
    ("zone", "letter"),
    [(None, None), (None, "S"), (10, None), (0, "S"), (61, "S"), (10, "I"), (10, "O"), (10, "A"), (10, "Y"), (10, "")],
)
def test_sql_macro_is_null_without_a_valid_zone_and_letter(zone, letter):
    assert macros().execute("select utm_epsg(?::smallint, ?)", [zone, letter]).fetchone() == (None,)


def test_sql_inverse_is_null_for_other_codes():
    con = macros()
    for code in (None, 4326, 32600, 32661, 32700, 32761):
        assert con.execute("select utm_epsg_zone(?), utm_epsg_northern(?)", [code, code]).fetchone() == (None, None)


def test_from_columns_derives_the_column():
    t = from_columns(
        IMAGES,
        {"image_id": [1, 2, 3, 4], "utm_zone": [10, 56, None, 33], "utm_letter": ["S", "h", None, "N"],
         "utm_epsg": [None, None, None, 12345]},
    )  # fmt: skip
    # derived where zone and letter are both set; an explicit value is kept as given (the audit checks it)
    assert t.column("utm_epsg").to_pylist() == [pyproj_epsg(10, False), pyproj_epsg(56, True), None, 12345]
    assert t.schema.field("utm_epsg").type == pa.int32()


# ---------- a real build: two zones, both hemispheres


PLACES = {  # name: (lat, lon): two zones of each hemisphere
    "sf": (37.77166, -122.50995),  # 10N
    "reno": (39.52963, -119.81380),  # 11N
    "sydney": (-33.86785, 151.20732),  # 56S
    "lima": (-12.04637, -77.04279),  # 18S
}


def expected_epsg(lat: float, lon: float) -> int:
    """The one WGS 84 UTM CRS whose area of use holds the point, from PROJ's database."""
    found = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    codes = {int(c.code) for c in found if c.name.startswith("WGS 84 / UTM zone")}
    assert len(codes) == 1, codes
    return codes.pop()


TWIN_EN = ((500_005.0, 4_180_005.0), (500_006.0, 4_180_005.0))  # one 10 m cell, 1 m apart


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, int | None]]:
    """An '@' folder built into a catalog: 4 cities x 2 positions x 2 headings; "twins", the same two
    (east, north, heading) in zones 10 and 11 of both hemispheres; a name without a zone."""
    from PIL import Image

    root = tmp_path_factory.mktemp("epsg")
    images = root / "images"
    images.mkdir()
    expected: dict[str, int | None] = {}

    def add(lat: float, lon: float, e: float, n: float, zone: int, letter: str, pano: str, h: float) -> None:
        name = make_name(utm_east=e, utm_north=n, utm_zone=zone, utm_letter=letter, lat=lat, lon=lon,
                         pano_id=pano, heading=h, timestamp="201306")  # fmt: skip
        expected[name] = expected_epsg(lat, lon)

    for place, (lat0, lon0) in PLACES.items():
        for k, dlat in enumerate((0.0, 0.0001)):
            e, n, zone, letter = utm.from_latlon(lat0 + dlat, lon0)
            for h in (10.0, 100.0):
                add(lat0 + dlat, lon0, e, n, zone, letter, f"{place}{k}", h)
    for zone in (10, 11):
        for northern in (True, False):
            for k, (e, n) in enumerate(TWIN_EN):
                lat, lon = utm.to_latlon(e, n, zone, northern=northern)
                add(lat, lon, e, n, zone, utm.latitude_to_zone_letter(lat), f"twin{zone}{northern:d}{k}", 10.0)
    nordland = "@0000123.00@0000456.00@@@@@nord1@@90@@@@201306@@.jpg"  # dummy UTM, no zone: null utm_epsg
    expected[nordland] = None
    for i, name in enumerate(expected):
        Image.new("RGB", (8, 8), (i, 2 * i, 3 * i)).save(images / name)
    r = build_catalog(BuildConfig(root / "cat", images=images, workers=1))
    assert r.images == len(expected) and r.rejects == 0
    return root / "cat", expected


@pytest.mark.slow
def test_built_catalog_stores_utm_epsg_per_row(built):
    cat, expected = built
    parts = sorted((cat / "images").glob("database-*.parquet"))
    stored = pa.concat_tables(pq.read_table(p, columns=["path", "utm_epsg"]) for p in parts).to_pylist()
    assert {Path(r["path"]).name: r["utm_epsg"] for r in stored} == expected
    assert {v for v in expected.values() if v} == {32610, 32611, 32756, 32718, 32710, 32711}
    con = Catalog(cat).connect()
    try:
        viewed = dict(con.sql("select path, utm_epsg from images").fetchall())
        audit = (SQL_DIR / "tests" / "images_utm_epsg_mismatch.sql").read_text()
        assert con.sql(audit).fetchall() == []
    finally:
        con.close()
    assert {Path(p).name: v for p, v in viewed.items()} == expected


def test_classes_key_on_utm_epsg(built):
    """A reference keyed on the pyproj-derived code: classes never mix systems, and every image's class
    carries its own code (zone and northern are the same code spelled out)."""
    cat, expected = built
    con = Catalog(cat).connect()
    try:
        got = con.sql(
            "select path, utm_epsg, zone, northern, utm_east, utm_north, heading, class_e, class_n, class_h "
            "from cosplace_classes()"
        ).fetchall()
        kept = con.sql("select utm_epsg, zone, northern from cosplace_kept_classes(min_images_per_class := 2)")
        kept = kept.fetchall()
    finally:
        con.close()
    assert {Path(p).name: code for p, code, *_ in got} == expected
    ref: dict[tuple, set[str]] = {}
    for p, _code, _z, _nb, e, n, h, *_ in got:
        ref.setdefault((expected[Path(p).name], int(e // 10), int(n // 10), int(h // 30)), set()).add(p)
    ours: dict[tuple, set[str]] = {}
    for p, code, _z, _nb, _e, _n, _h, ce, cn, ch in got:
        ours.setdefault((code, ce, cn, ch), set()).add(p)
    assert ours == ref
    for _p, code, zone, northern, *_ in got:
        assert (zone, northern) == ((code % 100, code < 32700) if code else (0, True))
    assert len(kept) == sum(1 for paths in ref.values() if len(paths) >= 2)
    # the twins: one (east, north, heading) cell in four systems is four classes of two, not one of eight
    twins = {k: paths for k, paths in ours.items() if any("@twin" in p for p in paths)}
    assert sorted(k[0] for k in twins) == [32610, 32611, 32710, 32711]
    assert {len(paths) for paths in twins.values()} == {2} and len({k[1:] for k in twins}) == 1
    assert {code for code, *_ in kept} >= {32610, 32611, 32710, 32711}


def test_old_catalog_parts_without_the_column_are_flagged(tmp_path):
    """A catalog written before utm_epsg existed: its views still bind (the empty part is renewed with the
    full schema), the column reads null, and the audit names every such row (rebuild the collection)."""
    cat = tmp_path / "cat"
    old_schema = pa.schema([f for f in IMAGES if f.name != "utm_epsg"])
    (cat / "images").mkdir(parents=True)
    atomic_write_table(cat / "images" / "_empty.parquet", old_schema.empty_table())
    rows = {"image_id": [1, 2, 3], "path": ["a.jpg", "b.jpg", "c.jpg"], "collection": ["database"] * 3,
            "utm_zone": [10, 56, None], "utm_letter": ["S", "H", None]}  # fmt: skip
    old = pa.table({f.name: pa.array(rows.get(f.name, [None] * 3), type=f.type) for f in old_schema})
    atomic_write_table(cat / "images" / "database-000000.parquet", old)
    register_collection(cat, "database", image_root="crops/database", source={"generated": True})
    con = Catalog(cat).connect()
    try:
        audit = (SQL_DIR / "tests" / "images_utm_epsg_mismatch.sql").read_text()
        flagged = con.sql(f"select image_id, utm_epsg, expected_utm_epsg from ({audit}) order by 1").fetchall()
    finally:
        con.close()
    assert flagged == [(1, None, pyproj_epsg(10, False)), (2, None, pyproj_epsg(56, True))]
