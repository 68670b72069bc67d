"""vgtrain fit on the synthetic city: loss decreases, resume == uninterrupted, 2-process DDP, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgtrain.fit import FitConfig, fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifests(tiny_catalog) -> tuple[str, str]:
    g = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2))
    v = eval_set(tiny_catalog, name="val_v2", database="database", queries="queries_v2")
    return g.manifest, v.manifest


def small(manifests, out: Path, **kw) -> FitConfig:
    groups, val = manifests
    base = {"groups": groups, "val": val, "out": str(out), "image_size": 64, "batch_size": 8, "device": "cpu"}
    base |= {"iterations_per_epoch": 6, "epochs_num": 2, "groups_num": 2, "num_workers": 0, "fc_output_dim": 32}
    base |= {"infer_batch_size": 8, "val_image_size": 64}
    return FitConfig(**{**base, **kw})


@pytest.mark.slow
def test_short_fit_loss_decreases_and_writes_checkpoints(manifests, tmp_path):
    summary = fit(small(manifests, tmp_path / "run", groups_num=1, epochs_num=3, iterations_per_epoch=8))
    losses = [h["loss"] for h in summary["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    for name in ("last.pt", "last.state.pt", "last.meta.json", "best.pt", "best.meta.json", "log.txt"):
        assert (tmp_path / "run" / name).is_file(), name
    meta = json.loads((tmp_path / "run" / "last.meta.json").read_text())
    assert meta["epoch"] == 2 and meta["model_args"]["backbone"] == "ResNet18" and set(meta["recall"]) >= {"1", "5"}
    assert meta["config"]["image_size"] == 64 and meta["fingerprints"]["groups"]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "samples/s" in log and "data-wait" in log and "val R@1" in log
    weights = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert "aggregation.1.p" in weights and "backbone.0.weight" in weights


@pytest.mark.slow
def test_resume_equals_uninterrupted(manifests, tmp_path):
    fit(small(manifests, tmp_path / "full", epochs_num=3))
    fit(small(manifests, tmp_path / "part", epochs_num=1))
    fit(small(manifests, tmp_path / "part", epochs_num=3, resume=str(tmp_path / "part")))
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(tmp_path / "full" / "last.state.pt", weights_only=True)
    sb = torch.load(tmp_path / "part" / "last.state.pt", weights_only=True)
    for ca, cb in zip(sa["classifiers"], sb["classifiers"], strict=True):
        assert torch.equal(ca["weight"], cb["weight"])


def tiny_fit_args(manifests, out: Path) -> list[str]:
    """`vgtrain fit` options of a tiny 2-epoch CPU run (batch 4 per process)."""
    groups, val = manifests
    args = ["--groups", groups, "--val", val, "--out", str(out), "--image-size", "64", "--batch-size", "4"]
    args += ["--iterations-per-epoch", "3", "--epochs-num", "2", "--groups-num", "2", "--num-workers", "0"]
    return args + ["--device", "cpu", "--fc-output-dim", "32", "--infer-batch-size", "8", "--val-image-size", "64"]


def assert_two_rank_run(res: subprocess.CompletedProcess, out: Path) -> None:
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    meta = json.loads((out / "last.meta.json").read_text())
    assert meta["world_size"] == 2
    digests = meta["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert res.stdout.count("done in") == 2 and res.stdout.count("best val R@1") == 1  # only rank 0 logs


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_weights(manifests, tmp_path):
    """The one DDP entry: torchrun runs the `vgtrain` console script (the library never imports cli)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    vgtrain = str(Path(sys.executable).with_name("vgtrain"))  # installed with the package, next to the interpreter
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--no-python"]
    cmd += [vgtrain, "fit", *tiny_fit_args(manifests, tmp_path / "ddp")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert_two_rank_run(res, tmp_path / "ddp")


@pytest.mark.slow
def test_nproc_relaunch_rebuilds_the_options_from_the_parsed_command(manifests, tmp_path):
    """`--nproc=2` (one token) is not passed on to the ranks, and an option value that reads `fit` is kept."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "fit"
    cmd = [sys.executable, "-c", "from cli import vgtrain_app; vgtrain_app()", "fit", "--nproc=2"]
    res = subprocess.run(
        [*cmd, *tiny_fit_args(manifests, out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert "Traceback" not in res.stderr
    assert_two_rank_run(res, out)
    assert json.loads((out / "last.meta.json").read_text())["config"]["out"] == str(out)


def test_bad_manifest_and_too_few_groups_are_one_line(manifests, tmp_path):
    from typer.testing import CliRunner

    from cli import vgtrain_app

    groups, val = manifests
    broken = tmp_path / "broken.parquet"
    t = pq.read_table(groups)
    pq.write_table(t.drop(["class_index"]).replace_schema_metadata(t.schema.metadata), broken)
    runner = CliRunner()
    args = ["fit", "--val", val, "--out", str(tmp_path / "r"), "--num-workers", "0", "--device", "cpu"]
    res = runner.invoke(vgtrain_app, [*args, "--groups", str(broken)])
    assert res.exit_code == 1 and "class_index" in res.output and "Traceback" not in res.output
    res = runner.invoke(vgtrain_app, [*args, "--groups", groups, "--groups-num", "9"])
    assert res.exit_code == 1 and "use --groups-num 2" in res.output
    empty = tmp_path / "noval.parquet"
    v = pq.read_table(val)
    no_pos = v.set_column(
        v.schema.get_field_index("positives"),
        "positives",
        pa.array([[] if r == "query" else None for r in v.column("role").to_pylist()], pa.list_(pa.int32())),
    )
    pq.write_table(no_pos.replace_schema_metadata(v.schema.metadata), empty)
    res = runner.invoke(vgtrain_app, ["fit", "--groups", groups, "--val", str(empty), "--out", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "positive" in res.output


@pytest.mark.slow
def test_imprint_sets_each_row_to_the_mean_normalised_descriptor_of_its_class(manifests):
    """Expected rows from Pillow + torch directly (no vgtrain loader): mean of L2-normalised descriptors."""
    import numpy as np
    from PIL import Image

    from vgtrain.data import GroupsManifest
    from vgtrain.fit import imprint
    from vgtrain.losses import CosFace
    from vgtrain.model import build_model

    torch.manual_seed(0)
    model = build_model("ResNet18", 32, False, None).eval()
    classes = GroupsManifest.read(manifests[0]).groups[0]
    head = CosFace(32, len(classes))
    imprint(head, model, classes, image_size=64, batch_size=5, num_workers=0, device=torch.device("cpu"))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for c, paths in enumerate(classes[:6]):
        rows = []
        for p in paths:
            with Image.open(p) as im:
                a = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32)
            x = (torch.from_numpy(a).permute(2, 0, 1) / 255 - mean) / std
            with torch.no_grad():
                d = model(x[None])[0]
            rows.append(d / d.norm())
        expected = torch.stack(rows).mean(0)
        expected = expected / expected.norm()
        assert torch.allclose(head.weight[c], expected, atol=1e-5), c
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(len(classes)), atol=1e-5)


@pytest.mark.slow
def test_imprint_fit_resumes_to_the_uninterrupted_weights(manifests, tmp_path):
    kw = {"classifier_init": "imprint", "iterations_per_epoch": 4}
    fit(small(manifests, tmp_path / "full", epochs_num=3, **kw))
    fit(small(manifests, tmp_path / "part", epochs_num=1, **kw))  # group 1 is first trained (imprinted) after resume
    fit(small(manifests, tmp_path / "part", epochs_num=3, resume=str(tmp_path / "part"), **kw))
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "full" / "log.txt").read_text()
    assert log.count("class rows imprinted") == 2  # groups 0 and 1 once each, not again at epoch 2


def test_unknown_classifier_init_is_a_one_line_error(manifests, tmp_path):
    from typer.testing import CliRunner

    from cli import vgtrain_app

    groups, val = manifests
    args = ["fit", "--groups", groups, "--val", val, "--out", str(tmp_path / "r"), "--num-workers", "0"]
    res = CliRunner().invoke(vgtrain_app, [*args, "--device", "cpu", "--classifier-init", "zeros"])
    assert res.exit_code == 1 and "--classifier-init must be random or imprint" in res.output
    assert "Traceback" not in res.output
