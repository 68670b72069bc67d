"""The manifest contract: versioned, image roots relative to the catalog, --image-root overrides.

A catalog folder copied elsewhere with its manifests (the original renamed away) trains and
evaluates from the copy; a moved image folder is reached with ``--image-root``; a bad
``--image-root``, a missing image folder and an unknown format version are one line each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgtrain.fit import FitConfig, fit
from vgtrain.manifest import EvalManifest, GroupsManifest, ManifestError, parse_image_roots

ROOT = Path(__file__).resolve().parents[1]
VGTRAIN = [sys.executable, "-c", "from cli import vgtrain_app; vgtrain_app()"]


def vgtrain(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([*VGTRAIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res


def one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def rewrite_meta(src: Path, dst: Path, **changes: str) -> Path:
    table = pq.read_table(src)
    meta = {**table.schema.metadata, **{k.encode(): v.encode() for k, v in changes.items()}}
    pq.write_table(table.replace_schema_metadata(meta), dst)
    return dst


@pytest.fixture(scope="module")
def moved(tiny_catalog, tmp_path_factory) -> dict[str, Path]:
    """Manifests built in a catalog at ``orig/cat``, the folder copied to ``elsewhere/cat``, the original renamed."""
    base = tmp_path_factory.mktemp("portable")
    orig = base / "orig" / "cat"
    shutil.copytree(tiny_catalog, orig)
    shutil.rmtree(orig / "manifests", ignore_errors=True)  # other tests' manifests: these are written here
    groups = Path(split_groups(GroupsConfig(orig, min_images_per_class=1, groups_num=2)).manifest)
    val = eval_set(orig, name="val_v2", database="database", queries="queries_v2").manifest
    copy = base / "elsewhere" / "cat"
    shutil.copytree(orig, copy)
    orig.rename(base / "orig" / "gone")  # nothing may read the original any more
    return {
        "orig": orig,
        "copy": copy,
        "groups": copy / "manifests" / groups.name,
        "val": copy / "manifests" / val.name,
    }


def test_manifests_carry_a_version_relative_roots_and_the_location_hint(moved):
    for name in ("groups", "val"):
        meta = {k.decode(): v.decode() for k, v in pq.read_schema(moved[name]).metadata.items()}
        assert meta["vgdata.manifest_format"] == "4"
        assert json.loads(meta["vgdata.image_roots"]) == {
            "database": "crops/database",
            "queries_v1": "crops/queries_v1",
            "queries_v2": "crops/queries_v2",
        }
        assert meta["vgdata.catalog_location"] == str(moved["orig"].resolve())  # where it was written


@pytest.mark.slow
def test_copied_catalog_trains_and_evaluates_from_the_copy(moved, tmp_path):
    copy = moved["copy"]
    g = GroupsManifest.read(moved["groups"])
    assert g.image_roots == {"database": str(copy / "crops" / "database")}
    paths = [p for classes in g.groups for ps in classes for p in ps]
    assert len(paths) == 48 and all(p.startswith(f"{copy}/crops/database/") and Path(p).is_file() for p in paths)
    v = EvalManifest.read(moved["val"])
    assert all(p.startswith(f"{copy}/crops/database/") for p in v.database)
    assert all(p.startswith(f"{copy}/crops/queries_v2/") for p in v.queries)

    config = FitConfig(
        groups=str(moved["groups"]), val=str(moved["val"]), out=str(tmp_path / "run"), image_size=32, batch_size=4,
        device="cpu", iterations_per_epoch=2, epochs_num=1, groups_num=1, num_workers=0, fc_output_dim=32,
        infer_batch_size=32, val_image_size=32,
    )  # fmt: skip
    summary = fit(config)
    assert len(summary["history"]) == 1 and summary["run_dir"] == str(tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").is_file()

    out = tmp_path / "eval"
    res = vgtrain("eval", "--weights", str(tmp_path / "run"), "--eval-set", str(moved["val"]), "--out", str(out),
                  "--image-size", "32", "--batch-size", "32", "--num-workers", "0", "--device", "cpu",
                  "--num-preds-to-save", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    protocol = json.loads((out / "recalls.json").read_text())["protocol"]
    assert (protocol["n_database"], protocol["n_queries"]) == (len(v.database), len(v.queries))
    assert protocol["eval_set"] == str(moved["val"])


@pytest.mark.slow
def test_image_root_override_reaches_a_moved_folder(moved, tmp_path):
    copy = moved["copy"]
    elsewhere = tmp_path / "queries_v2_images"
    shutil.copytree(copy / "crops" / "queries_v2", elsewhere)
    (copy / "crops" / "queries_v2").rename(copy / "crops" / "queries_v2.away")
    try:
        with pytest.raises(ManifestError) as e:
            EvalManifest.read(moved["val"])
        assert str(e.value) == (
            f"image folder of collection 'queries_v2' not found: {copy}/crops/queries_v2 ('crops/queries_v2' "
            f"relative to the catalog {copy}; eval manifest {moved['val']}; it was written in catalog "
            f"{moved['orig'].resolve()}); keep the manifest in <catalog>/manifests/ beside the images, or pass "
            "--image-root queries_v2=DIR"
        )
        v = EvalManifest.read(moved["val"], image_roots=parse_image_roots([f"queries_v2={elsewhere}"]))
        assert v.image_roots == {"database": str(copy / "crops" / "database"), "queries_v2": str(elsewhere)}
        assert all(p.startswith(f"{elsewhere}/") and Path(p).is_file() for p in v.queries)

        out = tmp_path / "eval"
        res = vgtrain("eval", "--weights", "random", "--backbone", "ResNet18", "--fc-output-dim", "32",
                      "--eval-set", str(moved["val"]), "--out", str(out), "--image-size", "32", "--batch-size", "32", "--num-workers", "0",
                      "--device", "cpu", "--num-preds-to-save", "0", "--image-root", f"queries_v2={elsewhere}")  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert json.loads((out / "recalls.json").read_text())["protocol"]["n_queries"] == len(v.queries)
    finally:
        (copy / "crops" / "queries_v2.away").rename(copy / "crops" / "queries_v2")


@pytest.mark.slow
def test_bad_image_root_is_one_line(moved, tmp_path):
    common = ["--out", str(tmp_path / "r"), "--device", "cpu", "--num-workers", "0"]
    res = vgtrain("fit", "--groups", str(moved["groups"]), "--val", str(moved["val"]), *common,
                  "--image-root", "database")  # fmt: skip
    assert one_error_line(res) == (
        "error: --image-root must be COLLECTION=DIR (e.g. database=/data/crops/database), got 'database'"
    )
    res = vgtrain("fit", "--groups", str(moved["groups"]), "--val", str(moved["val"]), *common,
                  "--image-root", f"databse={tmp_path}")  # fmt: skip
    assert one_error_line(res) == (
        "error: --image-root names unknown collection(s) databse; the manifests have: database, queries_v1, queries_v2"
    )
    assert not (tmp_path / "r").exists()
    with pytest.raises(ManifestError, match=r"^--image-root gives collection 'a' twice; give each collection once$"):
        parse_image_roots(["a=/x", "a=/y"])


@pytest.mark.slow
def test_unknown_format_version_is_one_line_and_format_1_is_still_read(moved, tmp_path):
    newer = rewrite_meta(moved["val"], moved["copy"] / "manifests" / "eval_newer.parquet",
                         **{"vgdata.manifest_format": "5"})  # fmt: skip
    res = vgtrain("eval", "--weights", "random", "--backbone", "ResNet18", "--eval-set", str(newer),
                  "--out", str(tmp_path / "e"), "--device", "cpu")  # fmt: skip
    assert one_error_line(res) == (
        f"error: eval manifest {newer} has format version '5', which this vgtrain cannot read (it reads 1, 2, 3, 4); "
        "upgrade vgtrain, or rebuild the manifest with this version's `vgdata eval-set`"
    )
    # format 1 (no version key, absolute roots) from anywhere: read as it was
    table = pq.read_table(moved["val"])
    meta = {k: v for k, v in table.schema.metadata.items() if k not in (b"vgdata.manifest_format",)}
    copy = moved["copy"]
    meta[b"vgdata.image_roots"] = json.dumps({c: str(copy / "crops" / c) for c in ("database", "queries_v2")}).encode()
    old = tmp_path / "eval_old.parquet"
    pq.write_table(table.replace_schema_metadata(meta), old)
    assert EvalManifest.read(old).queries == EvalManifest.read(moved["val"]).queries


def test_a_relative_root_that_leaves_the_catalog_is_refused(moved):
    escape = rewrite_meta(moved["val"], moved["copy"] / "manifests" / "eval_escape.parquet",
                          **{"vgdata.image_roots": json.dumps({"database": "../..", "queries_v2": "crops/queries_v2"})})  # fmt: skip
    with pytest.raises(
        ManifestError, match=r"image root '\.\./\.\.' of collection 'database' leaves the catalog folder"
    ):
        EvalManifest.read(escape)
