"""Thresholds as data: an eval set with several positive radii, their audits, and recall per radius."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.build import register_collection
from vgdata.check import AuditFailed, audit_eval_rows, check_catalog
from vgdata.evalset import eval_set, threshold_column, threshold_key
from vgdata.fsio import atomic_write_table
from vgdata.schema import IMAGES, from_columns
from vgtrain import manifest as vgtrain_manifest
from vgtrain.manifest import EvalManifest, ManifestError
from vgtrain.recall import recalls_by_threshold
from vgtrain.report import _thresholds_html

runner = CliRunner()
RADII = [25.0, 10.0, 50.0]  # primary first, as --threshold 25 --threshold 10 --threshold 50 gives them
THRESHOLD_AUDITS = (
    "threshold_positive_too_far",
    "threshold_positive_other_system",
    "threshold_positives_not_nested",
    "threshold_primary_mismatch",
)


# ---------------------------------------------------------------- the tiny city, positives recomputed with numpy


def catalog_images(cat: Path, collection: str) -> dict[int, tuple[float, float, int | None]]:
    """image_id -> (utm_east, utm_north, utm_epsg), read from the catalog's images Parquet with pyarrow."""
    table = pq.read_table(sorted((cat / "images").glob(f"{collection}-*.parquet")))
    cols = table.select(["image_id", "utm_east", "utm_north", "utm_epsg"]).to_pydict()
    return {i: (e, n, s) for i, e, n, s in zip(*cols.values(), strict=True)}


def expected_positives(table: pa.Table, images: dict, radius: float) -> list[list[int]]:
    """Per query idx: database idx within ``radius`` (inclusive, squared) in the same coordinate system."""
    rows = table.to_pylist()
    db = sorted((r for r in rows if r["role"] == "database"), key=lambda r: r["idx"])
    qs = sorted((r for r in rows if r["role"] == "query"), key=lambda r: r["idx"])
    de = np.array([images["db"][r["image_id"]][0] for r in db])
    dn = np.array([images["db"][r["image_id"]][1] for r in db])
    dsys = [images["db"][r["image_id"]][2] for r in db]
    out = []
    for r in qs:
        qe, qn, qsys = images["q"][r["image_id"]]
        near = (de - qe) ** 2 + (dn - qn) ** 2 <= radius**2
        out.append([i for i in np.flatnonzero(near).tolist() if dsys[i] == qsys])
    return out


@pytest.fixture(scope="module")
def tiny_thresholds(tiny_catalog) -> tuple[Path, object]:
    r = eval_set(tiny_catalog, name="thr_e2", database="database", queries="queries_v1", threshold=RADII)
    return tiny_catalog, r


def test_every_radius_matches_numpy_and_the_primary_stays_positives(tiny_thresholds):
    cat, r = tiny_thresholds
    table = pq.read_table(r.manifest)
    images = {"db": catalog_images(cat, "database"), "q": catalog_images(cat, "queries_v1")}
    queries = table.filter(pa.compute.equal(table["role"], "query")).sort_by("idx")
    got = {t: queries[f"positives_{int(t)}m"].to_pylist() for t in RADII}
    for t in RADII:
        assert got[t] == expected_positives(table, images, t), t
    assert queries["positives"].to_pylist() == got[25.0]  # the primary radius is the `positives` column
    assert sum(map(len, got[10.0])) < sum(map(len, got[25.0])) < sum(map(len, got[50.0]))  # the radii matter here
    for small, large in ((10.0, 25.0), (25.0, 50.0)):
        assert all(set(a) <= set(b) for a, b in zip(got[small], got[large], strict=True))
    db_rows = table.filter(pa.compute.equal(table["role"], "database"))
    assert all(db_rows[f"positives_{int(t)}m"].null_count == db_rows.num_rows for t in RADII)
    params = json.loads(pq.read_schema(r.manifest).metadata[b"vgdata.params"])
    assert params["threshold"] == 25.0 and params["thresholds"] == [10.0, 25.0, 50.0]
    for t in RADII:
        lists = got[t]
        assert params["by_threshold"][f"{int(t)}"] == {
            "queries_without_positives": sum(1 for p in lists if not p),
            "mean_positives": pytest.approx(np.mean([len(p) for p in lists])),
        }
    assert (r.threshold, list(r.by_threshold)) == (25.0, ["10", "25", "50"])


def test_threshold_column_names_agree_between_vgdata_and_vgtrain():
    cases = {25.0: "positives_25m", 10: "positives_10m", 12.5: "positives_12_5m", 0.25: "positives_0_25m",
             1e-5: "positives_0_00001m", 100.125: "positives_100_125m"}  # fmt: skip
    for t, column in cases.items():
        assert threshold_column(t) == column == vgtrain_manifest.threshold_column(t)
        assert threshold_key(t) == vgtrain_manifest.threshold_key(t) == column[len("positives_") : -1].replace("_", ".")
        assert float(threshold_key(t)) == float(t)  # the text gives the radius back


def test_vgtrain_reads_every_radius_and_fingerprints_them(tiny_thresholds):
    cat, r = tiny_thresholds
    m = EvalManifest.read(r.manifest)
    table = pq.read_table(r.manifest)
    queries = table.filter(pa.compute.equal(table["role"], "query")).sort_by("idx")
    assert list(m.positives_by_threshold) == [10.0, 25.0, 50.0] and m.threshold == 25.0
    for t, lists in m.positives_by_threshold.items():
        assert [p.tolist() for p in lists] == queries[f"positives_{int(t)}m"].to_pylist()
    assert m.positives_by_threshold[25.0] is m.positives
    single = EvalManifest.read(eval_set(cat, name="thr_e2_single", database="database", queries="queries_v1").manifest)
    assert list(single.positives_by_threshold) == [25.0]
    assert [p.tolist() for p in single.positives] == [p.tolist() for p in m.positives]
    assert single.set_fingerprint != m.set_fingerprint  # the other radii are part of what the set is
    assert single.fingerprint != m.fingerprint  # params (thresholds) differ: embed's descriptor stores differ too


def test_an_older_manifest_reads_with_its_one_radius_and_a_missing_column_is_refused(tiny_thresholds, tmp_path):
    cat, r = tiny_thresholds
    roots = {c: str(cat / "crops" / c) for c in ("database", "queries_v1")}
    table = pq.read_table(r.manifest)
    meta = dict(table.schema.metadata)
    params = json.loads(meta[b"vgdata.params"])
    old_params = {k: v for k, v in params.items() if k not in ("thresholds", "by_threshold")}
    old = table.drop_columns([f"positives_{int(t)}m" for t in RADII]).replace_schema_metadata(
        {**meta, b"vgdata.manifest_format": b"3", b"vgdata.params": json.dumps(old_params).encode()}
    )
    (tmp_path / "manifests").mkdir()
    pq.write_table(old, tmp_path / "manifests" / "old.parquet")
    m = EvalManifest.read(tmp_path / "manifests" / "old.parquet", image_roots=roots)
    assert list(m.positives_by_threshold) == [25.0]
    assert [p.tolist() for p in m.positives] == table.filter(pa.compute.equal(table["role"], "query")).sort_by("idx")[
        "positives"
    ].to_pylist()
    pq.write_table(table.drop_columns(["positives_50m"]), tmp_path / "manifests" / "lacking.parquet")
    with pytest.raises(ManifestError, match="lacks column.* positives_50m of its thresholds"):
        EvalManifest.read(tmp_path / "manifests" / "lacking.parquet", image_roots=roots)


# ---------------------------------------------------------------- recall per radius, by hand


def test_recall_per_radius_from_one_predictions_array():
    # 3 queries, top-3 predictions; radius 10 is a subset of 25.
    predictions = np.array([[4, 1, 2], [0, 3, 5], [6, 7, 8]])
    by = {
        25.0: [np.array([1, 4]), np.array([3]), np.array([], np.int64)],
        10.0: [np.array([1]), np.array([], np.int64), np.array([], np.int64)],
    }
    r = recalls_by_threshold(predictions, by, (1, 2, 3))
    assert list(r) == [10.0, 25.0]
    # radius 10: q0 found at rank 2 (db 1), q1 and q2 never -> R@1 0, R@2 1/3, R@3 1/3
    assert r[10.0] == pytest.approx({1: 0.0, 2: 100 / 3, 3: 100 / 3})
    # radius 25: q0 at rank 1 (db 4), q1 at rank 2 (db 3), q2 (no positive) stays a miss in the denominator
    assert r[25.0] == pytest.approx({1: 100 / 3, 2: 200 / 3, 3: 200 / 3})


def test_report_shows_one_row_per_radius():
    protocol = {"threshold_m": 25.0, "positives_by_threshold": {"10": {"queries_without_positives": 2},
                                                                "25": {"queries_without_positives": 1}}}  # fmt: skip
    html = _thresholds_html({"25": {1: 33.3, 5: 66.7}, "10": {1: 0.0, 5: 33.3}}, protocol)
    assert html.index("10 m") < html.index("25 m (primary)")
    assert "<td>0.00</td><td>33.30</td><td>2</td>" in html and "<td>33.30</td><td>66.70</td><td>1</td>" in html
    assert _thresholds_html({"25": {1: 33.3}}, protocol) == ""  # one radius: the main table says it all


# ---------------------------------------------------------------- a small generated catalog: CLI, audits, check


def write_images(cat: Path, collection: str, rows: list[dict]) -> None:
    cols = {k: [r.get(k) for r in rows] for k in rows[0]}
    atomic_write_table(cat / "images" / f"{collection}-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, collection, image_root=f"crops/{collection}", source={"generated": True})


E0, N0 = 543_000.0, 4_180_000.0
# database east of the query: 0, 6, 10 (exactly), 10.5, 20, 25 (exactly), 40, 50.5 m; one at the query's spot in
# zone 11 and one in zone 10 south (other coordinate systems: nobody's positive)
OFFSETS = [0.0, 6.0, 10.0, 10.5, 20.0, 25.0, 40.0, 50.5]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    cat = tmp_path_factory.mktemp("thr") / "cat"
    base = {"collection": "database", "utm_north": N0, "utm_zone": 10, "utm_letter": "S", "lat": 37.7, "lon": -122.4}
    db = [{**base, "image_id": 100 + i, "path": f"d/{i:02d}.jpg", "utm_east": E0 + d} for i, d in enumerate(OFFSETS)]
    db += [{**base, "image_id": 200, "path": "d/z11.jpg", "utm_east": E0, "utm_zone": 11},
           {**base, "image_id": 201, "path": "d/z10s.jpg", "utm_east": E0, "utm_letter": "H", "lat": -37.7}]  # fmt: skip
    write_images(cat, "database", db)
    q = {**base, "collection": "queries"}
    write_images(cat, "queries", [{**q, "image_id": 1, "path": "q/a.jpg", "utm_east": E0},
                                  {**q, "image_id": 2, "path": "q/b.jpg", "utm_east": E0 + 500}])  # fmt: skip
    result = runner.invoke(
        vgdata_app,
        ["eval-set", str(cat), "--name", "v1", "--database", "database", "--queries", "queries",
         "--threshold", "25", "--threshold", "10", "--threshold", "50", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return cat


def test_cli_repeatable_threshold_exact_edges_and_reuse(small):
    table = pq.read_table(small / "manifests" / "eval_v1.parquet")
    q = table.filter(pa.compute.equal(table["role"], "query")).sort_by("idx")
    # database idx = order of path: d/00..d/07, then d/z10s, d/z11 (other systems, never positives)
    assert q["positives_10m"].to_pylist() == [[0, 1, 2], []]  # 10 m exactly is in, 10.5 m is out
    assert q["positives_25m"].to_pylist() == q["positives"].to_pylist() == [[0, 1, 2, 3, 4, 5], []]
    assert q["positives_50m"].to_pylist() == [[0, 1, 2, 3, 4, 5, 6], []]  # 50.5 m is out
    again = runner.invoke(
        vgdata_app,
        ["eval-set", str(small), "--name", "v1", "--database", "database", "--queries", "queries",
         "--threshold", "25", "--threshold", "50", "--threshold", "10"],
    )  # fmt: skip
    assert again.exit_code == 0 and "manifest (reused)" in again.output  # same radii, same primary
    assert "10 m: 1.5 positives per query, 1 without any" in again.output
    bad = runner.invoke(
        vgdata_app,
        ["eval-set", str(small), "--name", "bad", "--database", "database", "--queries", "queries",
         "--threshold", "25", "--threshold", "-3"],
    )  # fmt: skip
    assert bad.exit_code != 0 and "threshold must be a finite number of metres > 0" in bad.output
    assert "Traceback" not in bad.output and not (small / "manifests" / "eval_bad.parquet").exists()


def tamper(cat: Path, name: str, change) -> None:
    """Write manifests/eval_<name>.parquet: eval_v1's rows after ``change(query rows by idx)``, its metadata kept."""
    src = pq.read_table(cat / "manifests" / "eval_v1.parquet")
    rows = src.to_pylist()
    change({r["idx"]: r for r in rows if r["role"] == "query"})
    pq.write_table(pa.Table.from_pylist(rows, schema=src.schema), cat / "manifests" / f"eval_{name}.parquet")


def test_check_reports_each_tampered_radius(small, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(small, cat)
    report = check_catalog(cat)
    assert report.ok
    assert {r.audit for r in report.results if r.status == "ok"} >= set(THRESHOLD_AUDITS)

    def far(q):  # 10.5 m (idx 3) among the 10 m positives, and in every larger list too: only too far
        q[0]["positives_10m"] = [0, 1, 2, 3]

    def foreign(q):  # the zone-11 image (idx 9) among the 50 m positives: only another system
        q[0]["positives_50m"] = [0, 1, 2, 3, 4, 5, 6, 9]

    def not_nested(q):  # idx 4 (20 m) left out of the 50 m list
        q[0]["positives_50m"] = [0, 1, 2, 3, 5, 6]

    def mismatch(q):  # the primary column is no longer positives_25m
        q[0]["positives"] = [0, 1]

    for name, change in (("far", far), ("foreign", foreign), ("nested", not_nested), ("mismatch", mismatch)):
        tamper(cat, name, change)
    dropped = pq.read_table(cat / "manifests" / "eval_v1.parquet").drop_columns(["positives_50m"])
    pq.write_table(dropped, cat / "manifests" / "eval_dropped.parquet")
    result = runner.invoke(vgdata_app, ["check", str(cat), "--json"])
    assert result.exit_code == 1
    failed = {(r["subject"], r["audit"]): r for r in json.loads(result.output)["results"] if r["status"] == "failed"}
    assert sorted(failed) == [
        ("eval_dropped.parquet", "threshold_columns"),
        ("eval_far.parquet", "threshold_positive_too_far"),
        ("eval_foreign.parquet", "threshold_positive_other_system"),
        ("eval_mismatch.parquet", "threshold_primary_mismatch"),
        ("eval_nested.parquet", "threshold_positives_not_nested"),
    ]

    def sample(subject: str, audit: str) -> dict:
        r = failed[(subject, audit)]
        assert r["rows"] == 1
        return dict(zip(r["columns"], r["sample"][0], strict=True))

    got = sample("eval_far.parquet", "threshold_positive_too_far")
    assert (got["threshold"], got["positive_idx"], got["database_image_id"]) == (10.0, 3, 103)
    assert got["distance_m"] == pytest.approx(10.5)
    got = sample("eval_foreign.parquet", "threshold_positive_other_system")
    assert (got["threshold"], got["database_image_id"], got["query_utm_epsg"], got["database_utm_epsg"]) == (
        50.0, 200, 32610, 32611,
    )  # fmt: skip
    got = sample("eval_nested.parquet", "threshold_positives_not_nested")
    assert (got["smaller_threshold"], got["larger_threshold"], got["missing_idx"]) == (25.0, 50.0, [4])
    got = sample("eval_mismatch.parquet", "threshold_primary_mismatch")
    assert (got["positives"], got["threshold_positives"]) == ([0, 1], [0, 1, 2, 3, 4, 5])
    assert failed[("eval_dropped.parquet", "threshold_columns")]["reason"].endswith("of threshold(s) 50.0 m")


def test_the_end_of_eval_set_audit_raises_on_a_broken_radius(small):
    con = duckdb.connect()
    try:
        manifest = small / "manifests" / "eval_v1.parquet"
        con.execute(f"create temp table rows as from read_parquet('{manifest}')")
        columns = {t: threshold_column(t) for t in (10.0, 25.0, 50.0)}
        assert {r.status for r in audit_eval_rows(con, "rows", 25.0, "v1", thresholds=columns)} == {"ok"}
        con.execute("update rows set positives_10m = [0, 1, 2, 3, 4] where role = 'query' and idx = 0")
        with pytest.raises(AuditFailed, match=r"audit threshold_positive_too_far found 2 offending row.*bug in vgdata"):
            audit_eval_rows(con, "rows", 25.0, "v1", thresholds=columns)
    finally:
        con.close()


def test_eval_prints_one_row_per_radius(capsys):
    from cli import _print_eval

    protocol = {"n_queries": 4, "queries": "q", "n_database": 9, "database": "d", "threshold_m": 25.0,
                "image_size": 64, "model": {"backbone": "ResNet18", "fc_output_dim": 32}, "checkpoint_sha256": "ab",
                "positives_by_threshold": {"10": {"queries_without_positives": 3},
                                           "25": {"queries_without_positives": 1},
                                           "50": {"queries_without_positives": 0}}}  # fmt: skip
    by = {"10": {1: 25.0, 5: 25.0}, "25": {1: 50.0, 5: 75.0}, "50": {1: 75.0, 5: 100.0}}
    _print_eval({"recalls": {"flat": by["25"]}, "recalls_by_threshold": by, "protocol": protocol})
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in lines if " m" in line
            and "│" in line}  # fmt: skip
    assert rows == {
        "10 m": ["25.0", "25.0", "3"],
        "25 m (primary)": ["50.0", "75.0", "1"],
        "50 m": ["75.0", "100.0", "0"],
    }
