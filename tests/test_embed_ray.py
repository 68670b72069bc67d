"""vgtrain embed --executor ray: the same shards, keys and _meta.json as the local executor, on a 2-CPU Ray cluster.

One local cluster serves the module (``ray_cluster``); ``run_embed`` uses a Ray session that is already up
and leaves it up. The no-ray test runs the CLI in a subprocess where ``import ray`` fails.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgtrain_app
from vgdata.evalset import eval_set

ray = pytest.importorskip("ray")

ROOT = Path(__file__).parents[1]
COMMON = ["--weights", "random", "--backbone", "ResNet18", "--fc-output-dim", "32", "--seed", "5",
          "--image-size", "32", "--num-workers", "0", "--batch-size", "4", "--shard-size", "6", "--json"]  # fmt: skip
"""A seeded untrained model (the same weights in every process), small images, several shards per role."""


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(tiny_catalog) -> str:
    return str(eval_set(tiny_catalog, name="v2", database="database", queries="queries_v2").manifest)


def embed(manifest: str, out: Path, *extra: str) -> dict:
    res = CliRunner().invoke(vgtrain_app, ["embed", *COMMON, "--manifest", manifest, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def parts(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.glob("part-*.parquet"))}


def assert_same_shards(a: Path, b: Path, names: list[str] | None = None) -> None:
    """Same shard files, rows in the same order, same key; descriptors within 1e-5."""
    pa_, pb = parts(a), parts(b)
    assert list(pa_) == list(pb)
    for name in names or list(pa_):
        ta, tb = pq.read_table(pa_[name]), pq.read_table(pb[name])
        for col in ("image_id", "role", "idx"):
            assert ta[col].equals(tb[col]), (name, col)
        assert ta.schema.metadata == tb.schema.metadata, name  # the run's key
        da = np.array(ta["descriptor"].to_pylist(), dtype=np.float32)
        db = np.array(tb["descriptor"].to_pylist(), dtype=np.float32)
        np.testing.assert_allclose(da, db, atol=1e-5)


@pytest.mark.slow
def test_ray_equals_local_and_resumes_across_executors(ray_cluster, manifest, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    first = embed(manifest, local, "--device", "cpu")
    table = pq.read_table(manifest, columns=["role"])
    n_db, n_q = table["role"].to_pylist().count("database"), table["role"].to_pylist().count("query")
    n_parts = -(-n_db // 6) + -(-n_q // 6)
    assert first["written"] == n_parts >= 4 and first["settings"]["device"] == "cpu"
    r = embed(manifest, on_ray, "--executor", "ray", "--device", "auto")  # no GPU in this cluster: cpu actors
    assert r["written"] == n_parts and r["skipped"] == 0 and r["settings"]["device"] == "cpu"
    assert_same_shards(local, on_ray)
    meta_l = json.loads((local / "_meta.json").read_text())
    meta_r = json.loads((on_ray / "_meta.json").read_text())
    assert meta_l == meta_r and meta_r["complete"]  # same key, parts, manifest: the executor is not recorded
    # every image of the manifest once, database rows then query rows, in idx order (the plan's order)
    stored = pq.read_table(on_ray)
    assert stored["role"].to_pylist() == ["database"] * n_db + ["query"] * n_q
    assert stored["idx"].to_pylist() == list(range(n_db)) + list(range(n_q))

    # a local run that lost one shard finishes on Ray: that shard alone is rewritten
    files = parts(local)
    lost = sorted(files)[2]
    before = {name: p.stat().st_mtime_ns for name, p in files.items() if name != lost}
    files[lost].unlink()
    r = embed(manifest, local, "--executor", "ray")
    assert r["written"] == 1 and r["skipped"] == n_parts - 1
    assert {name: p.stat().st_mtime_ns for name, p in parts(local).items() if name != lost} == before
    assert_same_shards(local, on_ray)
    # and the other way round: a Ray run resumed locally
    files = parts(on_ray)
    lost = sorted(files)[-1]
    files[lost].unlink()
    r = embed(manifest, on_ray, "--device", "cpu")
    assert r["written"] == 1 and r["skipped"] == n_parts - 1
    assert_same_shards(local, on_ray, [lost])


@pytest.mark.slow
def test_ray_refuses_cuda_without_gpus_and_bad_executor(ray_cluster, manifest, tmp_path):
    res = CliRunner().invoke(vgtrain_app, ["embed", *COMMON, "--manifest", manifest, "--out", str(tmp_path / "d"),
                                           "--executor", "ray", "--device", "cuda"])  # fmt: skip
    assert res.exit_code == 1 and "has no GPU" in res.output and len(res.output.strip().splitlines()) == 1
    assert not list((tmp_path / "d").glob("part-*"))
    res = CliRunner().invoke(vgtrain_app, ["embed", *COMMON, "--manifest", manifest, "--out", str(tmp_path / "e"),
                                           "--executor", "dask"])  # fmt: skip
    assert res.exit_code == 1 and "--executor must be local or ray" in res.output


def test_executor_ray_without_ray_is_one_line(tmp_path):
    argv = ["vgtrain", "embed", "--weights", "random", "--manifest", str(tmp_path / "m.parquet"),
            "--out", str(tmp_path / "d"), "--executor", "ray"]  # fmt: skip
    code = f"import sys; sys.modules['ray'] = None; from cli import vgtrain_app; sys.argv = {argv!r}; vgtrain_app()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --executor ray needs the ray extra: pip install 'vgdata[ray]'"
    assert not (tmp_path / "d").exists()
