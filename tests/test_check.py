"""`vgdata check` and the SQL audits: each audit passes on a real catalog and catches a broken relation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.build import register_collection
from vgdata.catalog import Catalog, sql_files
from vgdata.check import AuditFailed, audit_groups, check_catalog, load_audits, run_audit
from vgdata.evalset import eval_set
from vgdata.fsio import atomic_write_table
from vgdata.groups import GroupsConfig, split_groups
from vgdata.schema import IMAGES, from_columns
from vgdata.splits import split_val, split_years

runner = CliRunner()
AUDITS = {a.name: a for a in load_audits()}
GROUPS = {"m": 10.0, "alpha": 30.0, "n": 5, "l": 2, "min_images_per_class": 10, "groups_num": 2, "coll": "database"}


def write_images(cat: Path, collection: str, rows: list[dict]) -> None:
    cols = {k: [r.get(k) for r in rows] for k in rows[0]}
    atomic_write_table(cat / "images" / f"{collection}-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, collection, image_root=f"crops/{collection}", source={"generated": True})


def database_rows() -> list[dict]:
    """40 panoramas 7 m apart along two streets, 12 crops each (30 degrees apart), years 2010-2019."""
    rows = []
    for p in range(40):
        e, n = 543_000.0 + 7 * (p % 20), 4_180_000.0 + 60 * (p // 20)
        for k in range(12):
            rows.append(
                {
                    "image_id": 1000 + 12 * p + k,
                    "path": f"db/p{p:02d}_{k:02d}.jpg",
                    "collection": "database",
                    "pano_id": f"p{p:02d}",
                    "utm_east": e,
                    "utm_north": n,
                    "utm_zone": 10,
                    "utm_letter": "S",
                    "heading": 30.0 * k + 5,
                    "lat": 37.7,
                    "lon": -122.4,
                    "year": 2010 + p % 10,
                }
            )
    return rows


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """A registered catalog with a groups manifest, an eval manifest, a year split and a val split."""
    cat = tmp_path_factory.mktemp("check") / "cat"
    write_images(cat, "database", database_rows())
    queries = [
        {"image_id": 1, "path": "q/a.jpg", "collection": "queries_v1", "utm_east": 543_003.0,
         "utm_north": 4_180_004.0, "utm_zone": 10, "utm_letter": "S", "lat": 37.7, "lon": -122.4},
        {"image_id": 2, "path": "q/b.jpg", "collection": "queries_v1", "utm_east": 543_500.0,
         "utm_north": 4_180_000.0, "utm_zone": 10, "utm_letter": "S", "lat": 37.7, "lon": -122.4},
    ]  # fmt: skip
    write_images(cat, "queries_v1", queries)
    split_groups(GroupsConfig(cat, min_images_per_class=2, groups_num=2))
    eval_set(cat, name="v1", database="database", queries="queries_v1")
    split_years(cat, name="yr", queries_from=2015)
    split_val(cat, name="val", size=5)
    return cat


def test_check_passes_on_a_real_catalog_and_lists_every_audit(catalog):
    result = runner.invoke(vgdata_app, ["check", str(catalog), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    ran = {(r["audit"], r["status"]) for r in report["results"]}
    assert {name for name, _ in ran} == set(AUDITS)  # every file of vgdata/sql/tests, B's images_* included
    assert all(status == "ok" for _, status in ran) and report["ok"] is True
    subjects = {r["subject"] for r in report["results"]}
    assert {"split 'yr'", "split 'val'", "eval_v1.parquet"} <= subjects
    assert ("catalog" in subjects) == any(a.needs == "images" for a in AUDITS.values())
    assert any(s.startswith("groups_M10_a30_N5_L2_mipc2_g2_") for s in subjects)
    plain = runner.invoke(vgdata_app, ["check", str(catalog)])
    assert plain.exit_code == 0 and "all audits passed" in plain.output
    assert all(name in plain.output for name in AUDITS)


def test_check_skips_what_the_catalog_lacks(tmp_path):
    cat = tmp_path / "bare"
    write_images(cat, "database", database_rows()[:24])
    report = check_catalog(cat)
    assert report.ok
    skipped = {r.audit: r.reason for r in report.results if r.status == "skipped"}
    assert skipped["image_twice"] == "the catalog has no groups manifest"
    assert skipped["positive_too_far"] == "the catalog has no eval manifest"
    assert skipped["val_split_shared_panorama"] == "the catalog has no val split"
    assert skipped["year_split_overlap"] == "the catalog has no year split"


def test_a_duplicated_image_row_fails_the_check(catalog, tmp_path):
    """Append a copy of one image row to the database part: the class it belongs to now has one image more than
    the manifest holds, so the manifest no longer is what the macros give; exit 1 and the offending row."""
    broken = tmp_path / "cat"
    shutil.copytree(catalog, broken)
    part = broken / "images" / "database-000000.parquet"
    table = pq.read_table(part)
    manifest = next((broken / "manifests").glob("groups_*.parquet"))
    first = pq.read_table(manifest).slice(0, 1).to_pylist()[0]  # an image of group 0 in the manifest
    row = table.filter(pa.compute.equal(table["image_id"], first["image_id"]))
    atomic_write_table(part, pa.concat_tables([table, row]))
    manifest_rows = pq.read_table(manifest).to_pylist()
    label = [r for r in manifest_rows if (r["group_rank"], r["class_index"]) == (0, first["class_index"])]
    result = runner.invoke(vgdata_app, ["check", str(broken), "--json"])
    assert result.exit_code == 1
    failed = {r["audit"]: r for r in json.loads(result.output)["results"] if r["status"] == "failed"}
    mismatch = failed["manifest_class_mismatch"]
    got = dict(zip(mismatch["columns"], mismatch["sample"][0], strict=True))
    assert mismatch["rows"] == 1
    assert (got["group_rank"], got["class_index"]) == (0, first["class_index"])
    assert (got["manifest_images"], got["class_images"]) == (len(label), len(label) + 1)
    plain = runner.invoke(vgdata_app, ["check", str(broken)])
    assert plain.exit_code == 1 and "FAIL 1 row(s)  manifest_class_mismatch" in plain.output
    assert f"{len(label) + 1}" in plain.output


def test_a_manifest_with_a_wrong_positive_fails_the_check(catalog, tmp_path):
    """Give query b (500 m from every database image) database image 0 as a positive, keeping the metadata."""
    broken = tmp_path / "cat"
    shutil.copytree(catalog, broken)
    path = broken / "manifests" / "eval_v1.parquet"
    t = pq.read_table(path)
    rows = t.to_pylist()
    query = next(r for r in rows if r["role"] == "query" and r["image_id"] == 2)
    assert query["positives"] == []
    query["positives"] = [0]
    db0 = next(r for r in rows if r["role"] == "database" and r["idx"] == 0)
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), path)
    result = runner.invoke(vgdata_app, ["check", str(broken), "--json"])
    assert result.exit_code == 1
    failed = [r for r in json.loads(result.output)["results"] if r["status"] == "failed"]
    assert [r["audit"] for r in failed] == ["positive_too_far", "threshold_primary_mismatch"]  # positives_25m kept
    got = dict(zip(failed[0]["columns"], failed[0]["sample"][0], strict=True))
    expected = ((db0["utm_east"] - 543_500.0) ** 2 + (db0["utm_north"] - 4_180_000.0) ** 2) ** 0.5
    assert (got["query_image_id"], got["database_image_id"]) == (2, db0["image_id"])
    assert got["distance_m"] == pytest.approx(expected)


def test_an_unreadable_manifest_fails_the_check(catalog, tmp_path):
    broken = tmp_path / "cat"
    shutil.copytree(catalog, broken)
    (broken / "manifests" / "eval_v1.parquet").write_bytes(b"not parquet")
    report = check_catalog(broken)
    failed = [(r.audit, r.subject) for r in report.results if r.status == "failed"]
    assert not report.ok and failed == [("manifest_readable", "eval_v1.parquet")]


def test_a_cheap_audit_failure_is_a_bug_naming_the_audit(catalog, tmp_path):
    """split-groups' end-of-command audit on a manifest that lost a row: AuditFailed (a VgdataError) naming it."""
    manifest = next((catalog / "manifests").glob("groups_*.parquet"))
    short = tmp_path / manifest.name
    pq.write_table(pq.read_table(manifest).slice(1), short)
    con = Catalog(catalog).connect()
    con.execute("create temp table kept as from cosplace_kept_classes(min_images_per_class := 2)")
    params = json.loads(pq.read_schema(manifest).metadata[b"vgdata.params"])
    with pytest.raises(AuditFailed, match=r"audit manifest_class_mismatch found 1 offending row.*bug in vgdata"):
        audit_groups(con, "kept", short, params)
    con.close()


# ---------------------------------------------------------------- each audit on a hand-made broken relation


@pytest.fixture
def con(tmp_path):
    Catalog(tmp_path).ensure_table_dirs()
    c = duckdb.connect()
    c.execute(f"set file_search_path = '{tmp_path}'")
    for sql in sql_files():
        c.execute(sql.read_text())
    yield c
    c.close()


KEPT_COLUMNS = (
    "zone, northern, class_e, class_n, class_h, group_e, group_n, group_h, group_rank, class_index, class_images"
)


def kept(con, rows: list[tuple]) -> None:
    """kept_classes from (class_e, class_n, class_h, group_rank, class_index, class_images) in zone 10 north,
    the group being the floor-mod of the class (N=5, L=2)."""
    values = ", ".join(
        f"(10, true, {e}, {n}, {h}, {e % 5}, {n % 5}, {h % 2}, {r}, {i}, {c})" for e, n, h, r, i, c in rows
    )
    con.execute(f"create or replace temp table kept_classes ({KEPT_COLUMNS.replace(',', ' bigint,')} bigint)")
    con.execute("alter table kept_classes alter northern type boolean")
    con.execute(f"insert into kept_classes values {values}")


GOOD_KEPT = [(0, 0, 0, 0, 0, 10), (5, 0, 0, 0, 1, 12), (1, 0, 0, 1, 0, 10)]  # two groups; 5 cells apart in group 0


def audit_rows(con, name: str, params: dict | None = None) -> list[tuple]:
    r = run_audit(con, AUDITS[name], {**GROUPS, "threshold": 25.0, **(params or {})}, "test")
    return [tuple(row) for row in r.sample] if r.rows <= len(r.sample) else pytest.fail("too many rows")


@pytest.mark.parametrize(
    ("name", "broken", "expected"),
    [
        ("class_in_two_groups", [(0, 0, 0, 1, 1, 10)], [(10, True, 0, 0, 0, 2, 1)]),  # listed twice
        ("class_index_not_dense", [(10, 0, 0, 0, 3, 10)], [(0, 3, 3, 0, 3)]),
        (
            "group_classes_too_close",
            [(1, 0, 0, 0, 2, 10)],  # 1 cell from (0, 0, 0) and 4 from (5, 0, 0), in the next bucket
            [(0, 10, True, 0, 0, 0, 1, 0, 0), (0, 10, True, 1, 0, 0, 5, 0, 0)],
        ),
        ("group_rank_gap", [(2, 0, 0, 3, 0, 10)], [(3, 0, 3)]),
        ("kept_class_too_small", [(20, 0, 0, 0, 2, 9)], [(10, True, 20, 0, 0, 9)]),
    ],
)
def test_groups_audits_catch_a_broken_class_table(con, name, broken, expected):
    kept(con, GOOD_KEPT)
    assert audit_rows(con, name) == []
    kept(con, GOOD_KEPT + broken)
    assert sorted(audit_rows(con, name)) == expected


def test_group_not_class_mod_catches_a_wrong_group(con):
    kept(con, GOOD_KEPT)
    assert audit_rows(con, "group_not_class_mod") == []
    con.execute("update kept_classes set group_e = 3 where class_e = 5")  # 5 mod 5 is 0
    assert audit_rows(con, "group_not_class_mod") == [(10, True, 5, 0, 0, 3, 0, 0, 1)]


def manifest(con, rows: list[tuple]) -> None:
    """groups_manifest rows from (group_rank, class_index, image_id, utm_east, utm_north, heading); the class is
    taken from the position with M=10, alpha=30 and the group from the class (N=5, L=2)."""
    con.execute("create or replace temp table groups_manifest as select * from groups_manifest_from('no_kept') limit 0")
    for r, i, image_id, e, n, h in rows:
        ce, cn, ch = int(e // 10), int(n // 10), int(h // 30)
        con.execute(
            "insert into groups_manifest values (?, ?, ?, 'database', 'x.jpg', ?, ?, 10, 32610, ?, ?, ?, ?, ?, ?, ?)",
            [r, i, image_id, e, n, h, ce, cn, ch, ce % 5, cn % 5, ch % 2],
        )


def test_manifest_audits_catch_a_broken_manifest(con):
    con.execute(f"create temp table no_kept as select {KEPT_COLUMNS}, utm_epsg from cosplace_kept_classes() limit 0")
    kept(con, [(0, 0, 0, 0, 0, 2), (5, 0, 0, 0, 1, 1), (1, 0, 0, 1, 0, 1)])
    good = [(0, 0, 1, 3.0, 4.0, 10.0), (0, 0, 2, 9.99, 0.0, 29.9), (0, 1, 3, 55.0, 1.0, 0.0), (1, 0, 4, 10.0, 0.0, 0.0)]
    manifest(con, good)
    for name in ("image_twice", "manifest_class_mismatch", "manifest_class_not_of_position"):
        assert audit_rows(con, name) == [], name
    manifest(con, [*good, (0, 1, 3, 55.0, 1.0, 0.0)])  # image 3 twice: label (0, 1) has 2 images, not 1
    assert audit_rows(con, "image_twice") == [(3, 2)]
    assert audit_rows(con, "manifest_class_mismatch") == [
        (0, 1, 1, 2, 1, (10, 5, 0, 0, 0, 0, 0), (10, 5, 0, 0, 0, 0, 0))
    ]
    manifest(con, good[:3])  # group 1 (rank < groups_num = 2) missing from the manifest
    assert audit_rows(con, "manifest_class_mismatch") == [(1, 0, None, None, 1, (None,) * 7, (10, 1, 0, 0, 1, 0, 0))]
    manifest(con, good)
    con.execute("update groups_manifest set class_e = 1 where image_id = 2")  # 9.99 m is in cell 0
    assert [r[0] for r in audit_rows(con, "manifest_class_not_of_position")] == [2]


def eval_rows(con, rows: list[tuple]) -> None:
    """eval_rows (the eval manifest's layout) from (role, idx, image_id, utm_east, utm_north, utm_zone,
    northern, positives); utm_epsg written out by hand: 32600 + zone north, 32700 + zone south."""
    con.execute(
        "create or replace temp table eval_rows (role varchar, idx integer, image_id bigint, collection varchar, "
        "path varchar, utm_east double, utm_north double, utm_zone smallint, utm_epsg integer, heading double, "
        "width integer, height_px integer, positives integer[])"
    )
    for role, idx, image_id, e, n, zone, northern, positives in rows:
        epsg = (32600 if northern else 32700) + zone
        con.execute(
            "insert into eval_rows values (?, ?, ?, 'c', 'x.jpg', ?, ?, ?, ?, null, 8, 8, ?)",
            [role, idx, image_id, e, n, zone, epsg, positives],
        )


def test_positive_audits_catch_far_and_foreign_positives(con):
    db = [("database", 0, 10, 0.0, 0.0, 10, True, None), ("database", 1, 11, 15.0, 20.0, 10, True, None),
          ("database", 2, 12, 15.0, 20.5, 10, True, None), ("database", 3, 13, 3.0, 4.0, 11, True, None),
          ("database", 4, 14, 3.0, 4.0, 10, False, None)]  # fmt: skip
    eval_rows(con, [*db, ("query", 0, 20, 0.0, 0.0, 10, True, [0, 1])])  # idx 1 at exactly 25 m: a positive
    assert audit_rows(con, "positive_too_far") == [] and audit_rows(con, "positive_other_system") == []
    eval_rows(con, [*db, ("query", 0, 20, 0.0, 0.0, 10, True, [0, 1, 2, 3, 4, 9])])
    far = audit_rows(con, "positive_too_far")
    assert sorted((r[2], r[3]) for r in far) == [(2, 12), (9, None)]
    assert next(r[4] for r in far if r[2] == 2) == pytest.approx((15.0**2 + 20.5**2) ** 0.5)
    other = audit_rows(con, "positive_other_system")
    assert sorted((r[3], r[4]) for r in other) == [(13, 32611), (14, 32710)]
    assert {r[2] for r in other} == {32610}


def split_rows(con, database: list[tuple], queries: list[tuple]) -> None:
    """split_database / split_queries from (image_id, pano_id, year)."""
    for name, rows in (("split_database", database), ("split_queries", queries)):
        con.execute(f"create or replace temp table {name} (image_id bigint, path varchar, pano_id varchar, year int)")
        for image_id, pano, year in rows:
            con.execute(f"insert into {name} values (?, 'x.jpg', ?, ?)", [image_id, pano, year])


def test_split_audits_catch_shared_panoramas_and_years(con):
    split_rows(con, [(1, "a", 2010), (2, None, 2011)], [(3, "b", 2016), (4, None, 2017)])
    assert audit_rows(con, "val_split_shared_panorama") == [] and audit_rows(con, "year_split_overlap") == []
    split_rows(con, [(1, "a", 2010), (2, None, 2016), (4, None, 2017)], [(3, "a", 2016), (4, None, 2017)])
    assert sorted(audit_rows(con, "val_split_shared_panorama")) == [("i:4", 1, 1), ("p:a", 1, 1)]
    assert sorted(r[0] for r in audit_rows(con, "year_split_overlap")) == [2, 4]


def test_every_audit_file_has_a_header_and_a_negative_test():
    """The runner picks up every file; the ones written here each have a negative test above."""
    here = Path(__file__).read_text() + (Path(__file__).parent / "test_thresholds.py").read_text()  # threshold_*
    for audit in AUDITS.values():
        assert audit.returns and audit.needs
        if not audit.name.startswith("images_"):  # helper-owned image audits are tested in test_audits_images.py
            assert f'"{audit.name}"' in here, audit.name
