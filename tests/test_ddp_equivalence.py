"""DDP gradient equivalence: the first step of 2 ranks x batch 4 is the first step of 1 rank x batch 8.

The existing DDP test (tests/test_fit.py) shows that the ranks end with the same weights; that holds
even when the gradient average divides by the wrong number or a rank trains on the wrong slice. This
one compares against a single process that sees the same 8 images in one batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

GRAD_RTOL = 1e-5
"""Allowed difference of the two runs' gradients (Adam's first moment), relative to each tensor's largest entry:
float32 sums of the 8 images' gradients in another order, across two processes, differ by < 1e-6 of it."""
WEIGHT_ATOL_STEPS = 1e-3
"""Allowed difference of the two runs' weights after the step, in units of the step size (lr = the largest
move of one Adam step)..."""
WEIGHT_OUTLIERS = 1e-5
"""... except for this fraction of the trained weights: Adam's first step is lr * g / (|g| + 1e-8), so a weight
whose gradient is within float noise of 0 may move by +lr in one run and -lr in the other (~10 of 7 million)."""
LR = 1e-3
CLASSIFIERS_LR = 1e-2


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[str, str]:
    """16 '@'-named 40 px noise images in 8 classes of one group; val = the same images as queries."""
    from vgdata.build import BuildConfig, build_catalog
    from vgdata.evalset import eval_set
    from vgdata.groups import GroupsConfig, split_groups
    from vgdata.names import make_name

    root = tmp_path_factory.mktemp("ddp_eq")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):  # 50 m apart: 5 cells of 10 m, the same group (N = 5)
        for pano in range(2):
            for heading in (5.0, 65.0):  # heading bins 0 and 2: the same group (L = 2)
                e, n = 543_005.0 + 50 * k + pano, 4_180_005.0
                name = make_name(utm_east=e, utm_north=n, utm_zone=10, utm_letter="S", lat=37.7669, lon=-122.4912,
                                 pano_id=f"p{k}{pano}", heading=heading, timestamp="201306")  # fmt: skip
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / name)
    cat = root / "cat"
    build_catalog(BuildConfig(cat, images=images, workers=1))
    g = split_groups(GroupsConfig(cat, min_images_per_class=1, groups_num=1))
    v = eval_set(cat, name="val", database="database", queries="database")
    return g.manifest, v.manifest


def run_values(groups: str, val: str, out: Path, batch_size: int) -> dict[str, object]:
    """FitConfig values of one epoch of one step: VGG16 at 32 px, augmentation off, on the CPU."""
    return {
        "groups": groups, "val": val, "out": str(out), "backbone": "VGG16", "fc_output_dim": 16,
        "image_size": 32, "val_image_size": 32, "batch_size": batch_size, "iterations_per_epoch": 1,
        "epochs_num": 1, "groups_num": 1, "num_workers": 0, "device": "cpu", "infer_batch_size": 16,
        "lr": LR, "classifiers_lr": CLASSIFIERS_LR, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0,
        "hue": 0.0, "random_resized_crop": 0.0, "seed": 3,
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the VGG16 backbone is randomly initialised")
def test_two_ranks_of_batch_4_take_the_step_of_one_rank_of_batch_8(manifests, tmp_path):
    """One step of ``vgtrain fit --nproc 2 --batch-size 4`` (torchrun, 2 processes) equals one of a single process
    with ``--batch-size 8``: the same gradients (Adam's first moment, 0.1 x the gradient after step 1) and weights.

    Why the two runs see the same 8 images: :class:`vgtrain.data.EpochSampler` draws one stream of
    ``num_samples * world_size`` items (class, image seed) from a generator seeded by (seed, epoch) only;
    ``num_samples = iterations * batch_size`` is 8 for the single run and 4 per rank for the pair, so both draw
    the same 8 items, and rank r takes items r, r + 2, ... (0, 2, 4, 6 and 1, 3, 5, 7): together, items 0..7,
    the single run's one batch. Augmentation is off (jitter 0, crop scale [1, 1] is the whole image), the
    backbone is VGG16 (no BatchNorm, whose statistics would differ between batches of 4 and one of 8), so the
    two runs differ only by how the batch is split: the mean loss of 8 images is the mean of the two ranks'
    means, which is what DDP's averaged gradients give. Dividing by the wrong number (a sum instead of a mean)
    would double the first moment (caught by GRAD_RTOL); Adam's first step is ~lr x sign(gradient), so the
    weights alone could not tell, but a rank training on its own batch (no averaging, or the wrong slice)
    would move them differently.
    """

    from vgtrain.fit import FitConfig, fit

    groups, val = manifests
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = run_values(groups, val, tmp_path / "ddp", 4)
    args = [a for k, v in two.items() for a in ("--" + k.replace("_", "-"), str(v))]
    cmd = [sys.executable, "-c", "from cli import vgtrain_app; vgtrain_app()", "fit", *args, "--nproc", "2"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout[-2000:] + res.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "last.meta.json").read_text())["world_size"] == 2
    fit(FitConfig(**run_values(groups, val, tmp_path / "one", 8)))  # the single process: this one

    def load(run: str, name: str) -> dict:
        return torch.load(tmp_path / run / name, weights_only=True)

    init, init_ddp = load("one", "init.pt"), load("ddp", "init.pt")
    assert init.keys() == init_ddp.keys() and all(torch.equal(init[k], init_ddp[k]) for k in init)
    single, pair = load("one", "last.pt"), load("ddp", "last.pt")
    assert single.keys() == pair.keys() == init.keys()

    # the gradients: Adam's exp_avg after one step is (1 - beta1) * gradient, model and classifier
    s_one, s_ddp = load("one", "last.state.pt"), load("ddp", "last.state.pt")
    moments = [
        (s_one["model_optimizer"]["state"], s_ddp["model_optimizer"]["state"]),
        (s_one["classifier_optimizers"][0]["state"], s_ddp["classifier_optimizers"][0]["state"]),
    ]
    for a, b in moments:
        assert a.keys() == b.keys() and len(a) > 0
        for i in a:
            assert int(a[i]["step"]) == int(b[i]["step"]) == 1
            g1, g2 = a[i]["exp_avg"], b[i]["exp_avg"]
            scale = float(g1.abs().max())
            assert scale > 0, i
            diff = float((g1 - g2).abs().max())
            assert diff <= GRAD_RTOL * scale, (i, diff, scale)

    # the weights: one Adam step moves each trained weight by up to lr; both runs moved them alike
    moved = {k: float((single[k] - init[k]).abs().max()) for k in init}
    trained = [k for k, m in moved.items() if m > 0]
    assert "aggregation.3.weight" in trained and any(k.startswith("backbone.") for k in trained)
    step = max(moved.values())
    assert 0.5 * LR < step <= 1.01 * LR
    n_trained = sum(init[k].numel() for k in trained)
    off = sum(int(((single[k] - pair[k]).abs() > WEIGHT_ATOL_STEPS * LR).sum()) for k in init)
    assert off <= WEIGHT_OUTLIERS * n_trained, (off, n_trained)
    assert max(float((single[k] - pair[k]).abs().max()) for k in init) <= 2.01 * LR
    cls_one = s_one["classifiers"][0]["weight"]
    cls_ddp = s_ddp["classifiers"][0]["weight"]
    assert float((cls_one - cls_ddp).abs().max()) <= WEIGHT_ATOL_STEPS * CLASSIFIERS_LR
