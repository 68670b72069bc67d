"""Ground truth out: an eval set as gsv-cities ``.npy`` files and as a VPR-Bench folder, read back as consumers do."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.errors import UsageError
from vgdata.evalset import eval_set
from vgdata.export_gt import export_eval_set

runner = CliRunner()
THRESHOLD = 5.0  # metres: small enough that some tiny-city queries have no positive (the qIdx case)


def catalog_rows(cat) -> dict[tuple[str, str], dict]:
    """(collection, path) -> the catalog's row, read from its images Parquet parts."""
    parts = sorted(p for p in (cat / "images").glob("*.parquet") if not p.name.startswith("_"))
    return {(r["collection"], r["path"]): r for r in pq.read_table(parts).to_pylist()}


def expected_positives(rows: dict, query: dict, database: str, threshold: float) -> set[str]:
    """Database paths within ``threshold`` metres (inclusive) of ``query`` in the same UTM system, with numpy."""
    db = [r for (c, _), r in rows.items() if c == database]
    east = np.array([r["utm_east"] for r in db])
    north = np.array([r["utm_north"] for r in db])
    dist = np.hypot(east - query["utm_east"], north - query["utm_north"])
    same = np.array([r["utm_epsg"] == query["utm_epsg"] for r in db])
    return {db[i]["path"] for i in np.flatnonzero((dist <= threshold) & same)}


@pytest.fixture(scope="module")
def manifest(tiny_catalog):
    return eval_set(tiny_catalog, name="gtx5", database="database", queries="queries_v1", threshold=THRESHOLD).manifest


def test_gsv_npy_read_back_as_gsv_cities_does(tiny_catalog, manifest, tmp_path):
    out = tmp_path / "gsv"
    res = export_eval_set(tiny_catalog, out, fmt="gsv-npy", eval_set="gtx5", prefix="tiny_val", qidx=True)
    db = np.load(out / "tiny_val_dbImages.npy")  # plain np.load: the <U files need no pickle
    q = np.load(out / "tiny_val_qImages.npy")
    gt = np.load(out / "tiny_val_gt.npy", allow_pickle=True)
    q_idx = np.load(out / "tiny_val_qIdx.npy")
    p_idx = np.load(out / "tiny_val_pIdx.npy", allow_pickle=True)
    order = json.loads((out / "tiny_val_order.json").read_text())
    rows = catalog_rows(tiny_catalog)
    n_db = sum(c == "database" for c, _ in rows)
    n_q = sum(c == "queries_v1" for c, _ in rows)
    # dtypes and shapes of FORMATS.md section 3.1
    assert db.dtype == np.dtype(f"<U{max(len(p) for p in db)}") and db.shape == (n_db,)
    assert q.dtype.kind == "U" and q.shape == (n_q,)
    assert gt.dtype == object and gt.shape == (n_q,) and all(g.dtype == np.int64 for g in gt)
    assert q_idx.dtype == np.int64 and p_idx.dtype == object and p_idx.shape == q_idx.shape
    # the root: one folder holding both collections; root + path (plain concatenation) opens the real files
    root = order["root"]
    assert root.endswith("/") and os.path.isdir(root)
    assert all(p.startswith("database/") for p in db) and all(p.startswith("queries_v1/") for p in q)
    images = np.concatenate((db, q[q_idx]))  # gsv-cities' MapillaryDataset
    assert len(images) == n_db + len(q_idx)
    for path in images:
        collection, rel = path.split("/", 1)
        with Image.open(root + path) as im:
            assert im.size == (rows[(collection, rel)]["width"], rows[(collection, rel)]["height_px"])
    # positives recomputed here from the catalog's UTM columns
    with_pos = []
    for i, path in enumerate(q):
        query = rows[("queries_v1", path.split("/", 1)[1])]
        expected = expected_positives(rows, query, "database", THRESHOLD)
        assert {db[j].split("/", 1)[1] for j in gt[i]} == expected
        assert list(gt[i]) == sorted(gt[i])
        if expected:
            with_pos.append(i)
    assert 0 < len(with_pos) < n_q  # the fixture exercises both kinds of query
    assert q_idx.tolist() == with_pos and res.queries_with_positives == len(with_pos)
    for i, qi in enumerate(q_idx):
        assert np.array_equal(p_idx[i], gt[qi])
    # the sidecar: file order as image ids, the manifest and its hash
    ids = {(c, p): r["image_id"] for (c, p), r in rows.items()}
    assert order["database_image_ids"] == [ids[tuple(p.split("/", 1))] for p in db]
    assert order["query_image_ids"] == [ids[tuple(p.split("/", 1))] for p in q]
    assert order["positives"]["threshold_m"] == THRESHOLD and order["manifest"] == str(manifest.resolve())
    import hashlib

    assert order["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()


def test_gsv_gt_is_a_2d_int64_array_when_every_query_has_k_positives(tiny_catalog, manifest, tmp_path):
    """SPED-style identity ground truth (gt[i] = [i]): an int64 (N_q, 1) array, not an object array."""
    table = pq.read_table(manifest)
    is_query = np.array(table["role"].to_pylist()) == "query"
    idx = table["idx"].to_pylist()
    table = table.set_column(
        table.schema.get_field_index("positives"),
        "positives",
        pa.array([[idx[i]] if is_query[i] else None for i in range(table.num_rows)], pa.list_(pa.int32())),
    )
    cat = tmp_path / "cat"
    (cat / "manifests").mkdir(parents=True)
    os.symlink(tiny_catalog / "build.json", cat / "build.json")
    for sub in ("crops", "images"):
        os.symlink(tiny_catalog / sub, cat / sub)
    pq.write_table(table, cat / "manifests" / "eval_ident.parquet")  # keeps the schema's vgdata metadata
    out = tmp_path / "gsv"
    export_eval_set(cat, out, fmt="gsv-npy", eval_set="ident")
    gt = np.load(out / "ident_gt.npy")  # no pickle needed
    assert gt.dtype == np.int64 and gt.shape == (int(is_query.sum()), 1)
    assert gt[:, 0].tolist() == list(range(int(is_query.sum())))
    assert not (out / "ident_qIdx.npy").exists()


def test_vpr_bench_folder(tiny_catalog, manifest, tmp_path):
    gsv, out = tmp_path / "gsv", tmp_path / "vb"
    export_eval_set(tiny_catalog, gsv, fmt="gsv-npy", eval_set="gtx5")
    res = export_eval_set(tiny_catalog, out, fmt="vpr-bench", eval_set="gtx5")
    root = json.loads((gsv / "gtx5_order.json").read_text())["root"]
    db, q = np.load(gsv / "gtx5_dbImages.npy"), np.load(gsv / "gtx5_qImages.npy")
    gt = np.load(gsv / "gtx5_gt.npy", allow_pickle=True)
    refs, queries = sorted(os.listdir(out / "ref")), sorted(os.listdir(out / "query"))
    assert refs[:2] == ["0000000.jpg", "0000001.jpg"] and len(refs) == len(db) and len(queries) == len(q)
    for folder, names, paths in ((out / "ref", refs, db), (out / "query", queries, q)):
        for name, path in zip(names, paths, strict=True):  # sorted file-name order is the index order
            assert os.path.samefile(folder / name, root + path)  # hard links of the catalog's files
    assert res.linked == len(db) + len(q) and res.copied == 0
    vb = np.load(out / "ground_truth_new.npy", allow_pickle=True)
    assert vb.dtype == object and vb.shape == (len(q), 2)
    for i, (qi, refs_i) in enumerate(vb):
        assert qi == i and isinstance(refs_i, list) and refs_i == [int(x) for x in gt[i]]
    # a second export into the same folder replaces the ground truth; a foreign file is refused
    (out / "ref" / "zzz.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="does not write"):
        export_eval_set(tiny_catalog, out, fmt="vpr-bench", eval_set="gtx5")


def test_cli_gt_export_and_one_line_errors(tiny_catalog, manifest, tmp_path):
    out = tmp_path / "cli"
    res = runner.invoke(
        vgdata_app, ["export", str(tiny_catalog), str(out), "--format", "gsv-npy", "--eval-set", "gtx5"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "gtx5_gt.npy").is_file() and "with a positive" in res.output
    bad = {
        "no eval set 'nope'": ["--format", "gsv-npy", "--eval-set", "nope"],
        "unknown export format 'mat'": ["--format", "mat", "--eval-set", "gtx5"],
        "give --eval-set NAME": ["--format", "vpr-bench"],
        "go with --format gsv-npy": ["--eval-set", "gtx5"],
    }
    for message, args in bad.items():
        res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(out), *args])
        assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(tmp_path / "x"), "--format", "gsv-npy",
                                     "--eval-set", "nope"])  # fmt: skip
    assert "gtx5" in res.output  # the known eval sets are listed
    inside = tiny_catalog / "exports"
    res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(inside), "--format", "vpr-bench", "--eval-set",
                                     "gtx5"])  # fmt: skip
    assert res.exit_code == 2 and "inside the catalog" in res.output and not inside.exists()


def test_gsv_npy_at_a_second_radius_of_the_eval_set(tiny_catalog, tmp_path):
    """An eval set holding 5 m (primary) and 10 m positives: ``threshold=10`` exports the 10 m ones."""
    eval_set(tiny_catalog, name="gtx_multi", database="database", queries="queries_v1", threshold=[5.0, 10.0])
    out = tmp_path / "gsv"
    export_eval_set(tiny_catalog, out, fmt="gsv-npy", eval_set="gtx_multi", threshold=10)
    db, q = np.load(out / "gtx_multi_dbImages.npy"), np.load(out / "gtx_multi_qImages.npy")
    gt = np.load(out / "gtx_multi_gt.npy", allow_pickle=True)
    rows = catalog_rows(tiny_catalog)
    for i, path in enumerate(q):
        expected = expected_positives(rows, rows[("queries_v1", path.split("/", 1)[1])], "database", 10.0)
        assert {db[j].split("/", 1)[1] for j in gt[i]} == expected
    order = json.loads((out / "gtx_multi_order.json").read_text())
    assert order["positives"] == {**order["positives"], "column": "positives_10m", "threshold_m": 10.0}
    with pytest.raises(UsageError, match=r"no positives at 7 m \(radii: 5, 10\)"):
        export_eval_set(tiny_catalog, out, fmt="gsv-npy", eval_set="gtx_multi", threshold=7)
