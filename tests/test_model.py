"""vgtrain.model, vgtrain.losses and vgtrain.compat: CosPlace's exact layout, freezing, GeM, CosFace."""

from __future__ import annotations

import math
import subprocess
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from vgtrain import compat  # noqa: E402
from vgtrain.compat import import_torchvision  # noqa: E402
from vgtrain.errors import CheckpointError  # noqa: E402
from vgtrain.losses import CosFace  # noqa: E402
from vgtrain.model import (  # noqa: E402
    BACKBONES,
    CHANNELS,
    GeM,
    GeoLocalizationNet,
    L2Norm,
    ModelError,
    build_model,
    load_state_dict_checked,
    model_args,
)

RANDOM_INIT = "ignore:the .* backbone is randomly initialised"


# --- the expected CosPlace state_dict, written out independently of the code under test -------------------


def _bn(prefix: str, c: int) -> list[tuple[str, list[int]]]:
    return [
        (f"{prefix}.weight", [c]),
        (f"{prefix}.bias", [c]),
        (f"{prefix}.running_mean", [c]),
        (f"{prefix}.running_var", [c]),
        (f"{prefix}.num_batches_tracked", []),
    ]


def _cosplace_resnet_keys(blocks: list[int], bottleneck: bool, fc_dim: int = 512) -> list[tuple[str, list[int]]]:
    """CosPlace ResNet keys: backbone.0 conv1, .1 bn1, (.2 relu, .3 maxpool), .4-.7 layer1-4; then the head."""
    keys = [("backbone.0.weight", [64, 3, 7, 7]), *_bn("backbone.1", 64)]
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for layer, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks, strict=True)):
        stride = 1 if layer == 0 else 2
        for b in range(n):
            p = f"backbone.{4 + layer}.{b}"
            if bottleneck:
                keys += [(f"{p}.conv1.weight", [planes, inplanes, 1, 1]), *_bn(f"{p}.bn1", planes)]
                keys += [(f"{p}.conv2.weight", [planes, planes, 3, 3]), *_bn(f"{p}.bn2", planes)]
                keys += [(f"{p}.conv3.weight", [planes * 4, planes, 1, 1]), *_bn(f"{p}.bn3", planes * 4)]
            else:
                keys += [(f"{p}.conv1.weight", [planes, inplanes, 3, 3]), *_bn(f"{p}.bn1", planes)]
                keys += [(f"{p}.conv2.weight", [planes, planes, 3, 3]), *_bn(f"{p}.bn2", planes)]
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                keys += [(f"{p}.downsample.0.weight", [planes * expansion, inplanes, 1, 1])]
                keys += _bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    return keys + [
        ("aggregation.1.p", [1]),
        ("aggregation.3.weight", [fc_dim, inplanes]),
        ("aggregation.3.bias", [fc_dim]),
    ]


# VGG16 `features` indices of the 13 convs (ReLUs and max-pools in between), cut before the final ReLU/pool.
VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256)]
VGG16_CONVS += [(17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]


def _shapes(model: nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


# --- layout --------------------------------------------------------------------------------------------------


def test_resnet18_state_dict_is_cosplace():
    model = GeoLocalizationNet("ResNet18", 512)
    expected = _cosplace_resnet_keys([2, 2, 2, 2], bottleneck=False)
    assert len(expected) == 123
    assert _shapes(model) == expected
    assert len(model.backbone) == 8  # conv1, bn1, relu, maxpool, layer1..4
    sd = model.state_dict()
    assert list(sd["backbone.4.0.conv1.weight"].shape) == [64, 64, 3, 3]
    assert "backbone.4.0.downsample.0.weight" not in sd
    assert list(sd["backbone.5.0.downsample.0.weight"].shape) == [128, 64, 1, 1]
    assert list(sd["aggregation.3.weight"].shape) == [512, 512]
    assert sd["aggregation.1.p"].tolist() == [3.0]


def test_resnet50_state_dict_is_cosplace():
    model = GeoLocalizationNet("ResNet50", 512)
    expected = _cosplace_resnet_keys([3, 4, 6, 3], bottleneck=True)
    assert len(expected) == 321
    assert _shapes(model) == expected
    sd = model.state_dict()
    assert list(sd["backbone.0.weight"].shape) == [64, 3, 7, 7]
    assert list(sd["backbone.4.0.conv1.weight"].shape) == [64, 64, 1, 1]
    assert list(sd["backbone.4.0.downsample.0.weight"].shape) == [256, 64, 1, 1]
    assert list(sd["backbone.7.2.bn3.running_var"].shape) == [2048]
    assert list(sd["aggregation.3.weight"].shape) == [512, 2048]
    assert list(sd["aggregation.3.bias"].shape) == [512]
    assert [k for k in sd if k.startswith("aggregation.")] == [
        "aggregation.1.p",
        "aggregation.3.weight",
        "aggregation.3.bias",
    ]


@pytest.mark.slow
def test_vgg16_layout_and_freezing():
    model = GeoLocalizationNet("VGG16", 256)
    expected = []
    for idx, cin, cout in VGG16_CONVS:
        expected += [(f"backbone.{idx}.weight", [cout, cin, 3, 3]), (f"backbone.{idx}.bias", [cout])]
    expected += [("aggregation.1.p", [1]), ("aggregation.3.weight", [256, 512]), ("aggregation.3.bias", [256])]
    assert _shapes(model) == expected
    assert len(model.backbone) == 29  # features[:-2]: ends at conv5_3, before its ReLU
    assert isinstance(model.backbone[28], nn.Conv2d)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {f"backbone.{i}.{w}" for i, _, _ in VGG16_CONVS if i < 24 for w in ("weight", "bias")}
    assert len(frozen) == 20
    all_trainable = GeoLocalizationNet("VGG16", 256, train_all_layers=True)
    assert all(p.requires_grad for p in all_trainable.parameters())


def test_resnet18_frozen_layers_as_cosplace():
    model = GeoLocalizationNet("ResNet18")
    for name, p in model.named_parameters():
        child = name.split(".")[1]
        if name.startswith("backbone.") and child in {"0", "1", "4", "5"}:
            assert not p.requires_grad, name
        else:
            assert p.requires_grad, name
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone")} == {
        "6",
        "7",
    }
    assert model.aggregation[1].p.requires_grad
    trainable_all = GeoLocalizationNet("ResNet18", train_all_layers=True)
    assert all(p.requires_grad for p in trainable_all.parameters())


def test_channels_table_matches_backbones():
    assert set(CHANNELS) == set(BACKBONES)
    assert CHANNELS["ResNet18"] == 512 and CHANNELS["ResNet152"] == 2048 and CHANNELS["VGG16"] == 512


# --- forward, GeM, L2Norm ------------------------------------------------------------------------------------


def test_forward_shape_unit_norm_and_channels_last():
    torch.manual_seed(0)
    model = GeoLocalizationNet("ResNet18", 512).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
        y_cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert y.shape == (2, 512)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y_cl, y, atol=1e-5, rtol=1e-4)


def test_gem_matches_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.5, -1.0], [2.0, 0.0]]]])  # (1, 2, 2, 2)
    out = GeM()(x)
    assert out.shape == (1, 2, 1, 1)
    eps = 1e-6
    ch0 = ((1 + 8 + 27 + 64) / 4) ** (1 / 3)  # 25 ** (1/3)
    ch1 = ((0.125 + eps**3 + 8 + eps**3) / 4) ** (1 / 3)  # negatives and zeros clamp to eps
    assert out.flatten().tolist() == pytest.approx([ch0, ch1], rel=1e-6)
    assert ch0 == pytest.approx(2.9240177, rel=1e-7)


def test_gem_p_is_learnable():
    gem = GeM()
    assert isinstance(gem.p, nn.Parameter) and gem.p.requires_grad and gem.p.tolist() == [3.0]
    x = torch.rand(2, 4, 3, 3) + 0.1
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0
    model = GeoLocalizationNet("ResNet18")
    assert "aggregation.1.p" in dict(model.named_parameters())


def test_l2norm_over_channels():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    torch.testing.assert_close(L2Norm()(x), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    fmap = torch.rand(1, 5, 2, 2)
    torch.testing.assert_close(L2Norm()(fmap).norm(dim=1), torch.ones(1, 2, 2))


# --- CosFace ------------------------------------------------------------------------------------------------

X = [[1.0, 2.0, -0.5], [0.3, -1.0, 2.0]]
W = [[0.5, 0.1, -0.2], [1.0, 1.0, 1.0], [-0.3, 0.8, 0.4], [0.0, -1.0, 2.5]]
LABELS = [1, 3]


def _hand_cosface_loss(x, w, labels, s=30.0, m=0.4) -> float:
    total = 0.0
    for xi, label in zip(x, labels, strict=True):
        logits = []
        for j, wj in enumerate(w):
            dot = sum(a * b for a, b in zip(xi, wj, strict=True))
            nx = math.sqrt(sum(a * a for a in xi))
            nw = math.sqrt(sum(b * b for b in wj))
            cos = dot / max(nx * nw, 1e-8)
            logits.append(s * (cos - (m if j == label else 0.0)))
        top = max(logits)
        lse = top + math.log(sum(math.exp(v - top) for v in logits))
        total += lse - logits[label]
    return total / len(x)


def _cosface(s=30.0, m=0.4) -> CosFace:
    head = CosFace(3, 4, s=s, m=m).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor(W, dtype=torch.float64))
    return head


def test_cosface_loss_matches_hand_computation():
    head = _cosface()
    x = torch.tensor(X, dtype=torch.float64)
    labels = torch.tensor(LABELS)
    logits = head(x, labels)
    assert logits.shape == (2, 4)
    # logits by hand with numpy: s * (cos - m * onehot)
    xn, wn = np.array(X), np.array(W)
    cos = xn @ wn.T / np.outer(np.linalg.norm(xn, axis=1), np.linalg.norm(wn, axis=1))
    onehot = np.eye(4)[LABELS]
    np.testing.assert_allclose(logits.detach().numpy(), 30.0 * (cos - 0.4 * onehot), atol=1e-9)
    loss = F.cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(_hand_cosface_loss(X, W, LABELS), abs=1e-6)


def test_cosface_weight_gradient_matches_finite_difference():
    head = _cosface()
    x = torch.tensor(X, dtype=torch.float64)
    labels = torch.tensor(LABELS)
    F.cross_entropy(head(x, labels), labels).backward()
    h = 1e-6
    for i, j in [(0, 1), (3, 2), (1, 0)]:
        plus = [row[:] for row in W]
        minus = [row[:] for row in W]
        plus[i][j] += h
        minus[i][j] -= h
        numeric = (_hand_cosface_loss(X, plus, LABELS) - _hand_cosface_loss(X, minus, LABELS)) / (2 * h)
        assert head.weight.grad[i, j].item() == pytest.approx(numeric, abs=1e-6)


def test_cosface_init_defaults_and_zero_input():
    torch.manual_seed(0)
    head = CosFace(512, 100)
    assert head.weight.shape == (100, 512) and head.s == 30.0 and head.m == pytest.approx(0.4)
    bound = math.sqrt(6 / (512 + 100))  # Xavier-uniform
    assert head.weight.abs().max().item() <= bound and head.weight.abs().max().item() > 0.9 * bound
    logits = head(torch.zeros(1, 512), torch.tensor([5]))  # norms clamp to 1e-8: cos 0, no NaN
    expected = torch.zeros(1, 100)
    expected[0, 5] = -30.0 * 0.4
    torch.testing.assert_close(logits, expected)


# --- build_model, backbone weights, load_state_dict_checked, model_args --------------------------------------


def test_build_model_loads_torchvision_weights(tmp_path):
    tv = import_torchvision()
    torch.manual_seed(1)
    full = tv.models.resnet18(weights=None)
    with torch.no_grad():
        full.layer4[1].bn2.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(full.state_dict(), path)
    model = build_model("ResNet18", backbone_weights=path)
    torch.testing.assert_close(model.state_dict()["backbone.0.weight"], full.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.backbone[7][1].bn2.running_var, full.layer4[1].bn2.running_var, rtol=0, atol=0)
    assert not model.backbone[0].weight.requires_grad and model.backbone[6][0].conv1.weight.requires_grad

    headless = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    torch.save(headless, tmp_path / "headless.pth")
    model = build_model("ResNet18", backbone_weights=str(tmp_path / "headless.pth"))
    torch.testing.assert_close(model.backbone[4][0].conv1.weight, full.layer1[0].conv1.weight, rtol=0, atol=0)


def test_build_model_rejects_mismatching_weights(tmp_path):
    tv = import_torchvision()
    sd = tv.models.resnet18(weights=None).state_dict()
    sd["conv_one.weight"] = sd.pop("conv1.weight")
    torch.save(sd, tmp_path / "renamed.pth")
    with pytest.raises(ModelError, match=r"missing conv1\.weight.*unexpected conv_one\.weight"):
        build_model("ResNet18", backbone_weights=tmp_path / "renamed.pth")

    torch.save(tv.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    with pytest.raises(ModelError, match=r"unexpected layer1\.0\.conv3\.weight.*shape mismatch layer1\.0\.conv1"):
        build_model("ResNet18", backbone_weights=tmp_path / "resnet50.pth")

    torch.save(GeoLocalizationNet("ResNet18").state_dict(), tmp_path / "cosplace.pth")
    with pytest.raises(ModelError, match="whole CosPlace/vgtrain model"):
        build_model("ResNet18", backbone_weights=tmp_path / "cosplace.pth")

    with pytest.raises(CheckpointError, match=r"backbone weights file .*nope\.pth does not exist"):
        build_model("ResNet18", backbone_weights=tmp_path / "nope.pth")


def test_build_model_warns_without_weights():
    with pytest.warns(UserWarning, match="pass --backbone-weights FILE .* nothing is downloaded"):
        model = build_model("ResNet18", fc_output_dim=128)
    assert model.aggregation[3].out_features == 128


def test_unknown_backbone_lists_choices():
    with pytest.raises(ModelError, match="ResNet18, ResNet50, ResNet101, ResNet152, VGG16"):
        build_model("EfficientNet_B0")
    with pytest.raises(ModelError, match="must be one of"):
        GeoLocalizationNet("resnet18")
    with pytest.raises(ModelError, match="fc_output_dim"):
        GeoLocalizationNet("ResNet18", 0)


@pytest.mark.filterwarnings(RANDOM_INIT)
def test_model_args_round_trip():
    model = build_model("ResNet18", fc_output_dim=64, train_all_layers=True)
    args = model_args(model)
    assert args == {"backbone": "ResNet18", "fc_output_dim": 64, "train_all_layers": True}
    wrapper = nn.Module()
    wrapper.module = model  # as DDP wraps it
    assert model_args(wrapper) == args
    rebuilt = build_model(**args)
    load_state_dict_checked(rebuilt, model.state_dict())
    torch.testing.assert_close(rebuilt.aggregation[3].weight, model.aggregation[3].weight)
    with pytest.raises(TypeError, match="GeoLocalizationNet"):
        model_args(nn.Linear(2, 2))


def test_load_state_dict_checked_messages():
    model = GeoLocalizationNet("ResNet18", 512)
    sd = dict(GeoLocalizationNet("ResNet18", 512).state_dict())
    del sd["backbone.0.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(
        ModelError,
        match=r"weights do not match the architecture: missing backbone\.0\.weight; unexpected extra\.weight",
    ):
        load_state_dict_checked(model, sd)

    other = GeoLocalizationNet("ResNet18", 256).state_dict()
    with pytest.raises(ModelError, match=r"shape mismatch aggregation\.3\.weight \[256, 512\] .*fc_output_dim"):
        load_state_dict_checked(model, other)

    prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(ModelError, match=r"missing .*\(123 in all\).*module\."):
        load_state_dict_checked(model, prefixed)

    good = GeoLocalizationNet("ResNet18", 512)
    load_state_dict_checked(model, good.state_dict())
    torch.testing.assert_close(model.backbone[0].weight, good.backbone[0].weight, rtol=0, atol=0)


# --- compat --------------------------------------------------------------------------------------------------


def test_import_torchvision_models_and_transforms_work():
    tv = import_torchvision()
    assert import_torchvision() is tv  # idempotent
    from torchvision.transforms import v2

    assert isinstance(tv.models.resnet18(weights=None), nn.Module)
    chain = v2.Compose(
        [
            v2.ColorJitter(brightness=0.7, contrast=0.7, saturation=0.7, hue=0.5),
            v2.RandomResizedCrop([32, 32], scale=[0.5, 1], antialias=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    out = chain(torch.rand(2, 3, 48, 48))
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


@pytest.mark.slow
def test_import_torchvision_in_a_fresh_interpreter():
    code = (
        "from vgtrain.compat import import_torchvision\n"
        "tv = import_torchvision()\n"
        "import torchvision.transforms.v2\n"
        "assert import_torchvision() is tv\n"
        "print(type(tv.models.resnet18(weights=None)).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ResNet"


def test_import_torchvision_reraises_other_errors(monkeypatch):
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)

    def boom(name):
        raise RuntimeError("some unrelated failure")

    monkeypatch.setattr(compat, "importlib", types.SimpleNamespace(import_module=boom))
    with pytest.raises(RuntimeError, match="some unrelated failure"):
        import_torchvision()

    # a missing-op error while the extension did load is not ours to patch either
    loaded = types.SimpleNamespace(_has_ops=lambda: True)
    monkeypatch.setitem(sys.modules, "torchvision.extension", loaded)

    def missing_op(name):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(compat, "importlib", types.SimpleNamespace(import_module=missing_op))
    with pytest.raises(RuntimeError, match="torchvision::nms does not exist"):
        import_torchvision()
