"""vgtrain embed (descriptors as a resumable job) and vgtrain eval --descriptors (search from stored descriptors)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from cli import vgtrain_app
from vgdata.evalset import eval_set
from vgtrain import knn
from vgtrain.descriptors import write_meta, write_part
from vgtrain.manifest import EvalManifest

MODEL = ["--weights", "random", "--backbone", "ResNet18", "--fc-output-dim", "32", "--seed", "3"]
"""An untrained model: no training needed, the same weights in every process (seeded)."""


def vgtrain(*args: str):
    res = CliRunner().invoke(vgtrain_app, [str(a) for a in args])
    return res


def brute_force_knn(db: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared L2 in float64, ties by the smaller index: the reference both searches must reproduce."""
    d = ((q[:, None, :].astype(np.float64) - db[None, :, :]) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(len(db)), d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.mark.parametrize("shard", [5, 7, 64, 1000])
def test_streamed_search_equals_in_memory(shard):
    rng = np.random.default_rng(shard)
    db = rng.standard_normal((300, 16)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = rng.standard_normal((25, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    shards = ((np.arange(s, min(s + shard, len(db))), db[s : s + shard]) for s in range(0, len(db), shard))
    dist, idx = knn.search_streamed(shards, q, 20)
    ref_d, ref_i = brute_force_knn(db, q, 20)
    mem_d, mem_i = knn.search(db, q, 20)
    assert np.array_equal(idx, ref_i) and np.array_equal(idx, mem_i)
    np.testing.assert_allclose(dist, ref_d, atol=1e-5)
    np.testing.assert_allclose(dist, mem_d, atol=1e-6)


def test_streamed_search_ties_and_small_database():
    db = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float32)  # rows 0, 2, 4 equal
    q = np.array([[1, 0]], dtype=np.float32)
    shards = [(np.array([3, 4]), db[[3, 4]]), (np.array([0, 1, 2]), db[[0, 1, 2]])]  # out of order on purpose
    dist, idx = knn.search_streamed(shards, q, 20)  # k clamped to the 5 rows
    assert idx.tolist() == [[0, 2, 4, 1, 3]]
    assert dist.tolist() == [[0, 0, 0, 2, 2]]
    with pytest.MonkeyPatch.context() as mp:  # without faiss (torch matmul + topk per shard): the same
        mp.setitem(sys.modules, "faiss", None)
        assert knn._faiss() is None
        dist, idx = knn.search_streamed(shards, q, 3)
    assert idx.tolist() == [[0, 2, 4]] and dist.tolist() == [[0, 0, 0]]


@pytest.fixture(scope="module")
def sets(tiny_catalog) -> tuple[str, str]:
    v2 = eval_set(tiny_catalog, name="v2", database="database", queries="queries_v2")
    v1 = eval_set(tiny_catalog, name="v1", database="database", queries="queries_v1")
    return v2.manifest, v1.manifest


def fake_store(folder: Path, manifest: EvalManifest, *, fingerprint: str, complete: bool = True) -> None:
    """A store written by hand (random unit descriptors): what eval reads, without a model."""
    rng = np.random.default_rng(0)
    parts = []
    for i, (role, ids) in enumerate((("database", manifest.database_ids), ("query", manifest.query_ids))):
        desc = rng.standard_normal((len(ids), 8)).astype(np.float32)
        write_part(folder / f"part-{i:05d}.parquet", ids, role, np.arange(len(ids)), desc, "float32", "k")
        parts.append({"file": f"part-{i:05d}.parquet", "role": role, "rows": len(ids)})
    write_meta(folder, {"key": "k", "checkpoint_sha256": "0" * 16, "manifest_fingerprint": fingerprint, "dim": 8,
                        "dtype": "float32", "image_size": None, "count": 0, "model": {}, "checkpoint": None,
                        "complete": complete, "parts": parts})  # fmt: skip


def test_eval_refuses_other_manifest_and_incomplete_store(sets, tmp_path):
    v2, v1 = sets
    m2, m1 = EvalManifest.read(v2), EvalManifest.read(v1)
    assert m1.fingerprint != m2.fingerprint
    fake_store(tmp_path / "d1", m2, fingerprint=m1.fingerprint)  # rows of v2, but stamped as made from v1
    res = vgtrain("eval", "--descriptors", tmp_path / "d1", "--eval-set", v2, "--out", tmp_path / "e")
    assert res.exit_code == 1 and "another manifest" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()
    fake_store(tmp_path / "d2", m2, fingerprint=m2.fingerprint, complete=False)
    res = vgtrain("eval", "--descriptors", tmp_path / "d2", "--eval-set", v2, "--out", tmp_path / "e")
    assert res.exit_code == 1 and "incomplete" in res.output and len(res.output.strip().splitlines()) == 1
    (tmp_path / "d3").mkdir()
    fake_store(tmp_path / "d3", m2, fingerprint=m2.fingerprint)
    (tmp_path / "d3" / "part-00001.parquet").unlink()  # a shard lost after the run
    res = vgtrain("eval", "--descriptors", tmp_path / "d3", "--eval-set", v2, "--out", tmp_path / "e")
    assert res.exit_code == 1 and "incomplete" in res.output
    res = vgtrain("eval", "--eval-set", v2, "--out", tmp_path / "e")  # neither weights nor descriptors
    assert res.exit_code == 1 and "--weights is required" in res.output


def test_eval_from_hand_made_store_uses_stored_descriptors(sets, tmp_path):
    """Recalls and predictions from stored descriptors equal a brute-force kNN of those descriptors."""
    v2, _ = sets
    m = EvalManifest.read(v2)
    fake_store(tmp_path / "d", m, fingerprint=m.fingerprint)
    res = vgtrain("eval", "--descriptors", tmp_path / "d", "--eval-set", v2, "--out", tmp_path / "e", "--json")
    assert res.exit_code == 0, res.output
    rng = np.random.default_rng(0)  # fake_store's draws, in its order
    db = rng.standard_normal((len(m.database), 8)).astype(np.float32)
    q = rng.standard_normal((len(m.queries), 8)).astype(np.float32)
    k = min(20, len(db))
    _, ref = brute_force_knn(db, q, k)
    preds = pq.read_table(tmp_path / "e" / "predictions.parquet").to_pydict()
    assert np.array_equal(np.array(preds["database_idx"]).reshape(len(q), k), ref)
    found1 = [bool(np.isin(ref[i, 0], m.positives[i])) for i in range(len(q))]
    saved = json.loads((tmp_path / "e" / "recalls.json").read_text())
    assert saved["recalls"]["flat"]["1"] == pytest.approx(100 * sum(found1) / len(q))


@pytest.mark.slow
def test_embed_resumes_equals_eval_and_eval_from_descriptors_is_the_same(sets, tmp_path):
    v2, v1 = sets
    desc = tmp_path / "desc"
    common = [*MODEL, "--image-size", "64", "--num-workers", "0", "--device", "cpu", "--batch-size", "4"]
    res = vgtrain("embed", *common, "--manifest", v2, "--out", desc, "--shard-size", "8", "--json")
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)
    m = EvalManifest.read(v2)
    n_db, n_q = len(m.database), len(m.queries)
    expected_parts = -(-n_db // 8) + -(-n_q // 8)
    assert first["count"] == n_db + n_q and first["written"] == expected_parts and first["skipped"] == 0
    parts = sorted(desc.glob("part-*.parquet"))
    assert len(parts) == expected_parts
    mtimes = [p.stat().st_mtime_ns for p in parts]
    res = vgtrain("embed", *common, "--manifest", v2, "--out", desc, "--shard-size", "8", "--json")
    assert res.exit_code == 0, res.output
    again = json.loads(res.output)
    assert again["written"] == 0 and again["skipped"] == expected_parts
    assert [p.stat().st_mtime_ns for p in parts] == mtimes  # not one shard rewritten
    parts[1].unlink()  # a lost shard: the next run writes it alone
    res = vgtrain("embed", *common, "--manifest", v2, "--out", desc, "--shard-size", "8", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["written"] == 1, res.output
    assert [p.stat().st_mtime_ns for i, p in enumerate(parts) if i != 1] == mtimes[:1] + mtimes[2:]
    # descriptors equal what eval computes: the same seeded model on the same images, computed here
    from vgtrain.eval import EvalConfig, load_model
    from vgtrain.recall import compute_descriptors

    model = load_model(EvalConfig(weights="random", eval_set="", out="", backbone="ResNet18", fc_output_dim=32,
                                  seed=3))[0]  # fmt: skip
    kw = {"image_size": 64, "batch_size": 4, "num_workers": 0, "device": torch.device("cpu")}
    ref_db = compute_descriptors(model, m.database, **kw)
    table = pq.read_table(desc).sort_by([("role", "ascending"), ("idx", "ascending")])
    stored = np.array(table["descriptor"].to_pylist(), dtype=np.float32)
    roles = table["role"].to_pylist()
    assert roles.count("database") == n_db and roles.count("query") == n_q
    assert table["image_id"].to_pylist()[:n_db] == m.database_ids.tolist()
    np.testing.assert_allclose(stored[:n_db], ref_db, atol=1e-5)
    # eval from the stored descriptors == eval computing them
    res = vgtrain("eval", *common, "--eval-set", v2, "--out", tmp_path / "plain")
    assert res.exit_code == 0, res.output
    res = vgtrain("eval", "--descriptors", desc, "--eval-set", v2, "--out", tmp_path / "stored", "--num-workers", "0")
    assert res.exit_code == 0, res.output
    plain = pq.read_table(tmp_path / "plain" / "predictions.parquet")
    from_store = pq.read_table(tmp_path / "stored" / "predictions.parquet")
    for col in ("query_idx", "query_image_id", "rank", "database_idx", "database_image_id", "is_positive"):
        assert plain[col].equals(from_store[col]), col
    np.testing.assert_allclose(plain["distance"].to_numpy(), from_store["distance"].to_numpy(), atol=1e-5)
    r_plain = json.loads((tmp_path / "plain" / "recalls.json").read_text())
    r_store = json.loads((tmp_path / "stored" / "recalls.json").read_text())
    assert r_plain["recalls"] == r_store["recalls"] and r_plain["intervals"] == r_store["intervals"]
    for key in ("checkpoint_sha256", "model", "image_size", "eval_set_fingerprint"):
        assert r_plain["protocol"][key] == r_store["protocol"][key], key
    # with --weights: the same checkpoint is accepted, another one refused; another manifest refused
    res = vgtrain("eval", *MODEL, "--descriptors", desc, "--eval-set", v2, "--out", tmp_path / "w")
    assert res.exit_code == 0, res.output
    other = [a if a != "3" else "4" for a in MODEL]  # --seed 4: another random model
    res = vgtrain("eval", *other, "--descriptors", desc, "--eval-set", v2, "--out", tmp_path / "x")
    assert res.exit_code == 1 and "another checkpoint" in res.output
    res = vgtrain("eval", "--descriptors", desc, "--eval-set", v1, "--out", tmp_path / "y")
    assert res.exit_code == 1 and "another manifest" in res.output
    # another run into the same folder is refused, not mixed in
    res = vgtrain("embed", *common, "--manifest", v2, "--out", desc, "--shard-size", "8", "--dtype", "float16")
    assert res.exit_code == 1 and "another run" in res.output


def test_every_embed_config_field_has_its_option():
    import dataclasses

    import typer

    from vgtrain.embed import EmbedConfig

    params = {p.name for p in typer.main.get_command(vgtrain_app).commands["embed"].params}
    fields = {f.name for f in dataclasses.fields(EmbedConfig)}
    assert (fields - {"image_roots"}) | {"image_root", "json_out"} == params


@pytest.mark.slow
def test_embed_groups_manifest_float16(tiny_catalog, tmp_path):
    from vgdata.groups import GroupsConfig, split_groups

    g = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2)).manifest
    rows = pq.read_table(g, columns=["image_id"])
    res = vgtrain("embed", *MODEL, "--manifest", g, "--out", tmp_path / "d", "--image-size", "32", "--dtype", "float16",
                  "--num-workers", "0", "--device", "cpu", "--shard-size", "1000", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "d" / "_meta.json").read_text())
    assert meta["complete"] and meta["count"] == rows.num_rows and meta["dtype"] == "float16" and meta["dim"] == 32
    table = pq.read_table(tmp_path / "d")
    assert table["image_id"].to_pylist() == rows["image_id"].to_pylist()  # the manifest's order
    assert table["role"].null_count == table["idx"].null_count == rows.num_rows
    kind = table.schema.field("descriptor").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 32 and kind.value_type == pa.float16()
    desc = np.array(table["descriptor"].to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=2e-3)  # unit vectors, float16 rounding
