"""Stored descriptors: the folder ``vgtrain embed`` writes and ``vgtrain eval --descriptors`` reads.

Layout of ``DESC_DIR``:

* ``part-XXXXX.parquet``: one shard of images each, columns ``image_id`` (int64), ``role``
  (string; ``database``/``query`` for an eval manifest, null for a groups manifest), ``idx``
  (int32, the row's ``idx`` in the eval manifest; null for a groups manifest) and ``descriptor``
  (``fixed_size_list<float32|float16, D>``). A shard holds rows of one role only. Its key-value
  metadata ``vgtrain.embed_key`` is the run's key (:func:`run_key`): a shard file whose key is
  the run's and whose row count is the planned one is finished and is never recomputed.
* ``_meta.json``: the run's key, ``checkpoint_sha256`` (first 16 hex digits, as in
  ``recalls.json``), ``manifest_fingerprint`` (sha256 of the manifest's catalog fingerprint and
  ``vgdata.params``, as :attr:`vgtrain.manifest.EvalManifest.fingerprint`), ``dim``, ``dtype``,
  ``image_size`` (pixels, or null for native sizes), ``count`` (images), the model's args and
  ``complete``. It is written when the run starts (``complete: false``) and again, with the
  list of parts, when every shard is written (``complete: true``).

Every file is written atomically (:func:`vgtrain.fsio.atomic_path`). pyarrow and numpy only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vgtrain.errors import VgtrainError
from vgtrain.fsio import atomic_path, atomic_write_text

META_NAME = "_meta.json"
KEY_META = b"vgtrain.embed_key"
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
"""Storage types of the ``descriptor`` values (``--dtype``)."""


class DescriptorsError(VgtrainError):
    """Stored descriptors that cannot be used: missing, incomplete, or made from another model or manifest."""


def part_name(i: int) -> str:
    """File name of shard ``i``: ``part-00000.parquet``."""
    return f"part-{i:05d}.parquet"


def run_key(settings: dict[str, Any]) -> str:
    """sha256 of what fixes a run's output (checkpoint, manifest, image size, dtype, shards), as JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def write_part(
    path: Path,
    image_id: np.ndarray,
    role: str | None,
    idx: np.ndarray | None,
    desc: np.ndarray,
    dtype: str,
    key: str,
) -> None:
    """Write one shard atomically: ``desc`` (n, D) float32 stored as ``dtype``."""
    n, d = desc.shape
    values = pa.array(np.ascontiguousarray(desc, dtype=np.dtype(dtype)).reshape(-1), DTYPES[dtype])
    table = pa.table(
        {
            "image_id": pa.array(np.asarray(image_id, np.int64), pa.int64()),
            "role": pa.array([role] * n, pa.string()),
            "idx": pa.array(np.asarray(idx, np.int32), pa.int32()) if idx is not None else pa.nulls(n, pa.int32()),
            "descriptor": pa.FixedSizeListArray.from_arrays(values, d),
        }
    ).replace_schema_metadata({KEY_META: key.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def part_done(path: Path, key: str, rows: int) -> bool:
    """True when ``path`` is a readable shard of the run ``key`` with ``rows`` rows."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException):
        return False
    meta = pf.schema_arrow.metadata or {}
    return meta.get(KEY_META) == key.encode() and pf.metadata.num_rows == rows


def read_meta(folder: str | Path) -> dict[str, Any] | None:
    """``_meta.json`` of ``folder`` as a dict, or None when there is none; DescriptorsError when unreadable."""
    path = Path(folder) / META_NAME
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DescriptorsError(
            f"{path} is not readable JSON ({e}); run `vgtrain embed` again into an empty folder"
        ) from None
    if not isinstance(meta, dict) or "key" not in meta:
        raise DescriptorsError(f"{path} was not written by `vgtrain embed`; run it into an empty folder")
    return meta


def write_meta(folder: str | Path, meta: dict[str, Any]) -> None:
    """Write ``_meta.json`` atomically."""
    atomic_write_text(Path(folder) / META_NAME, json.dumps(meta, indent=2, default=str) + "\n")


class StoredDescriptors:
    """A finished ``vgtrain embed`` folder, opened for reading (:meth:`open` checks it is complete)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta

    @classmethod
    def open(cls, folder: str | Path) -> StoredDescriptors:
        """Open ``folder``; DescriptorsError (one line) when it is missing or incomplete."""
        folder = Path(folder)
        meta = read_meta(folder)
        if meta is None:
            raise DescriptorsError(f"no {META_NAME} in {folder}: not a `vgtrain embed` output folder")
        parts = meta.get("parts") or []
        missing = [p["file"] for p in parts if not part_done(folder / p["file"], meta["key"], p["rows"])]
        if not meta.get("complete") or missing:
            what = f"{len(missing)} shard(s) missing or damaged" if missing else "the run did not finish"
            raise DescriptorsError(
                f"descriptors in {folder} are incomplete ({what}); run the same `vgtrain embed` again to finish them"
            )
        return cls(folder, meta)

    def check(self, manifest_fingerprint: str, manifest_path: str, digest: str | None = None) -> None:
        """DescriptorsError when made from another manifest or (``digest`` given) another checkpoint."""
        if self.meta.get("manifest_fingerprint") != manifest_fingerprint:
            raise DescriptorsError(
                f"descriptors in {self.folder} were made from another manifest (fingerprint "
                f"{str(self.meta.get('manifest_fingerprint'))[:12]}, {manifest_path} has {manifest_fingerprint[:12]}); "
                f"run `vgtrain embed --manifest {manifest_path}`"
            )
        if digest is not None and self.meta.get("checkpoint_sha256") != digest:
            raise DescriptorsError(
                f"descriptors in {self.folder} were made with another checkpoint (sha256 "
                f"{self.meta.get('checkpoint_sha256')}, --weights has {digest}); drop --weights or embed again"
            )

    def shards(self, role: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(idx int64 (n,), descriptors float32 (n, D))`` of each shard of ``role``, one shard in memory at a time."""
        for part in self.meta["parts"]:
            if part["role"] != role:
                continue
            table = pq.read_table(self.folder / part["file"], columns=["idx", "descriptor"])
            desc = table["descriptor"].combine_chunks()
            rows = desc.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(desc), -1)
            yield table["idx"].to_numpy().astype(np.int64), rows

    def load(self, role: str, n: int, image_ids: np.ndarray | None = None) -> np.ndarray:
        """float32 (n, D) descriptors of ``role`` in ``idx`` order; DescriptorsError when a row is missing.

        ``image_ids``: the manifest's image_id per idx, checked against the stored ones.
        """
        out = np.full((n, int(self.meta["dim"])), np.nan, dtype=np.float32)
        seen = np.zeros(n, dtype=bool)
        for part in self.meta["parts"]:
            if part["role"] != role:
                continue
            table = pq.read_table(self.folder / part["file"], columns=["image_id", "idx", "descriptor"])
            idx = table["idx"].to_numpy().astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DescriptorsError(f"{self.folder / part['file']} has {role} idx outside 0..{n - 1}")
            if image_ids is not None and not np.array_equal(table["image_id"].to_numpy(), image_ids[idx]):
                raise DescriptorsError(f"{self.folder / part['file']}: image_id disagrees with the manifest")
            desc = table["descriptor"].combine_chunks()
            out[idx] = desc.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(idx), -1)
            seen[idx] = True
        if not seen.all():
            raise DescriptorsError(
                f"descriptors in {self.folder} lack {int((~seen).sum())} {role} image(s) of the manifest; embed again"
            )
        return out


class StreamedDatabase:
    """The database of stored descriptors, read one shard at a time (flat search) or whole (IVF-PQ)."""

    def __init__(self, store: StoredDescriptors, n: int, image_ids: np.ndarray | None) -> None:
        self.store, self.n, self.image_ids = store, n, image_ids

    def __len__(self) -> int:
        return self.n

    def shards(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(idx, float32 rows)`` per database shard."""
        return self.store.shards("database")

    def array(self) -> np.ndarray:
        """All database descriptors, float32 (N, D) in idx order."""
        return self.store.load("database", self.n, self.image_ids)


@dataclass
class EvalInputs:
    """What ``vgtrain eval --descriptors`` takes from a store instead of a model."""

    model_info: tuple
    """(model args, checkpoint path or None, checkpoint sha256 (16 hex digits), meta.json of --weights or None,
    descriptor dim)."""
    database: StreamedDatabase
    queries: np.ndarray
    """float32 (Q, D) in query idx order."""
    image_size: int | None


def stored_for_eval(config: Any, manifest: Any, shared: dict[str, Any], load_model: Any) -> EvalInputs:
    """Open ``config.descriptors`` for the eval manifest ``manifest`` (an EvalManifest) and check it.

    Refuses (DescriptorsError, one line) a folder that is incomplete, made from another manifest,
    at another ``--image-size`` than ``config.image_size`` (when given), or, when ``config.weights``
    is given, with another checkpoint (the model is loaded by ``load_model(config)`` to know its sha256).
    """
    store = StoredDescriptors.open(config.descriptors)
    digest = None
    if config.weights is not None:
        if "model" not in shared:
            shared["model"] = load_model(config)
        digest = shared["model"][3]
    store.check(manifest.fingerprint, manifest.path, digest)
    meta = store.meta
    if config.image_size is not None and config.image_size != meta.get("image_size"):
        raise DescriptorsError(
            f"descriptors in {store.folder} were made at image size {meta.get('image_size') or 'native'}, "
            f"--image-size is {config.image_size}; drop --image-size or embed again"
        )
    n_db = sum(p["rows"] for p in meta["parts"] if p["role"] == "database")
    if n_db != len(manifest.database):
        raise DescriptorsError(
            f"descriptors in {store.folder} hold {n_db} database images, the manifest {len(manifest.database)}"
        )
    queries = store.load("query", len(manifest.queries), manifest.query_ids)
    checkpoint = meta.get("checkpoint")
    model_meta = shared["model"][4] if config.weights is not None else None  # the checkpoint's meta.json, if any
    info = (meta.get("model"), Path(checkpoint) if checkpoint else None, meta["checkpoint_sha256"], model_meta,
            meta["dim"])  # fmt: skip
    return EvalInputs(info, StreamedDatabase(store, n_db, manifest.database_ids), queries, meta.get("image_size"))
