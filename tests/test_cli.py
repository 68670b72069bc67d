"""The CLI contract (options -> config -> one library call) and its error behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

from typer.testing import CliRunner

from cli import vgdata_app, vgtrain_app
from vgdata.build import BuildConfig, BuildResult

runner = CliRunner()


def _result(**kw) -> BuildResult:
    base = {"catalog": "c", "collection": "database", "panoramas": 1, "images": 12, "rejects": 0}
    base |= {
        "rejects_by_reason": {},
        "fingerprint": "f" * 64,
        "catalog_fingerprint": "e" * 64,
        "shards": 1,
        "shards_skipped": 0,
    }
    return BuildResult(**{**base, **kw})


def test_build_catalog_passes_options_to_the_library(tmp_path):
    with patch("vgdata.build.build_catalog", return_value=_result()) as fn:
        res = runner.invoke(
            vgdata_app,
            ["build-catalog", str(tmp_path / "c"), "--panoramas", "p", "--metadata", "m.csv", "--quality", "90"]
            + ["--workers", "3", "--shard-size", "8", "--collection", "train", "--json"],
        )
    assert res.exit_code == 0, res.output
    config = fn.call_args.args[0]
    assert config == BuildConfig(
        catalog=tmp_path / "c",
        panoramas=Path("p"),
        metadata=Path("m.csv"),
        collection="train",
        quality=90,
        workers=3,
        shard_size=8,
    )
    assert json.loads(res.output)["images"] == 12


def test_strict_and_nothing_valid_exit_1(tmp_path):
    with patch("vgdata.build.build_catalog", return_value=_result(rejects=2, rejects_by_reason={"x": 2})):
        res = runner.invoke(vgdata_app, ["build-catalog", "c", "--images", "i", "--strict"])
    assert res.exit_code == 1 and "--strict and 2 input(s) were rejected" in res.output
    with patch("vgdata.build.build_catalog", return_value=_result(images=0, rejects=3)):
        res = runner.invoke(vgdata_app, ["build-catalog", "c", "--images", "i"])
    assert res.exit_code == 1 and "nothing valid remained" in res.output


def test_missing_input_is_one_line_exit_2(tmp_path):
    res = runner.invoke(vgdata_app, ["build-catalog", str(tmp_path / "c"), "--images", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: images folder not found: {tmp_path / 'nope'}"]
    assert "Traceback" not in res.output


def test_bad_csv_columns_exit_2(tmp_path, raw_panos):
    pano_dir, _ = raw_panos
    bad = tmp_path / "m.csv"
    bad.write_text("id,lat\n1,2\n")
    res = runner.invoke(
        vgdata_app, ["build-catalog", str(tmp_path / "c"), "--panoramas", str(pano_dir), "--metadata", str(bad)]
    )
    assert res.exit_code == 2 and "lacks required column(s) pano_id, lon, heading, timestamp" in res.output


def test_info_on_a_non_catalog_is_one_line(tmp_path):
    res = runner.invoke(vgdata_app, ["info", str(tmp_path)])
    assert res.exit_code == 2 and "is not a catalog" in res.output and "Traceback" not in res.output


def test_real_build_then_info_json_and_export(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    res = runner.invoke(
        vgdata_app,
        ["build-catalog", str(cat), "--panoramas", str(pano_dir), "--metadata", str(csv_path), "--workers", "1"],
    )
    assert res.exit_code == 0, res.output
    assert "6 panoramas, 72 images, 0 rejected" in res.output
    res = runner.invoke(vgdata_app, ["info", str(cat), "--json"])
    assert json.loads(res.output)["collections"][0]["images"] == 72
    res = runner.invoke(vgdata_app, ["export", str(cat), str(tmp_path / "out"), "--format", "at-folder"])
    assert res.exit_code == 0 and "database: 72 files" in res.output
    res = runner.invoke(vgdata_app, ["export", str(cat), str(tmp_path / "out"), "--format", "zip"])
    assert res.exit_code == 2 and "unknown export format 'zip'" in res.output


def test_vgtrain_env_reports_components():
    res = runner.invoke(vgtrain_app, ["env", "--json"])
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["python"].startswith("3.") and "torch" in info


def test_ctrl_c_says_how_to_resume():
    with patch("vgdata.build.build_catalog", side_effect=KeyboardInterrupt):
        res = runner.invoke(vgdata_app, ["build-catalog", "c", "--images", "i"])
    assert res.exit_code == 130 and "run the same command again to resume" in res.output


def test_split_groups_passes_cosplace_options(tmp_path):
    from vgdata.groups import GroupsConfig, GroupsResult

    result = GroupsResult(
        manifest="m.parquet", groups=[], total_groups=0, manifest_images=0, manifest_classes=0, reused=False
    )
    with patch("vgdata.groups.split_groups", return_value=result) as fn:
        res = runner.invoke(
            vgdata_app,
            ["split-groups", "cat", "--M", "15", "--alpha", "45", "--N", "3", "--L", "4"]
            + ["--min-images-per-class", "5", "--groups-num", "2", "--json"],
        )
    assert res.exit_code == 0, res.output
    assert fn.call_args.args[0] == GroupsConfig(
        catalog=Path("cat"), m=15, alpha=45, n=3, l=4, min_images_per_class=5, groups_num=2
    )
    assert json.loads(res.output)["manifest"] == "m.parquet"


def test_add_queries_passes_options(tmp_path):
    with patch("vgdata.build.build_catalog", return_value=_result()) as fn:
        res = runner.invoke(
            vgdata_app,
            ["add-queries", "cat", "--collection", "queries_v2", "--poses", "q.csv", "--images", "imgs"]
            + ["--short-side", "0", "--json"],
        )
    assert res.exit_code == 0, res.output
    assert fn.call_args.args[0] == BuildConfig(
        catalog=Path("cat"), poses=Path("q.csv"), poses_images=Path("imgs"), collection="queries_v2", short_side=0
    )
    res = runner.invoke(vgdata_app, ["add-queries", "cat", "--collection", "q"])
    assert res.exit_code == 2 and "exactly one of --photos DIR, --poses CSV or --from DATASET DIR" in res.output


def test_failed_plan_leaves_no_job_folder(tmp_path, raw_panos):
    pano_dir, _ = raw_panos
    bad = tmp_path / "m.csv"
    bad.write_text("pano_id,lat\n1,2\n")
    res = runner.invoke(
        vgdata_app, ["build-catalog", str(tmp_path / "c"), "--panoramas", str(pano_dir), "--metadata", str(bad)]
    )
    assert res.exit_code == 2 and not (tmp_path / "c" / "_jobs").exists()


def test_split_commands_on_a_real_catalog(tmp_path):
    from raw_panoramas import make_raw_panoramas

    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=12, width=416, seed=2, years=(2009, 2013, 2017))
    cat = str(tmp_path / "cat")
    res = runner.invoke(
        vgdata_app, ["build-catalog", cat, "--panoramas", str(pano_dir), "--metadata", str(csv_path), "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(vgdata_app, ["split-years", cat, "--name", "sfxl_star", "--queries-from", "2011", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["counts"] == {"sfxl_star_database": 48, "sfxl_star_queries": 96}
    res = runner.invoke(vgdata_app, ["split-test", cat, "--year", "2013", "--json"])
    assert json.loads(res.output)["counts"] == {"test_database": 48}
    res = runner.invoke(vgdata_app, ["split-years", cat, "--name", "x", "--queries-from", "2030"])
    assert res.exit_code != 0 and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_eval_set_command_on_a_real_catalog(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = str(tmp_path / "cat")
    runner.invoke(vgdata_app, ["build-catalog", cat, "--panoramas", str(pano_dir), "--metadata", str(csv_path)])
    args = ["eval-set", cat, "--name", "self", "--database", "database", "--queries", "database", "--json"]
    res = runner.invoke(vgdata_app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["n_database"], out["n_queries"], out["queries_without_positives"], out["reused"]) == (72, 72, 0, False)
    assert json.loads(runner.invoke(vgdata_app, args).output)["reused"] is True
    res = runner.invoke(vgdata_app, [*args[:6], "--queries", "nope"])
    assert res.exit_code == 2 and "no collection or split named 'nope'" in res.output
