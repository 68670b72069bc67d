"""``build_catalog``: one source into one collection of a catalog, sharded and resumable.

Steps: plan (read and validate the inputs, cut them into shards) -> run the shards on a
process pool (each writes its own Parquet parts and a completion marker) -> finish
(collection fingerprint, views, ``build.json`` last). Re-running the same command after
an interruption runs only the unfinished shards and ends with the same fingerprint;
re-running it after success does nothing.

The whole build holds the catalog's writer lock (:func:`vgdata.catalog.writer_lock`): a
second build, add-queries or split of the same catalog waits for it (or, with
``wait=False``, fails naming it), and ``build.json`` is read again under the lock before
the collection is added, so concurrent commands never lose each other's entries.

Staleness follows make's rule. Each shard has a plan key: the build parameters, the
shard's rows and, for every source file it reads, the file's size and modification time
(``verify=True``: the sha256 of its bytes instead). A shard runs again when its key
changed, so a panorama replaced under an unchanged CSV is cut again and the others are
not; a build whose keys all match is "up to date". The markers
``_jobs/<collection>/<shard>.done`` hold the keys and stay after the build, so the next
run knows what each shard was made from. The collection's fingerprint covers the file
identities too. Other parameters or another CSV for an existing collection are refused.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vgdata import __version__, jobs
from vgdata.catalog import Catalog, combine_digests, table_digest, writer_lock
from vgdata.errors import UsageError, VgdataError
from vgdata.fsio import atomic_write_bytes, atomic_write_table

PLAN_SHARD = "plan"  # the part holding the rejects found while planning

SOURCES = {
    "panoramas": "vgdata.sources.panoramas",
    "images": "vgdata.sources.at_folder",
    "photos": "vgdata.sources.photos",
    "poses": "vgdata.sources.poses",
    "dataset": "vgdata.sources.native",
}
"""Source kinds and their modules (``describe``, ``plan``, ``run_shard``)."""


@dataclass
class BuildConfig:
    """Parameters of one ``vgdata build-catalog`` run."""

    catalog: Path
    """Catalog folder (created if missing)."""
    panoramas: Path | None = None
    """Folder of raw 2:1 equirectangular panoramas (with ``metadata``)."""
    metadata: Path | None = None
    """Panorama metadata CSV: pano_id, lat, lon, heading (deg, centre column), timestamp."""
    images: Path | None = None
    """Folder of '@'-named images to import in place."""
    photos: Path | None = None
    """Folder of Flickr-style query photos with EXIF GPS (SF-XL test v1 style)."""
    poses: Path | None = None
    """CSV of query images with 6DoF poses (SF-XL test v2 style)."""
    poses_images: Path | None = None
    """Folder the ``path`` column of ``poses`` is relative to (default: the CSV's folder)."""
    dataset: str | None = None
    """A public dataset in its own layout (``--from``): msls, pitts, tokyo247, gsv-cities, osv5m, sfxl, svox, nordland."""
    dataset_root: Path | None = None
    """The dataset's folder, as shipped (``--from <dataset> DIR``)."""
    only: list[str] | None = None
    """With ``dataset``: build only these of its collections (default: every one found)."""
    prefix: str | None = None
    """With ``dataset``: collections are ``<prefix>_<split>_<role>``; None = the dataset's own (``msls``), "" = none."""
    short_side: int = 480
    """Query photos/poses images are resized so their shorter side is this many pixels (0 = keep)."""
    collection: str = "database"
    """Collection the images join: database, queries_v1, ..."""
    quality: int = 95
    """JPEG quality of the crops we cut (1-95)."""
    n_crops: int = 12
    """Strip crops per panorama."""
    step_deg: float = 30.0
    """Degrees between the centres of consecutive strip crops."""
    shard_size: int = 64
    """Panoramas (or imported images x 64) per shard: the unit of work and of resume."""
    workers: int = 0
    """Worker processes; 0 = all cores (with ``ray_address``: all the cluster's CPUs)."""
    executor: str = "local"
    """Where the shards run: ``local`` (a process pool) or ``ray`` (Ray tasks); not part of the plan."""
    ray_address: str | None = None
    """Address of a running Ray cluster (``executor="ray"``); None = a local cluster of ``workers`` CPUs."""
    strict: bool = False
    """Fail (exit 1) when anything was rejected."""
    verify: bool = False
    """Tell changed source files by the sha256 of their bytes, not by size and modification time."""
    wait: bool = True
    """When another process writes the catalog: wait for it (True) or raise CatalogBusy (False)."""

    @property
    def kind(self) -> str:
        """Which source this config names: panoramas, images, photos, poses or dataset."""
        given = [k for k in SOURCES if getattr(self, k) is not None]
        return given[0] if len(given) == 1 else ""


@dataclass
class BuildResult:
    """What a build did; ``rejects_by_reason`` maps a reason to a count."""

    catalog: str
    collection: str
    panoramas: int
    images: int
    rejects: int
    rejects_by_reason: dict[str, int]
    fingerprint: str
    """The collection's content fingerprint (build.json: collections.<name>.fingerprint)."""
    catalog_fingerprint: str
    """The whole catalog's fingerprint, over all its collections (build.json: fingerprint)."""
    shards: int
    shards_skipped: int
    up_to_date: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[int, int], None]  # (items done, items total)


def build_catalog(config: BuildConfig, progress: ProgressFn | None = None) -> BuildResult:
    """Build (or resume, or bring up to date, or confirm up to date) one collection of a catalog.

    Holds the catalog's writer lock throughout (``config.wait``: wait for another writer, or
    raise :class:`vgdata.catalog.CatalogBusy`).
    """
    _check_config(config)
    cat = Catalog(config.catalog)
    cat.root.mkdir(parents=True, exist_ok=True)
    with writer_lock(cat.root, task=f"build collection {config.collection!r}", wait=config.wait):
        return build_locked(config, cat, progress)


def build_dataset(config: BuildConfig, progress: ProgressFn | None = None) -> list[BuildResult]:
    """Build every collection of a public dataset (``config.dataset``, ``config.dataset_root``), one by one.

    The dataset's files are read once (:mod:`vgdata.sources.native`); each collection is then an
    ordinary build (resumable, fingerprinted, audited). ``config.only`` picks some collections.
    """
    from vgdata.sources.native import read_dataset

    _check_config(config)
    cat = Catalog(config.catalog)
    cat.root.mkdir(parents=True, exist_ok=True)
    with writer_lock(cat.root, task=f"import {config.dataset} collections", wait=config.wait):
        found = read_dataset(config.dataset, config.dataset_root, prefix=config.prefix, fresh=True)
        names = [c.name for c in found]
        unknown = sorted(set(config.only or []) - set(names))
        if unknown:
            raise UsageError(
                f"{config.dataset} in {config.dataset_root} has no {', '.join(unknown)}; have {', '.join(names)}"
            )
        chosen = [n for n in names if not config.only or n in config.only]
        return [build_locked(replace(config, collection=n), cat, progress) for n in chosen]


def build_locked(config: BuildConfig, cat: Catalog, progress: ProgressFn | None) -> BuildResult:
    """Build one collection; the caller holds the catalog's writer lock."""
    collection = config.collection
    kind = config.kind
    source_mod = _source_module(kind)
    source = source_mod.describe(config)
    params = {
        "kind": kind,
        "source": source,
        "quality": config.quality,
        "n_crops": config.n_crops,
        "step_deg": config.step_deg,
        "short_side": config.short_side,
        "shard_size": config.shard_size,
        "tool_version": __version__,
    }
    plan_key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]

    done = cat.load_build()["collections"].get(collection)
    if done is not None and done.get("plan_key") != plan_key:
        raise UsageError(
            f"collection {collection!r} of {cat.root} was built from other inputs or parameters; "
            f"choose another --collection or delete {cat.root} to rebuild"
        )

    job_dir = cat.root / "_jobs" / collection
    state = job_dir / "plan.json"
    if done is None and state.is_file() and _read_json(state).get("plan_key") != plan_key:
        _discard_partial(cat, collection, job_dir)  # an interrupted build with other parameters
    had_job_dir = job_dir.is_dir()
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(state, json.dumps({"plan_key": plan_key, "params": params}, indent=2).encode())

    try:
        shards, plan_rejects, image_root = source_mod.plan(config, cat)
    except VgdataError:
        if not had_job_dir and not any(job_dir.glob("*.done")):  # leave no trace of a failed plan
            shutil.rmtree(job_dir, ignore_errors=True)
            if (cat.root / "_jobs").is_dir() and not any((cat.root / "_jobs").iterdir()):
                (cat.root / "_jobs").rmdir()
        raise
    fn, size_of = source_mod.run_shard, (lambda p: len(p["items"]))
    keys = jobs.shard_keys(plan_key, shards, fn, verify=config.verify)
    match = ["content" if config.verify else "stat"]
    plan_digest = table_digest(plan_rejects)
    inputs = {  # the collection's plan key: every shard's, and the rejects found while planning
        name: combine_digests([*((sid, k[name]) for sid, k in keys.items()), (PLAN_SHARD, plan_digest)])
        for name in (["stat", "content"] if config.verify else ["stat"])
    }
    if done is not None and done.get("inputs", {}).get(match[0]) == inputs[match[0]]:
        return _result_from_build(cat, collection, cat.load_build(), up_to_date=True)

    atomic_write_table(cat.part_path("rejects", collection, PLAN_SHARD), plan_rejects)
    planned = {sid for sid, _ in shards}
    _drop_unplanned_shards(cat, collection, job_dir, planned, image_root)
    rerun = [sid for sid, _ in shards if jobs.read_marker(job_dir, sid, keys[sid], match) is None]
    old_paths = _shard_paths(cat, collection, rerun) if _cut_by_us(collection, image_root) else set()

    total = sum(size_of(p) for _, p in shards)
    skipped = len(shards) - len(rerun)
    count = [0]

    def on_done(_sid: str, _stats: dict, items: int) -> None:
        count[0] += items
        if progress:
            progress(count[0], total)

    if progress:
        progress(0, total)
    workers = config.workers or (0 if config.ray_address else jobs.default_workers())
    where = {"executor": config.executor, "ray_address": config.ray_address}  # not in the plan: resumable across
    stats = jobs.run_shards(
        job_dir, shards, fn, workers=workers, size_of=size_of, on_done=on_done, keys=keys, match=match, **where
    )
    if old_paths:  # crops of inputs that are gone or now rejected: never leave them in crops/<collection>
        _remove_crops(cat, collection, old_paths - _shard_paths(cat, collection, rerun))

    files_key = inputs["content" if config.verify else "stat"]
    digests = [(sid, s["digest"]) for sid, s in stats.items()]
    digests.append((PLAN_SHARD, plan_digest))
    fingerprint = combine_digests([*digests, ("params", plan_key), ("files", files_key)])
    reasons = _reject_reasons(cat, collection)
    info = {
        "kind": kind,
        "source": source,
        "params": params,
        "plan_key": plan_key,
        "inputs": inputs,
        "verified": config.verify,
        "image_root": image_root,
        "counts": {
            "panoramas": sum(s["panoramas"] for s in stats.values()),
            "images": sum(s["images"] for s in stats.values()),
            "rejects": sum(reasons.values()),
        },
        "rejects_by_reason": reasons,
        "fingerprint": fingerprint,
        "shards": len(shards),
    }
    _check_unique_ids(cat, collection)
    build = _store_collection(cat, collection, info)
    from vgdata.check import audit_collection

    audit_collection(cat, collection)  # the cheap audits: the images audits over this collection's parts
    return _result_from_build(cat, collection, build, skipped=skipped)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------- shards that are gone, crops that are stale


def _cut_by_us(collection: str, image_root: str) -> bool:
    """True when the collection's images are files we wrote (crops/<collection>), not imports."""
    return image_root == f"crops/{collection}"


def _shard_of(part: Path, collection: str) -> str:
    return part.stem[len(collection) + 1 :]


def _drop_unplanned_shards(cat: Catalog, collection: str, job_dir: Path, planned: set[str], image_root: str) -> None:
    """Delete the parts, markers (and our crops) of shards the new plan no longer has."""
    gone = {
        _shard_of(p, collection)
        for table in ("images", "panoramas", "rejects", "attributes")
        for p in cat.parts(table, collection)
        if _shard_of(p, collection) not in planned | {PLAN_SHARD}
    }
    gone |= {p.stem for p in job_dir.glob("*.done")} - planned
    if not gone:
        return
    if _cut_by_us(collection, image_root):
        _remove_crops(cat, collection, _shard_paths(cat, collection, sorted(gone)))
    for sid in gone:
        for table in ("images", "panoramas", "rejects", "attributes"):
            cat.part_path(table, collection, sid).unlink(missing_ok=True)
        jobs.marker_path(job_dir, sid).unlink(missing_ok=True)


def _shard_paths(cat: Catalog, collection: str, shard_ids: list[str]) -> set[str]:
    """The ``path`` values of some shards' images parts (those that exist)."""
    paths: set[str] = set()
    for sid in shard_ids:
        part = cat.part_path("images", collection, sid)
        if part.is_file():
            try:
                paths.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
            except Exception:  # noqa: BLE001 - a damaged part of a shard about to run again
                continue
    return paths


def _remove_crops(cat: Catalog, collection: str, paths: set[str]) -> None:
    """Delete crops we wrote under ``crops/<collection>``; a path leading elsewhere is left alone."""
    root = (cat.root / "crops" / collection).resolve()
    for rel in paths:
        target = (root / rel).resolve()
        if target.is_relative_to(root) and target != root:
            target.unlink(missing_ok=True)


def register_collection(catalog: str | Path, collection: str, *, image_root: str, source: dict) -> dict:
    """Register a collection whose ``images/<collection>-*.parquet`` parts were written directly.

    For generated rows (benchmarks, scale tests) that have no files to crop or probe. The
    fingerprint hashes the part files' bytes. Returns the collection's build.json entry.
    """
    cat = Catalog(catalog)
    parts = cat.parts("images", collection)
    if not parts:
        raise UsageError(f"no images/{collection}-*.parquet parts in {cat.root}")
    digests = []
    for p in parts:
        h = hashlib.sha256()
        with p.open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
        digests.append((p.name, h.hexdigest()))
    images = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    info = {
        "kind": "registered",
        "source": source,
        "params": {},
        "plan_key": combine_digests(digests)[:16],
        "image_root": image_root,
        "counts": {"panoramas": 0, "images": images, "rejects": 0},
        "rejects_by_reason": {},
        "fingerprint": combine_digests(digests),
        "shards": len(parts),
    }
    with writer_lock(cat.root, task=f"register collection {collection!r}"):
        _store_collection(cat, collection, info)
    return info


def _store_collection(cat: Catalog, collection: str, info: dict) -> dict:
    """Add a finished collection to build.json (fingerprints, counts), then views; build.json last.

    Read-modify-write of build.json: the caller holds the writer lock, and build.json is read
    here, so entries another command stored since the caller started are kept. Returns it.
    """
    build = cat.load_build()
    build.setdefault("format", "vgdata-catalog/1")
    build["collections"][collection] = info
    build["tool_version"] = __version__
    build["fingerprint"] = combine_digests((c, v["fingerprint"]) for c, v in build["collections"].items())
    build["counts"] = {
        k: sum(v["counts"][k] for v in build["collections"].values()) for k in ("panoramas", "images", "rejects")
    }
    cat.write_views()
    cat.write_build(build)  # last: a catalog without it is unfinished
    return build


def _check_config(c: BuildConfig) -> None:
    if not c.kind:
        raise UsageError(
            "give exactly one of --panoramas DIR --metadata CSV, --images DIR, --photos DIR, --poses CSV, --from DATASET DIR"
        )
    if c.dataset is not None:
        from vgdata.sources.native import dataset_module

        dataset_module(c.dataset)  # the one-line error naming the known datasets
        if c.dataset_root is None or not c.dataset_root.is_dir():
            raise UsageError(f"{c.dataset} folder not found: {c.dataset_root}")
    if c.panoramas is not None:
        if c.metadata is None:
            raise UsageError("--panoramas needs --metadata CSV (pano_id, lat, lon, heading, timestamp)")
        if not c.panoramas.is_dir():
            raise UsageError(f"panoramas folder not found: {c.panoramas}")
        if not c.metadata.is_file():
            raise UsageError(f"metadata CSV not found: {c.metadata}")
    for name in ("images", "photos"):
        folder = getattr(c, name)
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{name} folder not found: {folder}")
    if c.poses is not None and not c.poses.is_file():
        raise UsageError(f"poses CSV not found: {c.poses}")
    if c.poses_images is not None and not c.poses_images.is_dir():
        raise UsageError(f"poses images folder not found: {c.poses_images}")
    if not 1 <= c.quality <= 95:
        raise UsageError(f"--quality must be in 1..95, got {c.quality}")
    if c.shard_size < 1:
        raise UsageError(f"--shard-size must be >= 1, got {c.shard_size}")
    if c.short_side < 0:
        raise UsageError(f"--short-side must be >= 0, got {c.short_side}")
    if c.workers < 0:
        raise UsageError(f"--workers must be >= 0 (0 = all cores), got {c.workers}")
    if c.executor not in ("local", "ray"):
        raise UsageError(f"--executor must be local or ray, got {c.executor!r}")
    if c.ray_address is not None and c.executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    if c.executor == "ray":  # the one-line error naming the extra, before any work
        importlib.import_module("vgdata.ray_exec").import_ray()
    if c.panoramas is not None:
        from vgdata.panorama import PanoramaError, check_strip_params

        try:
            check_strip_params(c.n_crops, c.step_deg)
        except PanoramaError as e:
            raise UsageError(str(e)) from None
    if not c.collection.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"--collection must be letters, digits, '_' or '-', got {c.collection!r}")


def _source_module(kind: str):
    """The source module of ``kind``: it has ``describe(config)``, ``plan(config, cat)``, ``run_shard(payload)``."""
    return importlib.import_module(SOURCES[kind])


def _discard_partial(cat: Catalog, collection: str, job_dir: Path) -> None:
    for table in ("images", "panoramas", "rejects", "attributes"):
        for p in cat.parts(table, collection):
            p.unlink()
    shutil.rmtree(job_dir, ignore_errors=True)
    shutil.rmtree(cat.root / "crops" / collection, ignore_errors=True)


def _reject_reasons(cat: Catalog, collection: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for p in cat.parts("rejects", collection):
        counts.update(pq.read_table(p, columns=["reason"]).column("reason").to_pylist())
    return dict(sorted(counts.items()))


def _check_unique_ids(cat: Catalog, collection: str) -> None:
    import duckdb

    parts = [str(p) for p in cat.parts("images", collection)]
    if not parts:
        return
    n, distinct = duckdb.sql(
        "select count(*), count(distinct image_id) from read_parquet($parts)", params={"parts": parts}
    ).fetchall()[0]
    if n != distinct:  # 63-bit hashes: practically impossible, but never silent
        raise VgdataError(f"image_id collision in collection {collection!r}: {n - distinct} duplicate id(s)")


def _result_from_build(
    cat: Catalog, collection: str, build: dict, *, up_to_date: bool = False, skipped: int = 0
) -> BuildResult:
    info = build["collections"][collection]
    return BuildResult(
        catalog=str(cat.root),
        collection=collection,
        panoramas=info["counts"]["panoramas"],
        images=info["counts"]["images"],
        rejects=info["counts"]["rejects"],
        rejects_by_reason=info["rejects_by_reason"],
        fingerprint=info["fingerprint"],
        catalog_fingerprint=build["fingerprint"],
        shards=info["shards"],
        shards_skipped=info["shards"] if up_to_date else skipped,
        up_to_date=up_to_date,
    )
