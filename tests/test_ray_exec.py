"""--executor ray: the same shards, markers and fingerprint as the local pool, on a local 2-CPU Ray cluster.

One cluster serves the module (``ray_cluster``); ``run_shards`` uses a Ray session that is already up
and leaves it up. The subprocess tests start their own cluster, as a user's command does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.build import BuildConfig, build_catalog

ray = pytest.importorskip("ray")

ROOT = Path(__file__).parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def panos(tmp_path_factory):
    from raw_panoramas import make_raw_panoramas

    return make_raw_panoramas(tmp_path_factory.mktemp("raw"), n=6, seed=5)


def rows(cat: Path, table: str) -> list[dict]:
    return pq.read_table(sorted((cat / table).glob("*.parquet"))).to_pylist()


def crop_bytes(cat: Path) -> dict[str, bytes]:
    """Every finished crop file (a ``.tmp-`` file is an unfinished write, never a crop)."""
    files = (p for p in (cat / "crops").rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))
    return {str(p.relative_to(cat / "crops")): p.read_bytes() for p in files}


def local_ref(pano_dir: Path, csv_path: Path, cat: Path, shard_size: int):
    return build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1, shard_size=shard_size))


def test_ray_build_equals_local_build(ray_cluster, panos, tmp_path):
    pano_dir, csv_path = panos
    ref = local_ref(pano_dir, csv_path, tmp_path / "local", 2)
    cat = tmp_path / "ray"
    args = ["build-catalog", str(cat), "--panoramas", str(pano_dir), "--metadata", str(csv_path)]
    res = runner.invoke(vgdata_app, [*args, "--shard-size", "2", "--workers", "2", "--executor", "ray", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert (got["panoramas"], got["images"], got["shards"]) == (6, 72, 3)
    assert got["fingerprint"] == ref.fingerprint
    assert rows(cat, "images") == rows(tmp_path / "local", "images")
    assert rows(cat, "panoramas") == rows(tmp_path / "local", "panoramas")
    ray_crops = crop_bytes(cat)
    assert len(ray_crops) == 72 and ray_crops == crop_bytes(tmp_path / "local")
    assert sorted(p.name for p in (cat / "_jobs" / "database").glob("*.done")) == [
        "000000.done",
        "000001.done",
        "000002.done",
    ]


def test_add_queries_on_ray_equals_local(ray_cluster, tmp_path):
    from test_queries import make_photo, sf_gps

    folder = tmp_path / "photos"
    for k in range(3):
        make_photo(folder / f"p{k}.jpg", size=(600 + 40 * k, 400), gps=sf_gps(), noise=True)
    ref = build_catalog(BuildConfig(tmp_path / "local", photos=folder, collection="queries_v1", workers=1))
    cat = tmp_path / "ray"
    q = ["add-queries", str(cat), "--collection", "queries_v1", "--photos", str(folder), "--json"]
    res = runner.invoke(vgdata_app, [*q, "--executor", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["images"] == 3 and got["fingerprint"] == ref.fingerprint
    assert rows(cat, "images") == rows(tmp_path / "local", "images")
    queries = crop_bytes(cat)
    assert len(queries) == 3 and queries == crop_bytes(tmp_path / "local")


def test_executor_options_are_checked_at_the_door(tmp_path, panos):
    pano_dir, csv_path = panos
    args = ["build-catalog", str(tmp_path / "c"), "--panoramas", str(pano_dir), "--metadata", str(csv_path)]
    res = runner.invoke(vgdata_app, [*args, "--executor", "spark"])
    assert res.exit_code == 2 and res.output.strip() == "error: --executor must be local or ray, got 'spark'"
    res = runner.invoke(vgdata_app, [*args, "--ray-address", "auto"])
    assert res.exit_code == 2 and res.output.strip() == "error: --ray-address needs --executor ray"
    q = ["add-queries", str(tmp_path / "c"), "--collection", "queries_v1", "--photos", str(pano_dir)]
    res = runner.invoke(vgdata_app, [*q, "--executor", "dask"])
    assert res.exit_code == 2 and res.output.strip() == "error: --executor must be local or ray, got 'dask'"
    assert not (tmp_path / "c").exists()


def test_without_ray_executor_ray_is_one_line(tmp_path, panos):
    pano_dir, csv_path = panos
    argv = ["vgdata", "build-catalog", str(tmp_path / "c"), "--panoramas", str(pano_dir)]
    argv += ["--metadata", str(csv_path), "--executor", "ray"]
    code = f"import sys; sys.modules['ray'] = None; from cli import vgdata_app; sys.argv = {argv!r}; vgdata_app()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --executor ray needs the ray extra: pip install 'vgdata[ray]'"
    assert not (tmp_path / "c").exists()


def _ray_task_pids() -> list[int]:
    """Pids of Ray worker processes running a vgdata task now (Ray titles them ``ray::_call``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::_call"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_ray_worker_loses_and_duplicates_no_shard(ray_cluster, tmp_path):
    from raw_panoramas import make_raw_panoramas

    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=12, width=1664, seed=7)
    ref = local_ref(pano_dir, csv_path, tmp_path / "local", 3)
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for pid in _ray_task_pids():
                os.kill(pid, signal.SIGKILL)  # a real kill of the worker in the middle of its shard
                killed.append(pid)
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one)
    killer.start()
    cat = tmp_path / "ray"
    got = build_catalog(
        BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=3, executor="ray")
    )
    killer.join()
    assert killed, "no Ray worker was seen running a shard"
    assert got.fingerprint == ref.fingerprint and (got.panoramas, got.images, got.shards) == (12, 144, 4)
    images = rows(cat, "images")
    assert images == rows(tmp_path / "local", "images")
    assert len({r["image_id"] for r in images}) == 144
    assert crop_bytes(cat) == crop_bytes(tmp_path / "local")
    assert len(list((cat / "_jobs" / "database").glob("*.done"))) == 4


def _kill_build_part_way(cat: Path, pano_dir: Path, csv_path: Path, executor: str, shards: int) -> int:
    """Start ``vgdata build-catalog`` in its own session, kill -9 its whole process group once 2 shards are
    done; return the markers left."""
    cmd = [sys.executable, "-m", "cli", "build-catalog", str(cat), "--panoramas", str(pano_dir)]
    cmd += ["--metadata", str(csv_path), "--workers", "2", "--shard-size", "1", "--executor", executor, "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    job_dir = cat / "_jobs" / "database"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(job_dir.glob("*.done"))) < 2 and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(job_dir.glob("*.done")))
    assert 2 <= done < shards, f"the {executor} build should have been interrupted part-way ({done} done)"
    assert not (cat / "build.json").exists()
    return done


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [("local", "ray"), ("ray", "local")])
def test_killed_on_one_executor_resumes_on_the_other(ray_cluster, tmp_path, first, then):
    from raw_panoramas import make_raw_panoramas

    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=40, width=1664, seed=3)
    ref = local_ref(pano_dir, csv_path, tmp_path / "ref", 1)
    cat = tmp_path / "cat"
    done_before = _kill_build_part_way(cat, pano_dir, csv_path, first, 40)
    resumed = build_catalog(
        BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=1, executor=then)
    )
    assert resumed.shards_skipped >= done_before
    assert resumed.fingerprint == ref.fingerprint and (resumed.images, resumed.panoramas) == (480, 40)
    assert rows(cat, "images") == rows(tmp_path / "ref", "images")
    assert crop_bytes(cat) == crop_bytes(tmp_path / "ref")


@pytest.mark.slow
def test_ray_address_runs_the_job_on_that_cluster(ray_cluster, panos, tmp_path):
    pano_dir, csv_path = panos
    ref = local_ref(pano_dir, csv_path, tmp_path / "local", 3)
    address = ray.get_runtime_context().gcs_address  # the module's running cluster, as a user's head node
    cat = tmp_path / "ray"
    cmd = [sys.executable, "-m", "cli", "build-catalog", str(cat), "--panoramas", str(pano_dir)]
    cmd += ["--metadata", str(csv_path), "--shard-size", "3", "--executor", "ray", "--ray-address", address, "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fingerprint"] == ref.fingerprint
    assert rows(cat, "images") == rows(tmp_path / "local", "images")
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # a disconnect, not a shutdown
