"""Splits as views: SF-XL* / SF-XL** year splits, the test database and the val split, by value."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from raw_panoramas import make_raw_panoramas

from vgdata.build import BuildConfig, build_catalog, register_collection
from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.fsio import atomic_write_table
from vgdata.schema import IMAGES, from_columns
from vgdata.splits import (
    SFXL_STAR,
    SFXL_STAR_STAR,
    split_test,
    split_val,
    split_view_statements,
    split_years,
)
from vgdata.views import split_macros

YEARS = (2009, 2010, 2011, 2013, 2014, 2015, 2016, 2019, None)
BASE_E, BASE_N = 549_000.0, 4_180_000.0


def make_rows(seed: int = 0) -> list[dict]:
    """SF-like streets of panoramas (12 crops sharing a position and a year), plus edge cases.

    * panoramas every ~9 m along 24 streets in a 1.2 km square, zone 10S;
    * 15 panoramas in zone 11S at the same eastings/northings as zone-10 ones (other system);
    * 60 photos without pano_id (each its own panorama);
    * 10 rows without UTM coordinates (year 2013), never drawn by val.
    Years cycle through YEARS, so some are null.
    """
    rng = np.random.default_rng(seed)
    panos = []
    for s in range(24):
        offset, start = rng.uniform(0, 1200), rng.uniform(0, 800)
        for k in range(int(rng.integers(8, 30))):
            along = start + 9.0 * k + rng.normal(0, 1.5)
            e, n = (along, offset) if s % 2 == 0 else (offset, along)
            panos.append((BASE_E + e, BASE_N + n, 10, "S"))
    for e, n, _, _ in panos[:15]:
        panos.append((e, n, 11, "S"))
    rows = []
    for i, (e, n, zone, letter) in enumerate(panos):
        year = YEARS[i % len(YEARS)]
        for k in range(12):
            rows.append(_row(len(rows), f"p{i:04d}", e, n, zone, letter, year, 30.0 * k))
    for i in range(60):
        e, n = BASE_E + rng.uniform(0, 1200), BASE_N + rng.uniform(0, 1200)
        rows.append(_row(len(rows), None, e, n, 10, "S", YEARS[i % len(YEARS)], None))
    for _ in range(10):
        rows.append(_row(len(rows), None, None, None, None, None, 2013, None))
    return rows


def _row(i, pano_id, e, n, zone, letter, year, heading) -> dict:
    return {
        "image_id": 1_000_003 * (i + 1) % (2**61),
        "path": f"{i // 100:03d}/{i:06d}.jpg",
        "pano_id": pano_id,
        "utm_east": e,
        "utm_north": n,
        "utm_zone": zone,
        "utm_letter": letter,
        "heading": heading,
        "year": year,
        "timestamp": None if year is None else f"{year}06",
    }


def write_collection(cat: Path, collection: str, rows: list[dict]) -> None:
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    cols["collection"] = [collection] * len(rows)
    atomic_write_table(cat / "images" / f"{collection}-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, collection, image_root=f"crops/{collection}", source={"generated": True})


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return make_rows()


@pytest.fixture
def cat(tmp_path, rows) -> Path:
    """A fresh catalog: collection database (rows) and queries_v1 (24 rows: 12 of 2010, 12 of 2013)."""
    root = tmp_path / "cat"
    write_collection(root, "database", rows)
    other = [dict(r, image_id=r["image_id"] + 1, year=2010 if i < 12 else 2013) for i, r in enumerate(rows[:24])]
    write_collection(root, "queries_v1", other)
    return root


def ids(cat: Path, view: str) -> set[int]:
    con = Catalog(cat).connect()
    try:
        return {i for (i,) in con.sql(f'select image_id from "{view}"').fetchall()}
    finally:
        con.close()


def view_rows(cat: Path, view: str) -> list[dict]:
    con = Catalog(cat).connect()
    try:
        rel = con.sql(f'select * from "{view}"')
        return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    finally:
        con.close()


# ---------- year splits
def test_sfxl_star_is_after_2010_vs_the_rest(cat, rows):
    r = split_years(cat, name="sfxl_star", **SFXL_STAR)
    queries = {x["image_id"] for x in rows if x["year"] is not None and x["year"] >= 2011}
    database = {x["image_id"] for x in rows if x["year"] is not None and x["year"] <= 2010}
    assert ids(cat, "sfxl_star_queries") == queries
    assert ids(cat, "sfxl_star_database") == database
    assert r.counts == {"sfxl_star_database": len(database), "sfxl_star_queries": len(queries)}
    nulls = {x["image_id"] for x in rows if x["year"] is None}
    assert nulls and not nulls & (queries | database)
    assert len(queries) + len(database) + len(nulls) == len(rows)
    # the view has exactly the images columns, and the other collection never leaks in
    assert list(view_rows(cat, "sfxl_star_queries")[0]) == IMAGES.names
    assert {x["collection"] for x in view_rows(cat, "sfxl_star_database")} == {"database"}
    build = json.loads((cat / "build.json").read_text())
    assert build["splits"]["sfxl_star"] == {
        "macro": "year_split",
        "args": {"queries_from": 2011, "database_before": None, "coll": "database"},
        "views": {"sfxl_star_database": {"role": "database"}, "sfxl_star_queries": {"role": "queries"}},
    }


def test_sfxl_star_star_drops_2015_and_null_years(cat, rows):
    r = split_years(cat, name="sfxl_star_star", **SFXL_STAR_STAR)
    queries = {x["image_id"] for x in rows if x["year"] is not None and x["year"] >= 2016}
    database = {x["image_id"] for x in rows if x["year"] is not None and x["year"] <= 2014}
    neither = {x["image_id"] for x in rows if x["year"] in (2015, None)}
    assert ids(cat, "sfxl_star_star_queries") == queries
    assert ids(cat, "sfxl_star_star_database") == database
    assert {x["year"] for x in view_rows(cat, "sfxl_star_star_queries")} == {2016, 2019}
    assert {x["year"] for x in view_rows(cat, "sfxl_star_star_database")} == {2009, 2010, 2011, 2013, 2014}
    assert len(neither) == len(rows) - len(queries) - len(database) > 0
    assert r.counts["sfxl_star_star_queries"] == len(queries)


def test_year_split_on_another_collection(cat, rows):
    split_years(cat, name="q", queries_from=2013, database_before=2011, collection="queries_v1")
    assert ids(cat, "q_queries") == {x["image_id"] + 1 for x in rows[12:24]}
    assert ids(cat, "q_database") == {x["image_id"] + 1 for x in rows[:12]}
    with pytest.raises(UsageError, match="q2_queries would be empty.*2010-2013"):
        split_years(cat, name="q2", queries_from=2014, collection="queries_v1")


# ---------- test database
def test_test_database_is_one_year(cat, rows):
    r = split_test(cat)
    expected = {x["image_id"] for x in rows if x["year"] == 2013}
    assert ids(cat, "test_database") == expected
    assert r.counts == {"test_database": len(expected)}
    assert sum(1 for x in rows if x["year"] == 2013 and x["utm_east"] is None) == 10  # kept: no coordinates needed
    split_test(cat, name="test_2019", year=2019)
    assert ids(cat, "test_2019") == {x["image_id"] for x in rows if x["year"] == 2019}
    assert ids(cat, "test_database") == expected  # the first split is still there


# ---------- val: an independent reference of the procedure in val_split.sql
def _md5(*parts) -> str:
    text = ":".join(("true" if p else "false") if isinstance(p, bool) else str(p) for p in parts)
    return hashlib.md5(text.encode()).hexdigest()


def _panoramas(rows):
    """pano key -> (zone, is_south, mean east, mean north, rows) for rows with coordinates."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["utm_east"] is not None and r["utm_north"] is not None:
            key = f"p:{r['pano_id']}" if r["pano_id"] is not None else f"i:{r['image_id']}"
            groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        zone = min(r["utm_zone"] or 0 for r in rs)
        south = min(r["utm_letter"].upper() < "N" if r["utm_letter"] else False for r in rs)
        e = sum(r["utm_east"] for r in rs) / len(rs)
        n = sum(r["utm_north"] for r in rs) / len(rs)
        out[key] = (zone, south, e, n, rs)
    return out


def _cells(panos, side):
    cells: dict[tuple, list[str]] = {}
    for key, (zone, south, e, n, _) in panos.items():
        cells.setdefault((zone, south, math.floor(e / side), math.floor(n / side)), []).append(key)
    return cells


LADDER = [m * 10.0**k for k in range(7) for m in (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)]


def grid_reference(rows, size):
    """Largest ladder side with >= size pair cells, else the side with the most (largest of equals)."""
    panos = _panoramas(rows)
    pairs = {s: sum(len(v) >= 2 for v in _cells(panos, s).values()) for s in LADDER}
    enough = [s for s in LADDER if pairs[s] >= size]
    side = max(enough) if enough else max(LADDER, key=lambda s: (pairs[s], s))
    return side, pairs[side]


def val_reference(rows, size, seed, threshold, side, tries=8):
    panos = _panoramas(rows)
    cells = _cells(panos, side)
    pair_cells = [c for c, keys in cells.items() if len(keys) >= 2]
    chosen = sorted(pair_cells, key=lambda c: _md5(seed, "cell", *c))[:size]

    def close(a, b):
        return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 <= threshold * threshold

    queries, database = set(), set()
    for c in chosen:
        keys = sorted(cells[c], key=lambda k: _md5(seed, "query", k))
        best = min(
            (not close(panos[q][2:4], panos[d][2:4]), rank, _md5(seed, "database", d), q, d)
            for rank, q in enumerate(keys[:tries])
            for d in keys
            if d != q
        )
        q, d = best[3], best[4]
        qi = min(panos[q][4], key=lambda r: _md5(seed, "query", r["image_id"]))
        qpos = (qi["utm_east"], qi["utm_north"])
        di = min(
            panos[d][4],
            key=lambda r: (not close((r["utm_east"], r["utm_north"]), qpos), _md5(seed, "database", r["image_id"])),
        )
        queries.add(qi["image_id"])
        database.add(di["image_id"])
    return queries, database


def _key(r):
    return f"p:{r['pano_id']}" if r["pano_id"] is not None else f"i:{r['image_id']}"


def covered(queries: list[dict], database: list[dict], threshold: float) -> int:
    """Queries with a database image within threshold metres in the same zone and hemisphere."""
    n = 0
    for q in queries:
        same = [d for d in database if (d["utm_zone"], d["utm_letter"]) == (q["utm_zone"], q["utm_letter"])]
        e = np.array([d["utm_east"] for d in same])
        nn = np.array([d["utm_north"] for d in same])
        n += bool(((e - q["utm_east"]) ** 2 + (nn - q["utm_north"]) ** 2 <= threshold**2).any())
    return n


def test_val_values_match_the_reference(cat, rows):
    r = split_val(cat, size=60, seed=0)
    side, _ = grid_reference(rows, 60)
    assert r.params["grid_m"] == side
    queries, database = val_reference(rows, 60, 0, 25.0, side)
    assert ids(cat, "val_queries") == queries
    assert ids(cat, "val_database") == database
    assert r.counts == {"val_database": 60, "val_queries": 60} and not r.notes
    # the macro alone, from SQL: grid_m defaults to val_grid's choice
    con = Catalog(cat).connect()
    try:
        assert con.sql("select side_m from val_grid(size := 60)").fetchall() == [(side,)]
        got = con.sql("select image_id from val_split(role := 'database', size := 60)").fetchall()
    finally:
        con.close()
    assert {i for (i,) in got} == database


@pytest.mark.slow
def test_val_is_deterministic_disjoint_and_covered(cat, rows):
    a = split_val(cat, name="val_a", size=80, seed=7)
    split_val(cat, name="val_b", size=80, seed=7)
    c = split_val(cat, name="val_c", size=80, seed=8)
    assert ids(cat, "val_a_queries") == ids(cat, "val_b_queries")
    assert ids(cat, "val_a_database") == ids(cat, "val_b_database")
    assert ids(cat, "val_a_queries") != ids(cat, "val_c_queries")
    assert ids(cat, "val_a_database") != ids(cat, "val_c_database")
    assert len(ids(cat, "val_a_queries") & ids(cat, "val_c_queries")) < 40
    for name, result in (("val_a", a), ("val_c", c)):
        qs, ds = view_rows(cat, f"{name}_queries"), view_rows(cat, f"{name}_database")
        assert len(qs) == len(ds) == 80
        assert not {_key(x) for x in qs} & {_key(x) for x in ds}  # never the same panorama
        assert len({_key(x) for x in qs}) == len({_key(x) for x in ds}) == 80  # one image per panorama
        assert all(x["utm_east"] is not None for x in qs + ds)
        n = covered(qs, ds, 25.0)
        assert n == result.queries_with_positive
        print(f"{name}: {n}/80 = {n / 80:.3f} of val queries have a val database image within 25 m")
        assert n / 80 >= 0.95


def test_val_spreads_over_the_whole_area(cat, rows):
    panos = _panoramas(rows)
    cells100 = _cells(panos, 100.0)
    pair_cells = {c for c, v in cells100.items() if len(v) >= 2}
    # asking for as many pairs as there are 100 m cells with two panoramas gives the 100 m grid
    # and exactly one query and one database image in each of those cells
    r = split_val(cat, size=len(pair_cells), seed=3)
    assert r.params["grid_m"] == 100.0
    for view in r.views:
        got = [_cells({_key(x): panos[_key(x)]}, 100.0) for x in view_rows(cat, view)]
        assert sorted(next(iter(g)) for g in got) == sorted(pair_cells)
    # against a plain random draw of as many images: it reaches far fewer cells (dense streets
    # hold most images); the cells val misses are single panoramas, which cannot give a pair
    occupied = len(cells100)
    usable = [x for x in rows if x["utm_east"] is not None]
    rng = np.random.default_rng(0)
    random_cover = np.mean(
        [
            len({next(iter(_cells({_key(x): panos[_key(x)]}, 100.0))) for x in rng.choice(usable, len(pair_cells))})
            for _ in range(20)
        ]
    )
    print(f"val queries cover {len(pair_cells)}/{occupied} occupied 100 m cells, a random draw {random_cover:.1f}")
    assert len(pair_cells) >= 1.2 * random_cover
    assert all(len(cells100[c]) == 1 for c in set(cells100) - pair_cells)
    # a smaller val still puts every query in its own grid cell, and reaches most 100 m cells
    small = split_val(cat, name="small", size=40, seed=3)
    side = small.params["grid_m"]
    qs = view_rows(cat, "small_queries")
    assert len({next(iter(_cells({_key(x): panos[_key(x)]}, side))) for x in qs}) == 40
    spread = len({next(iter(_cells({_key(x): panos[_key(x)]}, 100.0))) for x in qs})
    assert spread >= 38


def test_val_takes_all_it_can_when_size_is_too_large(cat, rows):
    side, pairs = grid_reference(rows, 10_000)
    r = split_val(cat, name="big", size=10_000)
    assert r.params["grid_m"] == side
    assert r.counts == {"big_database": pairs, "big_queries": pairs} and pairs < 10_000
    assert r.notes and "only" in r.notes[0]
    queries, database = val_reference(rows, 10_000, 0, 25.0, side)
    assert ids(cat, "big_queries") == queries and ids(cat, "big_database") == database


def test_val_keeps_zones_apart(tmp_path):
    """Two panoramas at the same eastings in zones 10 and 11 are not a pair: no positive there."""
    rows = [_row(0, "a", BASE_E, BASE_N, 10, "S", 2013, 0.0), _row(1, "b", BASE_E, BASE_N, 11, "S", 2013, 0.0)]
    rows += [_row(2, "c", BASE_E + 5000, BASE_N, 10, "S", 2013, 0.0)]
    write_collection(tmp_path / "cat", "database", rows)
    r = split_val(tmp_path / "cat", size=5)
    assert r.counts == {"val_database": 1, "val_queries": 1}
    assert r.queries_with_positive == 0
    got = view_rows(tmp_path / "cat", "val_queries") + view_rows(tmp_path / "cat", "val_database")
    assert {x["utm_zone"] for x in got} == {10}


# ---------- persistence
@pytest.mark.slow
def test_splits_survive_write_views_and_a_moved_catalog(cat, tmp_path):
    split_years(cat, name="sfxl_star", **SFXL_STAR)
    split_test(cat)
    split_val(cat, size=30, seed=1)
    views = ["sfxl_star_database", "sfxl_star_queries", "test_database", "val_database", "val_queries"]
    before = {v: ids(cat, v) for v in views}
    Catalog(cat).write_views()
    assert {v: ids(cat, v) for v in views} == before
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.move(str(cat), str(moved))
    assert {v: ids(moved, v) for v in views} == before
    c = Catalog(moved)
    assert set(views) <= set(c.set_names())
    con = c.connect()
    try:
        rel = con.sql(f"select image_id from ({c.set_sql('val_queries')})")
        assert {i for (i,) in rel.fetchall()} == before["val_queries"]
    finally:
        con.close()


def test_redefining_a_split_replaces_it(cat, rows):
    split_years(cat, name="x", queries_from=2011)
    split_years(cat, name="x", queries_from=2016)
    assert ids(cat, "x_queries") == {r["image_id"] for r in rows if r["year"] is not None and r["year"] >= 2016}
    split_test(cat, name="x", year=2011)
    build = json.loads((cat / "build.json").read_text())
    assert build["splits"]["x"]["macro"] == "test_database" and build["splits"]["x"]["views"] == {"x": {}}
    con = Catalog(cat).connect()
    try:
        names = {v for (v,) in con.sql("select view_name from duckdb_views() where not internal").fetchall()}
    finally:
        con.close()
    assert "x" in names and "x_queries" not in names and "x_database" not in names


def test_split_view_statements_render_checked_literals():
    splits = {
        "s": {
            "macro": "year_split",
            "args": {"queries_from": 2016, "database_before": 2015, "coll": "db-1"},
            "views": {"s_database": {"role": "database"}, "s_queries": {"role": "queries"}},
        },
        "t": {"macro": "test_database", "args": {"coll": "database", "year": 2013}, "views": {"t": {}}},
        "v": {
            "macro": "val_split",
            "args": {"size": 5, "seed": 0, "threshold": 25, "grid_m": 1.5, "coll": "database"},
            "views": {"v_queries": {"role": "queries"}, "v_database": {"role": "database"}},
        },
    }
    # arguments in the order each macro declares its parameters (vgdata/sql/splits/*.sql), views by name
    assert split_view_statements(splits) == [
        'create or replace view "s_database" as select * from year_split('
        "role := 'database', queries_from := 2016, database_before := 2015, coll := 'db-1')",
        'create or replace view "s_queries" as select * from year_split('
        "role := 'queries', queries_from := 2016, database_before := 2015, coll := 'db-1')",
        "create or replace view \"t\" as select * from test_database(year := 2013, coll := 'database')",
        "create or replace view \"v_database\" as select * from val_split(role := 'database', size := 5, "
        "seed := 0, coll := 'database', threshold := cast('25.0' as double), grid_m := cast('1.5' as double))",
        "create or replace view \"v_queries\" as select * from val_split(role := 'queries', size := 5, "
        "seed := 0, coll := 'database', threshold := cast('25.0' as double), grid_m := cast('1.5' as double))",
    ]
    t = {"macro": "test_database", "args": {"year": 2013}, "views": {"x": {}}}
    bad = [
        {"x": {**t, "args": {"year": "2013"}}},  # an int parameter given a string
        {"x": {**t, "args": {"year": True}}},
        {"x": {**t, "args": {"year": 2013.0}}},
        {"x": {**t, "args": {"year": 2013, "coll": "a'b"}}},  # a name with a quote
        {"x": {**t, "args": {"year": 2013, "coll": 7}}},  # a string parameter given an int
        {"x y": t},  # split name
        {"x": {**t, "views": {'x"; drop view images; --': {}}}},  # view name
        {"x": {**t, "macro": "positives"}},  # a table macro, but not of sql/splits/
        {"x": {**t, "macro": "read_parquet"}},
        {"x": {**t, "macro": "val_split; drop view images"}},
        {"x": {**t, "args": {"year": 2013, "extra": 1}}},  # not a parameter of the macro
        {"x": {**t, "args": {"year": 2013, "coll; drop": "database"}}},
        {"x": {**t, "args": {"year": 2013}, "views": {"x": {"year": 2014}}}},  # per-view repeats args
        {"x": {**t, "views": {}}},
        {"x": {**t, "views": ["x"]}},
        {"x": {**t, "kind": "test"}},  # unknown key
        {"x": {"macro": "val_split", "args": {"size": 5, "threshold": float("nan")}, "views": {"x": {}}}},
        {"x": {"macro": "val_split", "args": {"size": 5, "grid_m": [1]}, "views": {"x": {}}}},
        {"x": t, "y": {**t, "views": {"X": {}}}},  # one view defined by two splits
        {"x": {"kind": "months", "params": {}}},  # old form of an unknown kind: not converted, refused
        {"x": {"kind": "test", "params": {"year": 2013, "extra": 1}}},
    ]
    for splits in bad:
        with pytest.raises(UsageError):
            split_view_statements(splits)


def test_split_macros_are_read_from_the_shipped_sql_files(tmp_path):
    """The allowlist is what vgdata/sql/splits/ defines (every table macro there), parameters typed by default."""
    shipped = sorted(p.stem for p in (Path(__file__).parents[1] / "vgdata" / "sql" / "splits").glob("*.sql"))
    assert sorted(split_macros()) == shipped  # one table macro per file, named after it
    assert split_macros()["year_split"] == {
        "role": "name",
        "queries_from": "int",
        "database_before": "any",
        "coll": "name",
    }
    (tmp_path / "a.sql").write_text(
        "-- create or replace macro in_a_comment(x := 1) as table select 1;\n"
        "create or replace macro scalar_one(x := 1) as (x + 1);\n"
        "create or replace macro positional(x, y := 2) as table select x, y;\n"
        "create macro t(a := 'it''s', b := 2.5, c := (1 + 2), d := -3) as table select 1;\n"
    )
    assert split_macros(tmp_path) == {"t": {"a": "name", "b": "float", "c": "any", "d": "int"}}


@pytest.mark.slow
def test_old_form_build_json_is_read_and_converted(cat, rows):
    """A build.json of the previous format ({kind, params, views}) still gives the same views."""
    split_years(cat, name="y", queries_from=2016, database_before=2015)
    split_test(cat, name="t", year=2013)
    split_val(cat, name="v", size=5, seed=3)
    new_build = json.loads((cat / "build.json").read_text())
    grid_m = new_build["splits"]["v"]["args"]["grid_m"]
    before = {view: ids(cat, view) for view in ("y_database", "y_queries", "t", "v_database", "v_queries")}
    old = dict(new_build)
    old["splits"] = {  # exactly what the previous version wrote
        "t": {"kind": "test", "params": {"collection": "database", "year": 2013}, "views": ["t"]},
        "v": {
            "kind": "val",
            "params": {"collection": "database", "grid_m": grid_m, "seed": 3, "size": 5, "threshold": 25.0},
            "views": ["v_database", "v_queries"],
        },
        "y": {
            "kind": "years",
            "params": {"collection": "database", "database_before": 2015, "queries_from": 2016},
            "views": ["y_database", "y_queries"],
        },
    }
    (cat / "build.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    (cat / "catalog.duckdb").unlink()
    catalog = Catalog(cat)
    assert catalog.load_build()["splits"] == new_build["splits"]  # converted on load, to what we write now
    assert catalog.set_names() == sorted(["database", "queries_v1", *before])
    assert {view: ids(cat, view) for view in before} == before
    # the next writer stores the new form
    split_test(cat, name="t2", year=2014)
    stored = json.loads((cat / "build.json").read_text())["splits"]
    assert stored["y"] == new_build["splits"]["y"] and stored["t2"]["macro"] == "test_database"


# ---------- usage errors, and nothing stored when one is raised
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: split_years(c, name="bad name", queries_from=2011), "split name must be letters"),
        (lambda c: split_years(c, name="y", queries_from="2011"), "queries_from must be a whole number"),
        (lambda c: split_years(c, name="y", queries_from=2011.0), "queries_from must be a whole number"),
        (lambda c: split_years(c, name="y", queries_from=2016, database_before=2017), "database_before"),
        (lambda c: split_years(c, name="y", queries_from=2030), "y_queries would be empty.*2009-2019"),
        (lambda c: split_years(c, name="y", queries_from=2011, collection="nope"), "no collection 'nope'"),
        (lambda c: split_test(c, year=1999), "no images of 1999"),
        (lambda c: split_test(c, year="2013"), "year must be a whole number"),
        (lambda c: split_test(c, name="queries_v1"), "taken by collection 'queries_v1'"),
        (lambda c: split_test(c, name="Images"), "taken by the catalog view"),
        (lambda c: split_val(c, size=0), "size must be >= 1"),
        (lambda c: split_val(c, size=10, threshold=-1), "threshold must be > 0"),
        (lambda c: split_val(c, size=10, seed=1.5), "seed must be a whole number"),
        (lambda c: split_val(c, size=10, collection="queries_v1", grid_m=float("inf")), "grid_m must be a finite"),
    ],
)
def test_usage_errors(cat, call, message):
    before = (cat / "build.json").read_text()
    with pytest.raises(UsageError, match=message):
        call(cat)
    assert (cat / "build.json").read_text() == before


def test_view_names_of_two_splits_may_not_collide(cat):
    split_years(cat, name="a", queries_from=2011)
    with pytest.raises(UsageError, match="taken by a view of split 'a'"):
        split_test(cat, name="A_queries")


def test_val_needs_two_panoramas_with_coordinates(tmp_path):
    rows = [_row(i, "one", BASE_E, BASE_N, 10, "S", 2013, 30.0 * i) for i in range(12)]
    rows.append(_row(12, None, None, None, None, None, 2013, None))
    write_collection(tmp_path / "cat", "database", rows)
    with pytest.raises(UsageError, match="at least two panoramas"):
        split_val(tmp_path / "cat", size=3)
    assert "splits" not in json.loads((tmp_path / "cat" / "build.json").read_text())


@pytest.mark.slow
def test_splits_on_a_built_catalog(tmp_path):
    """The real path: panoramas cut into crops by build-catalog, years from the CSV timestamps."""
    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=10, width=416, years=(2009, 2011, 2013, 2016, 2019))
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    con = Catalog(cat).connect()
    try:
        images = dict(con.sql("select image_id, year from images").fetchall())
    finally:
        con.close()
    assert len(images) == 120
    star = split_years(cat, name="sfxl_star", **SFXL_STAR)
    assert ids(cat, "sfxl_star_queries") == {i for i, y in images.items() if y >= 2011}
    assert star.counts == {"sfxl_star_database": 24, "sfxl_star_queries": 96}
    star2 = split_years(cat, name="sfxl_star_star", **SFXL_STAR_STAR)
    assert star2.counts == {"sfxl_star_star_database": 72, "sfxl_star_star_queries": 48}
    assert split_test(cat).counts == {"test_database": 24}
    val = split_val(cat, size=3, seed=0)  # 10 panoramas 5 m apart on a line
    assert val.counts == {"val_database": 3, "val_queries": 3} and val.queries_with_positive == 3
    # adding a collection rebuilds build.json and the views: the splits stay
    before = ids(cat, "val_queries")
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1, collection="again"))
    assert ids(cat, "val_queries") == before
    assert len(ids(cat, "val_queries")) == 3 and set(Catalog(cat).set_names()) >= {"test_database", "val_queries"}
