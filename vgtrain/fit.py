"""``vgtrain fit``: CosPlace training from a vgdata groups manifest (REFERENCE.md b.4, b.5, d).

Method, by default exactly CosPlace's: epoch ``e`` trains group ``e % groups_num`` for
``iterations_per_epoch`` batches; every class of the group is drawn with equal probability and
a uniform image inside it; batch augmentation (colour jitter, random resized crop) runs on the
training device; the loss is CosFace (s=30, m=0.4) with one classifier per group; Adam with
lr 1e-5 for the model and 0.01 for the classifiers (rows Xavier-uniform; ``--classifier-init imprint``
starts them at their images' mean descriptor instead). After every epoch: validation recall@1/5
on the val eval manifest, ``last`` and (when recall@1 improves) ``best`` checkpoints.

Determinism: each epoch's sampling and augmentation are seeded from (seed, epoch, rank), so a
run resumed from ``last`` draws exactly what an uninterrupted run draws; with the saved model,
optimiser and classifier states it reaches the same weights (on CPU).

Scale-out: ``torchrun --nproc-per-node K --no-python vgtrain fit ...`` (what ``vgtrain fit --nproc K``
runs, :func:`torchrun_command`) is the one way in. Under it each rank draws a different slice of
the epoch's stream, the backbone is wrapped in DistributedDataParallel and the group classifier's
gradients are averaged explicitly; only rank 0 logs and writes. Channels-last on every device; on CUDA also bf16 autocast.

Settings and their checks: :mod:`vgtrain.fit_config` (re-exported here).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vgtrain.errors import CheckpointError
from vgtrain.fit_config import (  # noqa: F401 - re-exported: the settings' home was this module
    RESUME_MUST_MATCH,
    FitConfig,
    FitError,
    check_config,
    check_resume,
)


def _seed_for(*parts: int) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest(), "big") >> 1


def _move_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for k, v in state.items():
            if torch.is_tensor(v):
                state[k] = v.to(device)


def _log(info, line: str, log_file: Path | None = None) -> None:
    if info.main:
        print(line, flush=True)
        if log_file is not None:
            with log_file.open("a") as f:
                f.write(line + "\n")


def train_step(model, classifier, optimizers, images, labels, *, autocast, grad_sync=None) -> float:
    """One optimisation step (the same code with or without AMP); returns the loss."""
    with autocast():
        descriptors = model(images)
        logits = classifier(descriptors.float(), labels)
        loss = F.cross_entropy(logits, labels)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_sync is not None:
        grad_sync()
    for opt in optimizers:
        opt.step()
    return float(loss.detach())


@torch.no_grad()
def imprint(
    classifier,
    model,
    classes: list[list[str]],
    *,
    image_size: int,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> None:
    """Set each class's weight row to the normalised mean of its images' L2-normalised descriptors (unitless)."""
    from vgtrain.recall import compute_descriptors

    paths = [p for c in classes for p in c]
    labels = torch.tensor([i for i, c in enumerate(classes) for _ in c], dtype=torch.int64)
    desc = torch.from_numpy(
        compute_descriptors(
            model, paths, image_size=image_size, batch_size=batch_size, num_workers=num_workers, device=device
        )
    )
    sums = torch.zeros(len(classes), desc.shape[1], dtype=torch.float64)
    sums.index_add_(0, labels, F.normalize(desc.double(), dim=1))
    classifier.weight.copy_(F.normalize(sums, dim=1).to(classifier.weight))


def _restore(model, model_opt, classifiers, cls_opts, weights, state, run: Path) -> None:
    """Load a ``last`` checkpoint's weights, optimisers, classifiers and RNG states; CheckpointError if they do not fit."""
    from vgtrain import checkpoint
    from vgtrain.model import ModelError, load_state_dict_checked

    try:
        load_state_dict_checked(model, weights)
        model_opt.load_state_dict(state["model_optimizer"])
        for c, o, cs, os_ in zip(
            classifiers, cls_opts, state["classifiers"], state["classifier_optimizers"], strict=True
        ):
            c.load_state_dict(cs)
            o.load_state_dict(os_)
        checkpoint.set_rng_state(state["rng"])
    except (ModelError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:  # the files' content
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"the checkpoint in {run} (last.pt, last.state.pt) does not fit the model and schedule its "
            f"last.meta.json describes ({type(e).__name__}: {reason}); it is damaged: train a new run"
        ) from None


def read_manifests(config: FitConfig):
    """(GroupsManifest, EvalManifest) of ``config``, each file read once, ``config.image_roots`` applied.

    An ``--image-root`` collection that neither manifest knows is refused before any rows are read.
    """
    from vgtrain.manifest import EvalManifest, GroupsManifest, check_image_roots

    groups, val = GroupsManifest.open(config.groups), EvalManifest.open(config.val)
    check_image_roots(config.image_roots, groups, val)
    return GroupsManifest.load(groups, config.image_roots), EvalManifest.load(val, config.image_roots)


def fit(config: FitConfig) -> dict[str, Any]:
    """Train; returns a summary (epochs run, best recall@1, run folder, per-epoch recalls)."""
    from vgtrain import checkpoint, dist
    from vgtrain.augment import BatchAugment
    from vgtrain.data import GroupDataset, train_loader
    from vgtrain.losses import CosFace
    from vgtrain.model import build_model, model_args
    from vgtrain.recall import evaluate

    check_config(config)
    info = dist.setup(config.device)
    torch.manual_seed(config.seed)
    run_dir = Path(config.out)
    log_file = run_dir / "log.txt" if info.main else None

    manifest, val = read_manifests(config)
    if len(manifest.groups) < config.groups_num:
        raise FitError(
            f"the groups manifest has {len(manifest.groups)} group(s) but --groups-num is {config.groups_num}; "
            f"use --groups-num {len(manifest.groups)} or rebuild it with `vgdata split-groups --groups-num ...`"
        )
    groups = manifest.groups[: config.groups_num]
    resumed = None
    if config.resume:  # before any work: the run must be the one these settings continue, its files readable
        check_resume(checkpoint.load_meta(Path(config.resume), "last"), config, manifest.fingerprint)
        resumed = checkpoint.load(Path(config.resume), "last")
        if resumed[1] is None:
            raise CheckpointError(
                f"{Path(config.resume) / 'last.state.pt'} is missing: the run cannot be resumed without its "
                "training state; train a new run in another --out folder"
            )
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)

    cuda = info.device.type == "cuda"
    model = build_model(config.backbone, config.fc_output_dim, config.train_all_layers, config.backbone_weights)
    # channels-last on every device: oneDNN's CPU convolutions run 1.5x faster on it too (EfficientNet-Lite0, 2 cores)
    model = model.to(info.device, memory_format=torch.channels_last)
    classifiers = [CosFace(config.fc_output_dim, len(g), s=config.cosface_s, m=config.cosface_m) for g in groups]
    model_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    cls_opts = [torch.optim.Adam(c.parameters(), lr=config.classifiers_lr) for c in classifiers]
    augment = BatchAugment(
        config.image_size,
        brightness=config.brightness,
        contrast=config.contrast,
        saturation=config.saturation,
        hue=config.hue,
        scale=(1 - config.random_resized_crop, 1.0),
    )

    start_epoch, best_r1, history = 0, -1.0, []
    if info.main and not config.resume:  # the same network before training: the baseline `vgtrain eval` can use
        init_meta = {"config": config.to_dict(), "model_args": model_args(model), "epoch": -1}
        checkpoint.save(run_dir, "init", model_state=model.state_dict(), train_state=None, meta=init_meta)
    if resumed is not None:
        weights, state, meta = resumed
        _restore(model, model_opt, classifiers, cls_opts, weights, state, Path(config.resume))
        _move_optimizer(model_opt, info.device)
        start_epoch, best_r1, history = meta["epoch"] + 1, meta.get("best_recall1", -1.0), meta.get("history", [])
        _log(info, f"resumed from {config.resume} at epoch {start_epoch}", log_file)

    train_model = model
    if info.ddp:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[info.local_rank] if cuda else None)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    log_every = config.log_every or max(1, config.iterations_per_epoch // 10)
    fingerprints = {"groups": manifest.fingerprint, "val": val.catalog_fingerprint}
    failed = seen = 0

    for epoch in range(start_epoch, config.epochs_num):
        g = epoch % config.groups_num
        classifier = classifiers[g].to(info.device)
        _move_optimizer(cls_opts[g], info.device)
        grad_sync = (lambda c=classifier: dist.average_gradients(c.parameters(), info.world_size)) if info.ddp else None
        if config.classifier_init == "imprint" and epoch < config.groups_num:  # the group's first epoch
            t_imprint = time.perf_counter()
            imprint(
                classifier,
                model,
                groups[g],
                image_size=config.image_size,
                batch_size=config.infer_batch_size,
                num_workers=min(config.num_workers, 2),
                device=info.device,
            )
            if info.ddp:  # every rank starts from rank 0's rows
                torch.distributed.broadcast(classifier.weight.data, src=0)
            _log(
                info,
                f"epoch {epoch:3d} group {g}: {len(groups[g])} class rows imprinted in "
                f"{time.perf_counter() - t_imprint:.1f} s",
                log_file,
            )
        loader = train_loader(
            GroupDataset(groups[g], config.image_size),
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            seed=config.seed,
            epoch=epoch,
            iterations=config.iterations_per_epoch,
            rank=info.rank,
            world_size=info.world_size,
        )
        gen = torch.Generator(device=info.device).manual_seed(_seed_for(config.seed, epoch, info.rank))
        train_model.train()
        t_epoch = t_log = time.perf_counter()
        wait = wait_log = 0.0
        losses: list[float] = []
        last_it = 0
        t_fetch = time.perf_counter()
        for it, (images, labels, failures) in enumerate(loader, start=1):
            t_got = time.perf_counter()
            wait += t_got - t_fetch
            wait_log += t_got - t_fetch
            failed += int(failures.sum()) + int((labels < 0).sum())
            seen += len(labels)
            if failed > config.max_failed_fraction * max(seen, 100):
                raise FitError(
                    f"{failed} of {seen} training images failed to decode (> {config.max_failed_fraction:.0%}); "
                    "check the catalog's image files or rebuild the catalog"
                )
            keep = labels >= 0
            images = images[keep].to(info.device, non_blocking=True)
            labels = labels[keep].to(info.device, non_blocking=True)
            x = augment(images, gen).contiguous(memory_format=torch.channels_last)
            losses.append(
                train_step(
                    train_model, classifier, [model_opt, cls_opts[g]], x, labels, autocast=autocast, grad_sync=grad_sync
                )
            )
            if it % log_every == 0 or it == config.iterations_per_epoch:
                now = time.perf_counter()
                span = now - t_log
                _log(
                    info,
                    f"epoch {epoch:3d} group {g} it {it:6d}/{config.iterations_per_epoch} "
                    f"loss {sum(losses[last_it:]) / len(losses[last_it:]):.4f} "
                    f"{(it - last_it) * config.batch_size * info.world_size / max(span, 1e-9):8.1f} samples/s "
                    f"data-wait {wait_log / max(span, 1e-9):4.0%}",
                    log_file,
                )
                t_log, wait_log, last_it = now, 0.0, it
            t_fetch = time.perf_counter()
        if info.ddp:
            dist.broadcast_buffers(model)
        classifiers[g] = classifier.cpu()
        _move_optimizer(cls_opts[g], torch.device("cpu"))
        epoch_time = time.perf_counter() - t_epoch

        if info.main:
            r = evaluate(
                model,
                val,
                image_size=config.val_image_size,
                batch_size=config.infer_batch_size,
                num_workers=min(config.num_workers, 2),
                device=info.device,
            )
            history.append(
                {
                    "epoch": epoch,
                    "group": g,
                    "loss": sum(losses) / len(losses),
                    "recall": r,
                    "samples_per_s": len(losses) * config.batch_size * info.world_size / max(epoch_time, 1e-9),
                    "data_wait": wait / max(epoch_time, 1e-9),
                }
            )
            improved = r[1] > best_r1
            best_r1 = max(best_r1, r[1])
            meta = {
                "config": config.to_dict(),
                "model_args": model_args(model),
                "epoch": epoch,
                "group_cursor": (epoch + 1) % config.groups_num,
                "best_recall1": best_r1,
                "recall": r,
                "history": history,
                "fingerprints": fingerprints,
                "world_size": info.world_size,
                "failed_images": failed,
            }
            state = {
                "model_optimizer": model_opt.state_dict(),
                "classifiers": [c.state_dict() for c in classifiers],
                "classifier_optimizers": [o.state_dict() for o in cls_opts],
                "rng": checkpoint.rng_state(),
            }
            weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            checkpoint.save(run_dir, "last", model_state=weights, train_state=state, meta=meta)
            if improved:
                checkpoint.save(run_dir, "best", model_state=weights, train_state=None, meta=meta)
            _log(
                info,
                f"epoch {epoch:3d} done in {epoch_time:.1f} s (data-wait {wait / max(epoch_time, 1e-9):.0%}): "
                f"val R@1 {r[1]:.1f} R@5 {r[5]:.1f}{' (best)' if improved else ''}",
                log_file,
            )

    digest = checkpoint.weights_digest(model)
    digests = [digest]
    if info.ddp:
        gathered: list[str | None] = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, digest)
        digests = [str(d) for d in gathered]
    if info.main and (run_dir / "last.meta.json").is_file():
        meta = checkpoint.load_meta(run_dir, "last")
        meta["rank_weight_digests"] = digests
        checkpoint.write_meta(run_dir, "last", meta)
    dist.cleanup(info)
    return {"run_dir": str(run_dir), "best_recall1": best_r1, "history": history, "rank_weight_digests": digests}


def torchrun_command(nproc: int, fit_args: list[str]) -> list[str]:
    """The one way into DDP training: ``torchrun --standalone --nproc-per-node K --no-python vgtrain fit ARGS``.

    ``vgtrain fit --nproc K`` runs this (``fit_args``: its own options, rebuilt from the parsed values,
    without ``--nproc``); each of the K processes is the ``vgtrain`` console script, so the library
    never imports the CLI. ``torchrun`` is run as ``python -m torch.distributed.run`` with this
    interpreter, and the script is the one installed next to it (else the first on ``PATH``).
    """
    if "LOCAL_RANK" in os.environ:  # a --nproc that reached a torchrun child would launch torchrun again
        raise FitError("--nproc is for a plain `vgtrain fit`; under torchrun give --nproc-per-node to torchrun instead")
    exe = Path(sys.executable)
    script = next((str(p) for p in (exe.with_name("vgtrain"), exe.with_name("vgtrain.exe")) if p.is_file()), None)
    script = script or shutil.which("vgtrain")
    if script is None:
        raise FitError(
            "--nproc needs the `vgtrain` command, which is installed with the package; install it "
            "(pip install -e '.[train]') or run `torchrun --nproc-per-node K --no-python vgtrain fit ...` yourself"
        )
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return [*run, "--no-python", script, "fit", *fit_args]


if __name__ == "__main__":  # the entry points are the CLI's; say so rather than exit 0 having done nothing
    raise SystemExit(
        "python -m vgtrain.fit is not an entry point: run `vgtrain fit ...` or, for DDP, "
        "`torchrun --nproc-per-node K --no-python vgtrain fit ...` (or `vgtrain fit --nproc K ...`)"
    )
