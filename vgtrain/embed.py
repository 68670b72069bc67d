"""``vgtrain embed``: descriptors of every image of a manifest, in resumable shards (local executor).

Images: an eval manifest's database rows (``idx`` order) then its query rows (``idx`` order), or a
groups manifest's images (file order, ``role`` and ``idx`` null). They are cut into shards of
``shard_size`` images, a shard never mixing database and query rows. Each shard is computed by
:func:`embed_shard`, a plain function of (manifest path, shard rows, weights, settings) that an
executor can ship to another process, and written atomically as ``DESC_DIR/part-XXXXX.parquet``
(layout: :mod:`vgtrain.descriptors`). A shard already written by the same run (same key: checkpoint,
manifest, image size, dtype, shard size) is skipped, so an interrupted run resumes where it stopped.

``executor="ray"`` computes the same shards on a pool of Ray actors (:mod:`vgtrain.embed_ray`), so a
run started on one executor resumes on the other.

Weights are loaded as ``vgtrain eval`` loads them (:func:`vgtrain.eval.load_model`: run folder, our
.pt, CosPlace state dict, ``imagenet`` and ``random`` baselines) and descriptors computed as it computes
them (:func:`vgtrain.recall.compute_descriptors`), so stored descriptors equal eval's.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vgtrain.descriptors import (
    DTYPES,
    DescriptorsError,
    part_done,
    part_name,
    read_meta,
    run_key,
    write_meta,
    write_part,
)
from vgtrain.manifest import EvalManifest, GroupsManifest, ManifestError, check_image_roots, collections_of, full_paths


@dataclass(frozen=True)
class WeightsSpec:
    """Which model to embed with (the ``vgtrain eval`` weights options)."""

    weights: str
    """Run folder, .pt, CosPlace state dict, ``imagenet`` or ``random``."""
    backbone: str | None = None
    seed: int = 0
    fc_output_dim: int = 512


@dataclass(frozen=True)
class EmbedSettings:
    """How a shard is computed and where it goes."""

    out: str
    """DESC_DIR."""
    key: str
    """The run's key (:func:`vgtrain.descriptors.run_key`), stored in every shard."""
    image_size: int | None = None
    """Square resize in pixels, or None for native sizes."""
    batch_size: int = 16
    num_workers: int = 4
    device: str = "cpu"
    dtype: str = "float32"


@dataclass
class ShardRows:
    """One shard's images: index in the plan, role (or None), and per image id, idx, path, (w, h)."""

    index: int
    role: str | None
    image_id: np.ndarray
    idx: np.ndarray | None
    paths: list[str]
    sizes: list[tuple[int, int]] | None


@dataclass
class EmbedConfig:
    """Parameters of ``vgtrain embed``."""

    weights: str
    manifest: str
    out: str
    backbone: str | None = None
    seed: int = 0
    fc_output_dim: int = 512
    image_size: int | None = None
    batch_size: int = 16
    num_workers: int = 4
    device: str = "auto"
    dtype: str = "float32"
    shard_size: int = 4096
    image_roots: dict[str, str] = field(default_factory=dict)
    executor: str = "local"
    """Where shards are computed: ``local`` (this process) or ``ray`` (:mod:`vgtrain.embed_ray`)."""
    ray_address: str | None = None
    """Running Ray cluster for ``executor="ray"``; None: a local one, started for the run."""

    def weights_spec(self) -> WeightsSpec:
        return WeightsSpec(self.weights, self.backbone, self.seed, self.fc_output_dim)


class EmbedError(DescriptorsError):
    """A user-facing ``vgtrain embed`` error."""


_MODELS: dict[tuple[WeightsSpec, str], Any] = {}
"""Models loaded in this process, by (weights, device): loaded once per process, like an actor's."""


def _model(weights: WeightsSpec, device: str):
    """(model on ``device``, args, weights path, digest) for ``weights``, loaded once per process."""
    import torch

    from vgtrain.eval import EvalConfig, load_model

    if (weights, device) not in _MODELS:
        model, args, path, digest, _ = load_model(EvalConfig(weights=weights.weights, eval_set="", out="", **{
            k: getattr(weights, k) for k in ("backbone", "seed", "fc_output_dim")}))  # fmt: skip
        model = model.to(torch.device(device), memory_format=torch.channels_last)
        _MODELS[(weights, device)] = (model, args, path, digest)
    return _MODELS[(weights, device)]


def embed_shard(manifest: str, rows: ShardRows, weights: WeightsSpec, settings: EmbedSettings) -> str:
    """Compute and write one shard (``DESC_DIR/part-XXXXX.parquet``, atomically); return its path.

    ``manifest`` names the source in error messages only; ``rows`` carries absolute paths.
    """
    import torch

    from vgtrain.recall import compute_descriptors

    model = _model(weights, settings.device)[0]
    desc = compute_descriptors(
        model, rows.paths, image_size=settings.image_size, batch_size=settings.batch_size,
        num_workers=settings.num_workers, device=torch.device(settings.device), sizes=rows.sizes,
    )  # fmt: skip
    path = Path(settings.out) / part_name(rows.index)
    write_part(path, rows.image_id, rows.role, rows.idx, desc, settings.dtype, settings.key)
    return str(path)


def plan(config: EmbedConfig) -> tuple[str, list[ShardRows]]:
    """(manifest fingerprint, shards) of the manifest: eval (database, then queries) or groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(config.manifest).schema_arrow.names
    except (OSError, pa.ArrowException) as e:
        if not os.path.isfile(config.manifest):
            raise ManifestError(f"manifest {config.manifest} does not exist") from None
        raise ManifestError(f"manifest {config.manifest} is not a readable Parquet file ({e})") from None
    n = config.shard_size
    shards: list[ShardRows] = []
    if "role" in names:
        m = EvalManifest.read(config.manifest, config.image_roots)
        fingerprint = m.fingerprint
        for role, paths, ids, sizes in (
            ("database", m.database, m.database_ids, m.database_sizes),
            ("query", m.queries, m.query_ids, m.query_sizes),
        ):
            for s in range(0, len(paths), n):
                sl = slice(s, s + n)
                idx = np.arange(s, min(s + n, len(paths)), dtype=np.int32)
                shards.append(ShardRows(len(shards), role, ids[sl], idx, paths[sl], sizes[sl] if sizes else None))
        return fingerprint, shards
    mf = GroupsManifest.open(config.manifest)
    if "image_id" not in names:
        raise ManifestError(f"groups manifest {config.manifest} has no image_id column; rebuild it with `{mf.command}`")
    check_image_roots(config.image_roots, mf)
    table = mf.pf.read(columns=["image_id", "collection", "path"])
    if table.num_rows == 0:
        raise ManifestError(f"groups manifest {config.manifest} has no rows; rebuild it with `{mf.command}`")
    paths = full_paths(table, mf.resolve_roots(collections_of(table), config.image_roots)).to_pylist()
    ids = table["image_id"].to_numpy().astype(np.int64)
    for s in range(0, len(paths), n):
        shards.append(ShardRows(len(shards), None, ids[s : s + n], None, paths[s : s + n], None))
    from vgtrain.manifest import _fingerprint

    return _fingerprint(mf.catalog_fingerprint, mf.params), shards


def check_config(config: EmbedConfig) -> None:
    """EmbedError for an option out of range."""
    bad = []
    if config.dtype not in DTYPES:
        bad.append(f"--dtype must be {' or '.join(DTYPES)}, got {config.dtype!r}")
    if config.image_size is not None and config.image_size < 1:
        bad.append(f"--image-size must be >= 1 (pixels) or left out, got {config.image_size}")
    for name, low in (("batch_size", 1), ("shard_size", 1), ("num_workers", 0), ("fc_output_dim", 1)):
        if getattr(config, name) < low:
            bad.append(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(config, name)}")
    if config.executor not in ("local", "ray"):
        bad.append(f"--executor must be local or ray, got {config.executor!r}")
    elif config.executor == "ray" and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", config.device):
        bad.append(f"--device must be auto, cpu or cuda, got {config.device!r}")
    if bad:
        raise EmbedError("; ".join(bad))


def run_embed(config: EmbedConfig, *, progress=None) -> dict[str, Any]:
    """Embed every image of ``config.manifest`` into ``config.out``; return the final ``_meta.json`` content
    plus ``written`` and ``skipped`` (shard counts of this call). ``progress(done, total)`` after each shard."""
    check_config(config)
    if config.executor == "ray":
        from vgtrain.embed_ray import import_ray

        import_ray()  # the one-line error naming the extra, before any work
        device = "cpu"  # the driver only reads the model's identity; the actors' device is chosen on the cluster
    else:
        from vgtrain.dist import setup

        device = str(setup(config.device).device)
    fingerprint, shards = plan(config)
    weights = config.weights_spec()
    model, args, weights_path, digest = _model(weights, device)
    dim = int(model.descriptor_dim)
    count = sum(len(s.paths) for s in shards)
    identity = {"checkpoint_sha256": digest, "manifest_fingerprint": fingerprint, "image_size": config.image_size,
                "dtype": config.dtype, "shard_size": config.shard_size, "count": count, "dim": dim}  # fmt: skip
    key = run_key(identity)
    out = Path(config.out)
    old = read_meta(out)
    if old is not None and old["key"] != key:
        raise EmbedError(
            f"{out} holds descriptors of another run (checkpoint {old.get('checkpoint_sha256')}, manifest "
            f"{str(old.get('manifest_fingerprint'))[:12]}, dtype {old.get('dtype')}, image size {old.get('image_size')}); "
            "choose another --out or delete it"
        )
    meta = {"key": key, **identity, "manifest": str(Path(config.manifest).resolve()), "model": args,
            "checkpoint": str(weights_path.resolve()) if weights_path is not None else None,
            "complete": False}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    if old is None:
        write_meta(out, meta)
    settings = EmbedSettings(out=str(out), key=key, image_size=config.image_size, batch_size=config.batch_size,
                             num_workers=config.num_workers, device=device, dtype=config.dtype)  # fmt: skip
    todo = [s for s in shards if not part_done(out / part_name(s.index), key, len(s.paths))]
    skipped, written = len(shards) - len(todo), 0
    if progress is not None and skipped:
        progress(skipped, len(shards))

    def done(_index: int = -1) -> None:
        nonlocal written
        written += 1
        if progress is not None:
            progress(written + skipped, len(shards))

    if config.executor == "ray":
        from vgtrain.embed_ray import ray_embed

        used = ray_embed(config.manifest, todo, weights, settings, load=_model, shard=embed_shard,
                         device=config.device, address=config.ray_address, done=done)  # fmt: skip
        settings = replace(settings, device=used)
    else:
        for shard in todo:
            embed_shard(config.manifest, shard, weights, settings)
            done()
    parts = [{"file": part_name(s.index), "role": s.role, "rows": len(s.paths)} for s in shards]
    meta |= {"complete": True, "parts": parts}
    write_meta(out, meta)
    return meta | {"written": written, "skipped": skipped, "settings": asdict(settings)}
