"""Where training time goes: loader only, model step only, full fit — images/s in one run, per backbone.

    python bench/train.py [--catalog catalogs/demo] [--image-size 128] [--batch-size 32]
                          [--iterations 20] [--num-workers 2] [--backbones ResNet18,EfficientNetLite0]
                          [--device auto]

Uses the groups and val manifests of a catalog built by ``make demo`` (run it first).
* loader only: decoded uint8 batches from ``train_loader`` (Pillow in DataLoader workers);
* model step only: augmentation + forward + CosFace + backward + Adam on synthetic uint8 tensors
  already on the device (no data loading);
* full fit: ``vgtrain.fit`` for one epoch of the same length (validation excluded).
Target: full fit >= 90% of the slower of the other two. On a CUDA machine the same script reports
the GPU figures (bf16 autocast); channels-last on every device, as the trainer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgtrain.augment import BatchAugment  # noqa: E402
from vgtrain.data import GroupDataset, GroupsManifest, train_loader  # noqa: E402
from vgtrain.fit import FitConfig, fit, train_step  # noqa: E402
from vgtrain.losses import CosFace  # noqa: E402
from vgtrain.model import build_model  # noqa: E402


def loader_only(classes, args) -> float:
    loader = train_loader(
        GroupDataset(classes, args.image_size),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        seed=0,
        epoch=0,
        iterations=args.iterations,
    )
    it = iter(loader)
    next(it)  # workers started
    t = time.perf_counter()
    n = sum(len(labels) for _, labels, _ in it)
    return n / (time.perf_counter() - t)


def step_only(n_classes: int, args, device: torch.device) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(args.backbone).to(device)
    cuda = device.type == "cuda"
    model = model.to(memory_format=torch.channels_last)  # as vgtrain.fit does on every device
    classifier = CosFace(512, n_classes).to(device)
    opts = [torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5),
            torch.optim.Adam(classifier.parameters(), lr=0.01)]  # fmt: skip
    augment = BatchAugment(args.image_size)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8, device=device)
    y = torch.randint(0, n_classes, (args.batch_size,), device=device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else __import__("contextlib").nullcontext
    times = []
    for i in range(args.iterations + 2):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        xb = augment(x, gen).contiguous(memory_format=torch.channels_last)
        train_step(model, classifier, opts, xb, y, autocast=autocast)
        if cuda:
            torch.cuda.synchronize()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t)
    return args.batch_size / statistics.median(times)


def full_fit(args, groups: str, val: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = fit(
            FitConfig(
                groups=groups, val=val, out=tmp, backbone=args.backbone, image_size=args.image_size,
                batch_size=args.batch_size, iterations_per_epoch=args.iterations, epochs_num=1, groups_num=1,
                num_workers=args.num_workers, device=args.device, val_image_size=args.image_size, log_every=10**9,
            )
        )  # fmt: skip
    h = summary["history"][0]
    return h["samples_per_s"], h["data_wait"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=ROOT / "catalogs" / "demo")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--backbones", default="ResNet18,EfficientNetLite0", help="comma-separated backbones")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    manifests = sorted((args.catalog / "manifests").glob("groups_*.parquet"))
    val = args.catalog / "manifests" / "eval_val.parquet"
    if not manifests or not val.is_file():
        raise SystemExit(f"no groups/val manifests in {args.catalog}: run `make demo` first")
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    )
    classes = GroupsManifest.read(str(manifests[0])).groups[0]
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    print(f"{device} | image {args.image_size} | batch {args.batch_size} | "
          f"{args.iterations} iterations | {args.num_workers} workers | torch {torch.__version__} "
          f"{'(' + torch.cuda.get_device_name(0) + ')' if device.type == 'cuda' else f'({torch.get_num_threads()} threads)'}")  # fmt: skip
    loader = loader_only(classes, args)  # the same for every backbone
    print(
        f"  {'backbone':18s}{'loader only':>14s}{'step only':>12s}{'full fit':>12s}{'data-wait':>11s}{'full/slower':>13s}"
    )
    for backbone in backbones:
        args.backbone = backbone
        step = step_only(len(classes), args, device)
        full, wait = full_fit(args, str(manifests[0]), str(val))
        ratio = full / min(loader, step)
        print(
            f"  {backbone:18s}{loader:14.1f}{step:12.1f}{full:12.1f}{wait:11.0%}{ratio:9.2f} "
            f"({'PASS' if ratio >= 0.9 else 'FAIL'})"
        )
    print("  images/s; target: full fit >= 0.90 of the slower of loader-only and step-only")


if __name__ == "__main__":
    main()
