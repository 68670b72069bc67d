"""Contracts that must not drift silently: the vgtrain CLI -> config mapping, and the image_id scheme."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import duckdb
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import vgtrain.eval
import vgtrain.fit
from cli import vgtrain_app
from vgtrain.eval import EvalConfig
from vgtrain.fit import FitConfig
from vgtrain.knn import IndexSpec

FIT_LIBRARY_ONLY = {"cosface_s", "cosface_m", "max_failed_fraction"}
"""FitConfig fields without a ``vgtrain fit`` option (CosPlace's train.py does not expose s and m either)."""
FIT_CLI_ONLY = {"nproc"}
"""``vgtrain fit`` options that are not FitConfig fields (how to launch, not what to train)."""
RENAMED = {"image_roots": "image_root"}
"""Config fields filled by an option of another name: ``--image-root COLLECTION=DIR`` (repeatable) -> a dict."""
IMAGE_ROOTS = (["database=/data/crops/database", "queries_v1=/data/q1"], {"database": "/data/crops/database",
               "queries_v1": "/data/q1"})  # fmt: skip
"""Two ``--image-root`` options (absolute DIRs) and the ``image_roots`` they give."""


class Called(Exception):
    """Raised by the recorder in place of the library call: the command got this far with these arguments."""

    def __init__(self, *args) -> None:
        super().__init__("called")
        self.args_seen = args


def record(*args, **kwargs):
    raise Called(*args, *kwargs.values())


def params_of(command: str) -> dict[str, object]:
    """The click parameters of a vgtrain command, by the config field they fill."""
    click_cmd = typer.main.get_command(vgtrain_app).commands[command]
    fields = {v: k for k, v in RENAMED.items()}
    return {fields.get(p.name, p.name): p for p in click_cmd.params}


def invoke(monkeypatch, args: list[str]) -> tuple:
    import cli

    for module, name in ((vgtrain.fit, "fit"), (vgtrain.eval, "run_eval"), (vgtrain.eval, "run_evals")):
        monkeypatch.setattr(module, name, record)
        monkeypatch.setattr(cli, name, record, raising=False)
    res = CliRunner().invoke(vgtrain_app, args)
    assert isinstance(res.exception, Called), (res.exit_code, res.output, res.exception)
    return res.exception.args_seen


def argv(values: dict[str, object]) -> list[str]:
    out = []
    for name, v in values.items():
        flag = "--" + name.replace("_", "-")
        if v is True:
            out.append(flag)
        elif name == "image_roots":
            out += [a for x in IMAGE_ROOTS[0] for a in ("--image-root", x)]
        else:
            out += [flag, str(v)]
    return out


FIT_VALUES = {
    "groups": "g.parquet", "val": "v.parquet", "out": "runs/x", "backbone": "VGG16", "fc_output_dim": 64,
    "train_all_layers": True, "backbone_weights": "vgg16.pth", "groups_num": 3, "epochs_num": 7,
    "iterations_per_epoch": 11, "batch_size": 5, "lr": 3e-4, "classifiers_lr": 0.5, "classifier_init": "imprint",
    "image_size": 96, "brightness": 0.1, "contrast": 0.2, "saturation": 0.3, "hue": 0.25, "random_resized_crop": 0.4,
    "infer_batch_size": 9, "val_image_size": 80, "num_workers": 3, "seed": 13, "device": "cpu",
    "resume": "runs/old", "log_every": 2, "image_roots": IMAGE_ROOTS[1],
}  # fmt: skip


def test_every_fit_config_field_has_its_option():
    fields = {f.name for f in dataclasses.fields(FitConfig)}
    options = set(params_of("fit"))
    assert fields - options == FIT_LIBRARY_ONLY
    assert options - fields == FIT_CLI_ONLY
    assert set(FIT_VALUES) == fields - FIT_LIBRARY_ONLY


def test_fit_options_build_exactly_this_fit_config(monkeypatch):
    defaults = {f.name: f.default for f in dataclasses.fields(FitConfig)}
    assert all(v != defaults[k] for k, v in FIT_VALUES.items() if k in defaults)  # every option moved off its default
    (config,) = invoke(monkeypatch, ["fit", *argv(FIT_VALUES)])
    assert type(config) is FitConfig
    assert config == FitConfig(**FIT_VALUES)


def test_fit_defaults_are_cosplaces(monkeypatch):
    """With only the required options: CosPlace's defaults (REFERENCE.md, parser.py), not copied from our code."""
    (config,) = invoke(monkeypatch, ["fit", "--groups", "g.parquet", "--val", "v.parquet", "--out", "runs/x"])
    assert config == FitConfig(groups="g.parquet", val="v.parquet", out="runs/x")
    cosplace = {
        "backbone": "ResNet18", "fc_output_dim": 512, "train_all_layers": False, "groups_num": 8, "epochs_num": 50,
        "iterations_per_epoch": 10000, "batch_size": 32, "lr": 1e-5, "classifiers_lr": 0.01, "image_size": 512,
        "brightness": 0.7, "contrast": 0.7, "saturation": 0.7, "hue": 0.5, "random_resized_crop": 0.5,
        "infer_batch_size": 16, "seed": 0, "num_workers": 8, "cosface_s": 30.0, "cosface_m": 0.4,
        "classifier_init": "random", "resume": None, "val_image_size": None, "backbone_weights": None,
    }  # fmt: skip
    assert {k: getattr(config, k) for k in cosplace} == cosplace


EVAL_IVFPQ_OPTIONS = {"nlist": "nlist", "pq_m": "m", "pq_nbits": "nbits", "nprobe": "nprobe", "rerank": "rerank"}
"""``vgtrain eval`` options that fill EvalConfig.ivfpq (an IndexSpec), by IndexSpec field."""

EVAL_VALUES = {
    "weights": "runs/a", "out": "evals/a", "backbone": "VGG16", "seed": 5, "fc_output_dim": 128,
    "image_size": 224, "batch_size": 4, "num_workers": 1, "device": "cpu", "index": "both", "nlist": 32,
    "pq_m": 16, "pq_nbits": 6, "nprobe": 4, "rerank": 10, "num_preds_to_save": 3, "image_roots": IMAGE_ROOTS[1],
    "descriptors": "desc/a",
}  # fmt: skip


def expected_eval(eval_set: str, values: dict) -> EvalConfig:
    spec = {EVAL_IVFPQ_OPTIONS[k]: v for k, v in values.items() if k in EVAL_IVFPQ_OPTIONS}
    plain = {k: v for k, v in values.items() if k not in EVAL_IVFPQ_OPTIONS}
    default_ivfpq = EvalConfig(weights="w", eval_set="x", out="o").ivfpq
    assert default_ivfpq == IndexSpec(kind="ivfpq", rerank=64)
    return EvalConfig(**plain, eval_set=eval_set, ivfpq=dataclasses.replace(default_ivfpq, **spec))


def test_every_eval_config_field_has_its_option():
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    options = set(params_of("eval"))
    assert fields - options == {"ivfpq"}
    assert options - fields == set(EVAL_IVFPQ_OPTIONS) | {"json_out"}
    assert {f.name for f in dataclasses.fields(IndexSpec)} - set(EVAL_IVFPQ_OPTIONS.values()) == {"kind", "train_size"}
    assert set(EVAL_VALUES) | {"eval_set"} == options - {"json_out"}


def test_eval_options_build_exactly_this_eval_config(monkeypatch):
    reference = EvalConfig(weights="w", eval_set="x", out="o")
    for k, v in EVAL_VALUES.items():
        default = getattr(reference.ivfpq, EVAL_IVFPQ_OPTIONS[k]) if k in EVAL_IVFPQ_OPTIONS else getattr(reference, k)
        assert v != default, k
    (config,) = invoke(monkeypatch, ["eval", *argv(EVAL_VALUES), "--eval-set", "e1.parquet"])
    assert type(config) is EvalConfig and config == expected_eval("e1.parquet", EVAL_VALUES)
    config, sets = invoke(monkeypatch, ["eval", *argv(EVAL_VALUES), "--eval-set", "e1.parquet", "--eval-set", "e2"])
    assert config == expected_eval("e1.parquet", EVAL_VALUES) and sets == ["e1.parquet", "e2"]
    (config,) = invoke(monkeypatch, ["eval", "--weights", "w", "--eval-set", "x", "--out", "o"])
    assert config == EvalConfig(weights="w", eval_set="x", out="o")


# ---------------------------------------------------------------- image_id


def blake2b_63(text: str) -> int:
    """The README's image_id: blake2b (8-byte digest) of the UTF-8 text, big-endian, top bit cleared."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") % 2**63


AT_NAMES = [
    "@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg",
    "@0544388.51@4172758.25@10@S@037.70098@-122.49646@kPnABhWJ1kA61eMNPLs1vQ@@210@@@@201606@@.jpg",
    "@0551003.20@4181355.01@10@S@037.77801@-122.41924@@@@@@@@@.jpg",
]


def test_image_id_is_the_blake2b_of_collection_slash_path(tmp_path: Path):
    """Ids a real build gives three literal '@' paths, against an independent blake2b (the scheme keys every
    catalog: changing it re-keys them all, so it must fail here)."""
    from vgdata.build import BuildConfig, build_catalog

    images = tmp_path / "images"
    (images / "37.77").mkdir(parents=True)
    rels = [f"37.77/{n}" for n in AT_NAMES[:2]] + [AT_NAMES[2]]
    for rel in rels:
        Image.new("RGB", (16, 16), (90, 120, 150)).save(images / rel)
    build_catalog(BuildConfig(tmp_path / "cat", images=images, collection="database", workers=1))
    got = dict(
        duckdb.sql(f"select path, image_id from read_parquet('{tmp_path / 'cat' / 'images'}/*.parquet')").fetchall()
    )
    assert got == {rel: blake2b_63(f"database/{rel}") for rel in rels}
    assert blake2b_63("database/" + rels[0]) == got[rels[0]] == 5129333330354794235


@pytest.mark.parametrize(
    ("text", "expected"),
    [("database/a.jpg", 1419464342692305034), ("queries_v1/é.jpg", 4134956511709064395)],
)
def test_image_id_golden_values(text, expected):
    from vgdata.sources.common import image_id

    collection, path = text.split("/", 1)
    assert image_id(collection, path) == blake2b_63(text) == expected
