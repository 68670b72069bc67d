"""vgtrain.knn: exact flat search (faiss and the torch fallback) and IVF-PQ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vgtrain import knn
from vgtrain.knn import NO_FAISS_IVFPQ, IndexSpec, search, train_ivfpq

ROOT = Path(__file__).resolve().parents[1]
needs_faiss = pytest.mark.skipif(knn._faiss() is None, reason="faiss is not installed")


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(db: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((q.astype(np.float64)[:, None, :] - db.astype(np.float64)[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d2, idx, axis=1), idx


def clustered(seed: int, n: int = 6000, d: int = 64, centres: int = 40, n_q: int = 200, noise: float = 0.05):
    """Unit rows around ``centres`` centres; queries are rows ``source`` plus a little noise."""
    rng = np.random.default_rng(seed)
    c = unit_rows(rng, centres, d)
    db = c[rng.integers(centres, size=n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    source = rng.choice(n, size=n_q, replace=False)
    q = db[source] + noise * rng.standard_normal((n_q, d)).astype(np.float32) / np.sqrt(d)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return db.astype(np.float32), q.astype(np.float32), source


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return unit_rows(rng, 2000, 64), unit_rows(rng, 50, 64)


@pytest.fixture
def no_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError


@needs_faiss
def test_flat_equals_brute_force(data):
    db, q = data
    dist, idx = search(db, q, 10)
    ref_d, ref_i = brute_force(db, q, 10)
    assert dist.shape == idx.shape == (50, 10)
    assert dist.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(dist, axis=1) >= 0)
    # unit vectors: squared L2 = 2 - 2 cos
    np.testing.assert_allclose(dist[:, 0], 2 - 2 * np.einsum("qd,qd->q", q, db[idx[:, 0]]), atol=1e-5)


@needs_faiss
def test_flat_query_in_database_is_its_own_neighbour(data):
    db, _ = data
    dist, idx = search(db, db[[3, 1999, 700]], 1)
    assert idx[:, 0].tolist() == [3, 1999, 700]
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-5)


@needs_faiss
def test_torch_fallback_equals_faiss_flat(data, no_faiss, monkeypatch):
    db, q = data
    monkeypatch.undo()  # faiss back for the reference
    ref_d, ref_i = search(db, q, 10)
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert knn._faiss() is None
    dist, idx = search(db, q, 10)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=1e-5)
    # memory-bounded blocks: 7 query rows per distance block
    monkeypatch.setattr(knn, "_TORCH_BLOCK_BYTES", 4 * len(db) * 7)
    monkeypatch.setattr(knn, "_TORCH_DB_CHUNK", 300)
    d7, i7 = search(db, q, 10)
    np.testing.assert_array_equal(i7, ref_i)
    np.testing.assert_allclose(d7, ref_d, rtol=1e-4, atol=1e-5)


@needs_faiss
@pytest.mark.parametrize("batch", [1, 7, 50, 1000])
def test_flat_batch_equals_one_call(data, batch):
    db, q = data
    d0, i0 = search(db, q, 5)
    d1, i1 = search(db, q, 5, batch=batch)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-6)


def test_torch_batch_equals_one_call(data, no_faiss):
    db, q = data
    d0, i0 = search(db, q, 5)
    d1, i1 = search(db, q, 5, batch=3)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-6)  # BLAS blocking differs with the row count


@needs_faiss
@pytest.mark.slow
def test_ivfpq_finds_true_neighbour_on_clustered_data():
    db, q, source = clustered(seed=1)
    spec = IndexSpec(kind="ivfpq", nlist=32, m=16, nprobe=8)
    dist, idx = search(db, q, 5, spec, seed=0)
    assert dist.shape == idx.shape == (200, 5)
    found = np.mean(idx[:, 0] == source)
    assert found >= 0.9, found
    flat_found = np.mean(search(db, q, 1)[1][:, 0] == source)
    assert flat_found == 1.0
    # PQ distances approximate the exact ones
    exact = ((q - db[idx[:, 0]]) ** 2).sum(1)
    assert np.median(np.abs(dist[:, 0] - exact)) < 0.05


@needs_faiss
def test_ivfpq_seeded_and_batched():
    db, q, _ = clustered(seed=2, n=3000)
    spec = IndexSpec(kind="ivfpq", nlist=16, m=8, nprobe=4, train_size=2000)
    d0, i0 = search(db, q, 5, spec, seed=3)
    d1, i1 = search(db, q, 5, spec, seed=3, batch=13)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-6)


@needs_faiss
def test_train_ivfpq_settings():
    db, _, _ = clustered(seed=3, n=3000)
    index = train_ivfpq(db, IndexSpec(kind="ivfpq", nlist=16, m=8, nprobe=64), seed=0)
    assert index.is_trained and index.ntotal == 0
    assert (index.nlist, index.pq.M, index.pq.nbits, index.nprobe) == (16, 8, 8, 16)  # nprobe clamped to nlist


def test_auto_sizes():
    assert IndexSpec().resolved(2_800_000) == (6693, 334_650)
    assert IndexSpec().resolved(1_000_000) == (4000, 200_000)
    assert IndexSpec().resolved(2000) == (179, 2000)
    assert IndexSpec().resolved(10) == (10, 10)  # clamped to the training size
    assert IndexSpec(nlist=100, train_size=5000).resolved(3000) == (100, 3000)
    assert IndexSpec().resolved(10**12)[0] == 65536


@needs_faiss
def test_k_clamped_to_database(data):
    db, q = data
    dist, idx = search(db[:4], q, 10)
    assert idx.shape == (50, 4)
    assert sorted(idx[0].tolist()) == [0, 1, 2, 3]


@needs_faiss
def test_inputs_made_float32_contiguous(data):
    db, q = data
    ref = search(db, q, 3)[1]
    np.testing.assert_array_equal(search(db.astype(np.float64), np.asfortranarray(q), 3)[1], ref)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be >= 1"),
        ({"k": -3}, "k must be >= 1"),
        ({"spec": IndexSpec(kind="ivfpq", m=48)}, "PQ m=48 must divide D=64"),
        ({"spec": IndexSpec(kind="ivfpq", m=0)}, "PQ m=0 must divide D=64"),
        ({"spec": IndexSpec(kind="hnsw")}, "unknown index kind"),
        ({"spec": IndexSpec(kind="ivfpq", nlist=4000)}, "training vectors"),
        ({"batch": -1}, "batch must be >= 0"),
    ],
)
def test_validation(data, kwargs, message):
    db, q = data
    args = {"k": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        search(db, q, **args)


def test_validation_shapes(data):
    db, q = data
    with pytest.raises(ValueError, match="queries have D=32, database D=64"):
        search(db, q[:, :32], 1)
    with pytest.raises(ValueError, match="must be 2-D"):
        search(db, q[0], 1)
    with pytest.raises(ValueError, match="empty database"):
        search(db[:0], q, 1)


def test_ivfpq_without_faiss(data, no_faiss):
    db, q = data
    with pytest.raises(ValueError) as err:
        search(db, q, 5, IndexSpec(kind="ivfpq", m=16))
    assert str(err.value) == "IVF-PQ needs faiss: pip install faiss-cpu (or faiss-gpu)" == NO_FAISS_IVFPQ
    with pytest.raises(ValueError, match="IVF-PQ needs faiss"):
        train_ivfpq(db, IndexSpec(kind="ivfpq", m=16))
    # flat still works, through torch
    assert search(db, q, 1)[1].shape == (50, 1)


@needs_faiss
def test_faiss_import_leaves_environment():
    # in a fresh process: re-importing faiss in this one would wrap its classes twice
    code = (
        "import os; from vgtrain import knn; f = knn._faiss(); print(f is not None, os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "None"]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.split() == ["True", "ACTIVE"]


def test_rerank_exact_equals_brute_force_on_the_candidates(data):
    db, q = data
    rng = np.random.default_rng(5)
    cand = rng.integers(len(db), size=(len(q), 30)).astype(np.int64)
    cand[0, 5:] = -1  # query 0 has only 5 candidates
    cand[1, :] = -1  # query 1 has none
    dist, idx = knn.rerank_exact(db, q, cand, 10)
    assert dist.shape == idx.shape == (50, 10) and dist.dtype == np.float32 and idx.dtype == np.int64
    for i in range(2, len(q)):
        d2 = ((db[cand[i]].astype(np.float64) - q[i]) ** 2).sum(1)
        order = np.argsort(d2, kind="stable")[:10]
        np.testing.assert_array_equal(idx[i], cand[i][order])
        np.testing.assert_allclose(dist[i], d2[order], rtol=1e-4, atol=1e-5)
    assert sorted(idx[0, :5].tolist()) == sorted(cand[0, :5].tolist()) and idx[0, 5:].tolist() == [-1] * 5
    assert np.isinf(dist[0, 5:]).all() and idx[1].tolist() == [-1] * 10 and np.isinf(dist[1]).all()


def test_rerank_numpy_path_equals_faiss_path(data, no_faiss, monkeypatch):
    db, q = data
    cand = np.random.default_rng(6).integers(len(db), size=(len(q), 40)).astype(np.int64)
    monkeypatch.setattr(knn, "_TORCH_BLOCK_BYTES", 4 * 40 * 64 * 3)  # 3 queries per chunk
    d_np, i_np = knn.rerank_exact(db, q, cand, 7)
    monkeypatch.undo()
    if knn._faiss() is None:
        pytest.skip("faiss is not installed")
    d_fa, i_fa = knn.rerank_exact(db, q, cand, 7)
    np.testing.assert_array_equal(i_np, i_fa)
    np.testing.assert_allclose(d_np, d_fa, rtol=1e-4, atol=1e-5)


@needs_faiss
def test_ivfpq_rerank_gives_exact_distances_and_recovers_the_neighbour():
    db, q, source = clustered(seed=4)
    coarse = IndexSpec(kind="ivfpq", nlist=16, m=4, nprobe=16)  # 4-byte codes: a crude ranking
    _, plain = search(db, q, 5, coarse, seed=0)
    dist, idx = search(db, q, 5, IndexSpec(kind="ivfpq", nlist=16, m=4, nprobe=16, rerank=50), seed=0)
    exact = ((q[:, None, :] - db[idx]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, exact, rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(dist, axis=1) >= 0)
    found_plain, found = np.mean(plain[:, 0] == source), np.mean(idx[:, 0] == source)
    assert found == 1.0 and found_plain < 1.0, (found_plain, found)
    # batched gives the same
    d_b, i_b = search(db, q, 5, IndexSpec(kind="ivfpq", nlist=16, m=4, nprobe=16, rerank=50), seed=0, batch=17)
    np.testing.assert_array_equal(i_b, idx)
