"""Several public datasets in one catalog: the default collection prefixes keep their sets apart."""

from __future__ import annotations

import pyarrow.parquet as pq
from test_ds_nordland import make_nordland
from test_ds_tokyo247 import make_tokyo247

from vgdata.build import BuildConfig, build_dataset
from vgdata.evalset import eval_set


def test_tokyo_and_nordland_share_a_catalog(tmp_path):
    tokyo, nordland = make_tokyo247(tmp_path / "tokyo"), make_nordland(tmp_path / "nordland")
    cat = tmp_path / "cat"
    a = build_dataset(BuildConfig(cat, dataset="tokyo247", dataset_root=tokyo, workers=1))
    b = build_dataset(BuildConfig(cat, dataset="nordland", dataset_root=nordland, workers=1))
    assert [r.collection for r in a] == ["tokyo247_test_database", "tokyo247_test_queries"]
    assert [r.collection for r in b] == ["nordland_test_database", "nordland_test_queries"]
    attrs = pq.read_table(cat / "attributes", columns=["collection", "dataset"]).to_pylist()
    assert {(r["collection"], r["dataset"]) for r in attrs} == {
        ("tokyo247_test_database", "tokyo247"),
        ("tokyo247_test_queries", "tokyo247"),
        ("nordland_test_database", "nordland"),
        ("nordland_test_queries", "nordland"),
    }
    # Each eval set sees its own dataset only: Nordland's ±10-frame rule is untouched by Tokyo's rows.
    n = eval_set(cat, name="nordland", database="nordland_test_database", queries="nordland_test_queries")
    rows = pq.read_table(n.manifest).to_pylist()
    frame = {r["image_id"]: r["frame"] for r in pq.read_table(cat / "attributes").to_pylist()}
    db = {r["idx"]: frame[r["image_id"]] for r in rows if r["role"] == "database"}
    for q in (r for r in rows if r["role"] == "query"):
        expected = sorted(i for i, f in db.items() if abs(f - frame[q["image_id"]]) <= 10)
        assert q["positives"] == expected
    assert (n.n_database, n.n_queries) == (b[0].images, b[1].images)
    # A second import of the same dataset under the same names is the same build (up to date).
    again = build_dataset(BuildConfig(cat, dataset="nordland", dataset_root=nordland, workers=1))
    assert [r.up_to_date for r in again] == [True, True]
