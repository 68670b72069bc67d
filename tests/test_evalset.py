"""eval_set: positives against a brute-force oracle, the manifest's layout and metadata, reuse, errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vgdata.build import BuildConfig, build_catalog, register_collection
from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.evalset import EVAL_SCHEMA, eval_schema, eval_set, eval_table, positive_pairs
from vgdata.fsio import atomic_write_table
from vgdata.schema import IMAGES, from_columns

E0, N0 = 500_000.0, 4_180_000.0  # a point in San Francisco's zone 10S, on a 25 m cell corner


def add_collection(cat: Path, collection: str, rows: list[dict]) -> None:
    """Write one images part of ``rows`` (missing columns null) and register it."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in IMAGES}
    columns["collection"] = [collection] * len(rows)
    atomic_write_table(cat / "images" / f"{collection}-000000.parquet", from_columns(IMAGES, columns))
    register_collection(cat, collection, image_root=f"crops/{collection}", source={"generated": True})


def img(image_id: int, path: str, e: float | None, n: float | None, zone: int | None = 10, letter: str | None = "S"):
    return {
        "image_id": image_id,
        "path": path,
        "utm_east": e,
        "utm_north": n,
        "utm_zone": zone,
        "utm_letter": letter,
        "heading": float(image_id % 360),
        "width": 512,
        "height_px": 512,
    }


def brute_force(db: list[dict], queries: list[dict], threshold: float) -> list[list[int]]:
    """Positives by the definition, over all pairs: same (zone, hemisphere), dx^2 + dy^2 <= t^2."""

    def ordered(rows):
        return sorted(rows, key=lambda r: (r["path"], r["image_id"]))

    def system(r):
        zone = r["utm_zone"] if r["utm_zone"] is not None else 0
        return zone, r["utm_letter"] is not None and r["utm_letter"] < "N"

    def coords(rows):
        return np.array([[np.nan if r[c] is None else r[c] for c in ("utm_east", "utm_north")] for r in rows])

    db = ordered(db)
    xy = coords(db)
    systems = [system(r) for r in db]
    out = []
    for q in ordered(queries):
        qx, qy = coords([q])[0]
        d2 = (xy[:, 0] - qx) * (xy[:, 0] - qx) + (xy[:, 1] - qy) * (xy[:, 1] - qy)
        same = np.array([s == system(q) for s in systems], dtype=bool)
        out.append(np.flatnonzero(same & np.isfinite(d2) & (d2 <= threshold * threshold)).tolist())
    return out


def query_positives(table: pa.Table) -> list[list[int]]:
    rows = table.to_pylist()
    return [r["positives"] for r in rows if r["role"] == "query"]


# The hand-made cases, with why each database image is or is not a positive of q_sf (at E0, N0).
DB_CASES = [
    img(1, "d/01.jpg", E0 + 25.0, N0),  # exactly 25.000 m east: positive (inclusive)
    img(2, "d/02.jpg", E0 + 15.0, N0 + 20.0),  # 15-20-25 triangle, exactly 25 m: positive
    img(3, "d/03.jpg", E0, N0 + 25.01),  # 25.01 m: not
    img(4, "d/04.jpg", E0 - 10.0, N0 - 10.0),  # neighbouring cell (-1, -1), 14.1 m: positive
    img(5, "d/05.jpg", E0, N0, zone=11),  # same numbers, zone 11: not
    img(6, "d/06.jpg", E0, N0, letter="H"),  # same numbers, southern hemisphere: not
    img(7, "d/07.jpg", E0 + 24.0, N0 + 24.0),  # 33.9 m, two cells away diagonally: not
    img(8, "d/08.jpg", E0 - 25.0, N0),  # exactly 25 m west, across the cell line: positive
    # no zone (Nordland-style dummy coordinates), around the origin, negative cells
    img(20, "n/20.jpg", 5.0, -10.0, zone=None, letter=None),  # cell (0, -1) vs the query's (-1, -1), 15 m: positive
    img(21, "n/21.jpg", -30.0, -10.0, zone=None, letter=None),  # cell -2, 20 m: positive
    img(22, "n/22.jpg", -10.0, 15.5, zone=None, letter=None),  # 25.5 m: not
    img(23, "n/23.jpg", -10.0, -10.0, zone=10),  # same numbers in zone 10: not
    img(24, "n/24.jpg", None, None, zone=None, letter=None),  # no coordinates: nobody's positive
]
Q_CASES = [
    img(101, "q/a_sf.jpg", E0, N0),
    img(102, "q/b_none.jpg", E0 + 5000.0, N0),  # nothing within 25 m
    img(103, "q/c_nordland.jpg", -10.0, -10.0, zone=None, letter=None),
    img(104, "q/d_nocoords.jpg", None, None),
]
EXPECTED_IDS = {  # database image_ids that are positives of each query
    101: {1, 2, 4, 8},
    102: set(),
    103: {20, 21},
    104: set(),
}


@pytest.fixture
def cases(tmp_path) -> Path:
    cat = tmp_path / "cat"
    add_collection(cat, "database", DB_CASES)
    add_collection(cat, "queries_v1", Q_CASES)
    return cat


def test_positives_hand_made_cases(cases):
    table = eval_table(cases, database="database", queries="queries_v1")
    rows = table.to_pylist()
    db_ids = [r["image_id"] for r in rows if r["role"] == "database"]
    got = {r["image_id"]: {db_ids[i] for i in r["positives"]} for r in rows if r["role"] == "query"}
    assert got == EXPECTED_IDS
    assert query_positives(table) == brute_force(DB_CASES, Q_CASES, 25.0)
    assert query_positives(table)[1] == []  # an empty list, not null


def test_positive_pairs_grain_and_distance(cases):
    pairs = positive_pairs(cases, database="database", queries="queries_v1").to_pylist()
    keys = [(p["query_image_id"], p["database_image_id"]) for p in pairs]
    assert len(keys) == len(set(keys))  # one row per pair
    assert sorted(keys) == sorted((q, d) for q, ds in EXPECTED_IDS.items() for d in ds)
    dist = {(p["query_image_id"], p["database_image_id"]): p["distance_m"] for p in pairs}
    assert dist[(101, 1)] == 25.0 and dist[(101, 2)] == 25.0
    assert dist[(101, 4)] == pytest.approx(math.hypot(10, 10))
    assert dist[(103, 20)] == 15.0


def _random_rows(rng, n: int, first_id: int, prefix: str) -> list[dict]:
    rows = []
    for k in range(n):
        zone, letter = [(10, "S"), (10, "S"), (10, "S"), (11, "S"), (10, "H"), (None, None)][rng.integers(6)]
        base_e, base_n = (0.0, 0.0) if zone is None else (E0, N0)
        if k % 2:  # integer metres: many pairs at exactly 25 m (25-0, 15-20, 7-24) and on cell lines
            e, n_ = base_e + float(rng.integers(-120, 120)), base_n + float(rng.integers(-120, 120))
        else:
            e, n_ = base_e + rng.uniform(-120, 120), base_n + rng.uniform(-120, 120)
        if k % 37 == 5:
            e, n_ = None, None
        path = f"{prefix}/{rng.integers(0, n // 2):05d}.jpg"  # repeated paths: image_id breaks the tie
        rows.append(img(first_id + k, path, e, n_, zone=zone, letter=letter))
    return rows


@pytest.mark.parametrize("threshold", [25.0, 10.0, 60.5])
def test_positives_match_brute_force(tmp_path, threshold):
    rng = np.random.default_rng(7)
    db = _random_rows(rng, 800, 1, "db")
    queries = _random_rows(rng, 120, 10_000, "q")
    cat = tmp_path / "cat"
    add_collection(cat, "database", db)
    add_collection(cat, "queries_v1", queries)
    table = eval_table(cat, database="database", queries="queries_v1", threshold=threshold)
    expected = brute_force(db, queries, threshold)
    assert query_positives(table) == expected
    assert sum(map(len, expected)) > 100 and any(not p for p in expected)  # the data tests both cases
    if threshold == 25.0:  # ties at exactly 25 m are in the data and are kept
        ordered = sorted(db, key=lambda r: (r["path"], r["image_id"]))
        q_ordered = sorted(queries, key=lambda r: (r["path"], r["image_id"]))
        ties = [
            (q, ordered[i])
            for q, pos in zip(q_ordered, expected, strict=True)
            for i in pos
            if q["utm_east"] is not None
            and (ordered[i]["utm_east"] - q["utm_east"]) ** 2 + (ordered[i]["utm_north"] - q["utm_north"]) ** 2 == 625
        ]
        assert ties


def test_eval_set_over_split_views(tmp_path):
    """Year-split views are sets too; redefining the split changes its fingerprint (no reuse)."""
    from vgdata.splits import split_years

    rng = np.random.default_rng(3)
    rows = _random_rows(rng, 400, 1, "db")
    for k, r in enumerate(rows):
        r["year"] = 2010 + k % 10
    cat = tmp_path / "cat"
    add_collection(cat, "database", rows)
    split_years(cat, name="sfxl", queries_from=2016)

    r = eval_set(cat, name="years", database="sfxl_database", queries="sfxl_queries")
    db = [x for x in rows if x["year"] < 2016]
    queries = [x for x in rows if x["year"] >= 2016]
    assert (r.n_database, r.n_queries) == (len(db), len(queries))
    assert query_positives(pq.read_table(r.manifest)) == brute_force(db, queries, 25.0)
    assert eval_set(cat, name="years", database="sfxl_database", queries="sfxl_queries").reused

    split_years(cat, name="sfxl", queries_from=2018)
    again = eval_set(cat, name="years", database="sfxl_database", queries="sfxl_queries")
    assert (again.reused, again.n_queries) == (False, sum(x["year"] >= 2018 for x in rows))


def test_table_layout_and_idx_order(cases):
    table = eval_table(cases, database="database", queries="queries_v1")
    assert table.schema == eval_schema([25.0])  # EVAL_SCHEMA + positives_25m (manifest format 4)
    rows = table.to_pylist()
    roles = [r["role"] for r in rows]
    assert roles == ["database"] * len(DB_CASES) + ["query"] * len(Q_CASES)
    for role, source in (("database", DB_CASES), ("query", Q_CASES)):
        mine = [r for r in rows if r["role"] == role]
        assert [r["idx"] for r in mine] == list(range(len(source)))
        expected = sorted(source, key=lambda r: (r["path"], r["image_id"]))
        assert [r["image_id"] for r in mine] == [r["image_id"] for r in expected]
        assert [r["path"] for r in mine] == [r["path"] for r in expected]
    db_rows = [r for r in rows if r["role"] == "database"]
    assert all(r["positives"] is None for r in db_rows)
    assert {r["collection"] for r in db_rows} == {"database"}
    first = db_rows[0]  # d/01.jpg
    assert (first["utm_east"], first["utm_north"], first["utm_zone"]) == (E0 + 25.0, N0, 10)
    assert (first["heading"], first["width"], first["height_px"]) == (1.0, 512, 512)
    for q in (r for r in rows if r["role"] == "query"):
        assert q["positives"] == sorted(q["positives"])


def test_idx_ties_broken_by_image_id(tmp_path):
    cat = tmp_path / "cat"
    add_collection(cat, "database", [img(9, "same.jpg", E0, N0), img(3, "same.jpg", E0, N0), img(5, "a.jpg", E0, N0)])
    add_collection(cat, "queries_v1", [img(50, "q.jpg", E0 + 1, N0)])
    rows = eval_table(cat, database="database", queries="queries_v1").to_pylist()
    assert [(r["idx"], r["image_id"]) for r in rows if r["role"] == "database"] == [(0, 5), (1, 3), (2, 9)]
    assert rows[-1]["positives"] == [0, 1, 2]


def test_eval_set_writes_manifest_with_metadata(cases):
    r = eval_set(cases, name="v1", database="database", queries="queries_v1")
    assert r.manifest == cases / "manifests" / "eval_v1.parquet"
    assert (r.n_database, r.n_queries, r.queries_without_positives, r.reused) == (13, 4, 2, False)
    assert r.mean_positives == pytest.approx((4 + 0 + 2 + 0) / 4)

    table = pq.read_table(r.manifest)  # what vgtrain does: pyarrow only
    assert table.column_names == [*EVAL_SCHEMA.names, "positives_25m"]
    assert table.schema.field("idx").type == pa.int32()
    assert table.schema.field("positives").type.value_type == pa.int32()
    assert query_positives(table) == brute_force(DB_CASES, Q_CASES, 25.0)

    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    build = json.loads((cases / "build.json").read_text())
    assert meta["vgdata.kind"] == "eval"
    assert meta["vgdata.catalog_fingerprint"] == build["fingerprint"]
    roots = json.loads(meta["vgdata.image_roots"])
    assert roots == {"database": "crops/database", "queries_v1": "crops/queries_v1"}  # relative to the catalog
    assert meta["vgdata.manifest_format"] == "4"
    assert meta["vgdata.catalog_location"] == str(cases.resolve())
    params = json.loads(meta["vgdata.params"])
    assert params == {
        "database": "database",
        "queries": "queries_v1",
        "threshold": 25.0,
        "thresholds": [25.0],
        "database_fingerprint": build["collections"]["database"]["fingerprint"],
        "queries_fingerprint": build["collections"]["queries_v1"]["fingerprint"],
        "n_database": 13,
        "n_queries": 4,
        "queries_without_positives": 2,
        "mean_positives": 1.5,
        "by_threshold": {"25": {"queries_without_positives": 2, "mean_positives": 1.5}},
    }
    # every path resolves against its collection's root as vgtrain will join them: <manifest folder>/../<root>
    first = table.slice(0, 1).to_pylist()[0]
    assert r.manifest.parent.parent / roots[first["collection"]] / first["path"] == cases / "crops/database/d/01.jpg"


def test_eval_set_reuses_then_rebuilds_on_change(cases):
    first = eval_set(cases, name="v1", database="database", queries="queries_v1")
    stamp = os.stat(first.manifest).st_mtime_ns

    again = eval_set(cases, name="v1", database="database", queries="queries_v1", threshold=25)
    assert again.reused is True
    assert os.stat(again.manifest).st_mtime_ns == stamp
    assert (again.n_database, again.n_queries, again.queries_without_positives, again.mean_positives) == (
        first.n_database,
        first.n_queries,
        first.queries_without_positives,
        first.mean_positives,
    )

    wider = eval_set(cases, name="v1", database="database", queries="queries_v1", threshold=40.0)
    assert wider.reused is False
    assert json.loads(pq.read_schema(wider.manifest).metadata[b"vgdata.params"])["threshold"] == 40.0
    assert wider.mean_positives > first.mean_positives

    add_collection(cases, "queries_v2", [img(200, "q2.jpg", E0, N0)])  # catalog fingerprint changes
    changed = eval_set(cases, name="v1", database="database", queries="queries_v1", threshold=40.0)
    assert changed.reused is False
    assert eval_set(cases, name="v1", database="database", queries="queries_v1", threshold=40.0).reused

    other = eval_set(cases, name="v1", database="database", queries="queries_v2", threshold=40.0)
    assert (other.reused, other.n_queries, other.mean_positives) == (
        False,
        1,
        6,
    )  # 01-04, 07, 08 within 40 m; 05, 06 other systems


def test_stale_catalog_duckdb_is_rebuilt(cases):
    """A catalog.duckdb made before the eval macros existed is rebuilt (Catalog.connect)."""
    db_file = Catalog(cases).duckdb_path
    db_file.unlink()
    con = duckdb.connect(str(db_file))
    con.execute(f"set file_search_path = '{cases.resolve()}'")
    con.execute("create view images as select * from read_parquet('images/*.parquet', union_by_name = true)")
    con.close()
    con = duckdb.connect(str(db_file), read_only=True)
    assert con.sql("select count(*) from duckdb_functions() where function_name = 'eval_set'").fetchall() == [(0,)]
    con.close()
    r = eval_set(cases, name="v1", database="database", queries="queries_v1")
    assert (r.n_queries, r.queries_without_positives) == (4, 2)


def test_outdated_macros_are_replaced(cases):
    """A catalog.duckdb with outdated macros is rebuilt, so an old ``positives`` never runs."""
    db_file = Catalog(cases).duckdb_path
    db_file.unlink()
    con = duckdb.connect(str(db_file))
    con.execute(f"set file_search_path = '{cases.resolve()}'")
    con.execute("create view images as select * from read_parquet('images/*.parquet', union_by_name = true)")
    con.execute("create macro positives(a, b, threshold := 25.0) as table select 1 as query_image_id where false")
    con.execute("create macro eval_set(a, b, threshold := 25.0) as table select 1 as role where false")
    con.close()
    table = eval_table(cases, database="database", queries="queries_v1")
    assert query_positives(table) == brute_force(DB_CASES, Q_CASES, 25.0)


@pytest.mark.parametrize("name", ["", "a/b", "x y", "v1\n", "../up", "é"])
def test_bad_name(cases, name):
    with pytest.raises(UsageError, match="name must be letters, digits") as e:
        eval_set(cases, name=name, database="database", queries="queries_v1")
    assert "\n" not in str(e.value).replace(repr(name), "")


@pytest.mark.parametrize("threshold", [0, -1.0, math.nan, math.inf, "25", True, None])
def test_bad_threshold(cases, threshold):
    with pytest.raises(UsageError, match="threshold must be") as e:
        eval_set(cases, name="v1", database="database", queries="queries_v1", threshold=threshold)
    assert "\n" not in str(e.value)


def test_unknown_and_empty_sets(cases, tmp_path):
    with pytest.raises(UsageError, match="no collection or split named 'queries_v9'.*have: database, queries_v1"):
        eval_set(cases, name="v1", database="database", queries="queries_v9")
    with pytest.raises(UsageError, match="no collection or split named 'db'"):
        eval_set(cases, name="v1", database="db", queries="queries_v1")
    add_collection(cases, "empty", [])
    with pytest.raises(UsageError, match="queries set 'empty' of .* has no images") as e:
        eval_set(cases, name="v1", database="database", queries="empty")
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="database set 'empty'"):
        eval_set(cases, name="v1", database="empty", queries="queries_v1")
    assert not (cases / "manifests" / "eval_v1.parquet").exists()
    with pytest.raises(UsageError, match="is not a catalog"):
        eval_set(tmp_path / "nothing", name="v1", database="database", queries="queries_v1")


def test_real_catalog_each_image_is_its_own_positive(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    r = eval_set(cat, name="self", database="database", queries="database")
    assert (r.n_database, r.n_queries, r.queries_without_positives) == (72, 72, 0)

    table = pq.read_table(r.manifest)
    rows = table.to_pylist()
    db_rows, q_rows = rows[:72], rows[72:]
    assert [q["image_id"] for q in q_rows] == [d["image_id"] for d in db_rows]  # same order in both roles
    for q in q_rows:
        assert q["idx"] in q["positives"]  # distance 0
        # the 12 crops of one panorama share its position, so they are all positives of each other
        same_pano = [d["idx"] for d in db_rows if (d["utm_east"], d["utm_north"]) == (q["utm_east"], q["utm_north"])]
        assert len(same_pano) == 12 and set(same_pano) <= set(q["positives"])
    images = pq.read_table(sorted((cat / "images").glob("database-*.parquet"))).to_pylist()
    assert query_positives(table) == brute_force(images, images, 25.0)
    assert r.mean_positives == pytest.approx(sum(len(q["positives"]) for q in q_rows) / 72)
    root = Path(r.manifest).parent.parent / json.loads(table.schema.metadata[b"vgdata.image_roots"])["database"]
    assert all((root / d["path"]).is_file() for d in db_rows)


def test_recall_on_the_hand_made_cases(cases):
    """Recall@N (vgtrain.recall.recalls) on these positives: a positive at exactly 25 m counts, a
    query without positives stays in the denominator, a 25.5 m neighbour does not count."""
    from vgtrain.recall import recalls

    rows = eval_table(cases, database="database", queries="queries_v1").to_pylist()
    db_ids = [r["image_id"] for r in rows if r["role"] == "database"]
    queries = [r for r in rows if r["role"] == "query"]
    ranked = {  # database image_ids in predicted order, per query image_id
        101: [1, 3, 5, 6, 7],  # exactly 25 m east at rank 1: found at R@1
        102: [1, 2, 4, 8, 20],  # no positive exists: never found, still counted
        103: [22, 23, 21, 24, 3],  # 25.5 m, zone 10, then 20 m (cell -2) at rank 3: found at R@5
        104: [20, 21, 1, 2, 4],  # no coordinates: no positives
    }
    preds = np.array([[db_ids.index(i) for i in ranked[q["image_id"]]] for q in queries])
    positives = [np.array(q["positives"], dtype=np.int64) for q in queries]
    assert recalls(preds, positives, (1, 2, 5)) == {1: 25.0, 2: 25.0, 5: 50.0}
