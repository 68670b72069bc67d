"""``vgdata export --format gsv-npy|vpr-bench --eval-set NAME``: an eval set's ground truth, as others read it.

Both formats are written from ``CATALOG/manifests/eval_<NAME>.parquet`` (``vgdata eval-set``; layout in
:mod:`vgdata.evalset`), read with pyarrow, in the manifest's ``idx`` order (database idx 0.. then
query idx 0..), which is stable: it is the (path, image_id) order of each set. The positives are the
manifest's ``positives`` column (the primary radius), or with ``threshold=T`` its ``positives_<T>m``
column (an eval set made with several ``--threshold``); the sidecar names the column and radius.

``gsv-npy`` (the gsv-cities / MixVPR / SALAD / BoQ / OpenVPRLab family, FORMATS.md section 3.1), files
``DEST/<PREFIX>_*.npy`` (PREFIX defaults to NAME):

==========================  ===========================  ==============================================
file                        dtype / shape                content
==========================  ===========================  ==============================================
``<PREFIX>_dbImages.npy``   ``<U{max len}`` (N_db,)      database paths, relative to the dataset root
``<PREFIX>_qImages.npy``    ``<U{max len}`` (N_q,)       query paths, relative to the dataset root
``<PREFIX>_gt.npy``         object (N_q,) of int64       ``gt[i]``: the database indices that are
                            arrays; int64 (N_q, k) when  positives of query i (sorted)
                            every query has k >= 1
``<PREFIX>_qIdx.npy``       int64 (N_q with >= 1 pos.,)  ``--qidx``: the queries that have a positive
``<PREFIX>_pIdx.npy``       object, aligned with qIdx    ``--qidx``: their positives (int64 arrays)
``<PREFIX>_order.json``     JSON                         the dataset root, the manifest and its sha256,
                                                         the image_ids in file order, the threshold
==========================  ===========================  ==============================================

The dataset root is the deepest folder holding the image roots of every collection of the eval set
(``os.path.commonpath``); paths below it use '/', so a consumer's ``root + "/" + path`` opens the file.
Load the ``<U`` files with ``np.load(f)`` and the object ones with ``np.load(f, allow_pickle=True)``.

``vpr-bench`` (FORMATS.md sections 2.12 and 3.2): ``DEST/ref/`` (database) and ``DEST/query/`` with the
images hard-linked (copied when linking fails, or with ``copy=True``) as ``0000000<ext>``, ``0000001<ext>``
... in idx order (zero-padded to at least 7 digits, so sorted file-name order is idx order), and
``DEST/ground_truth_new.npy``: an object array (N_q, 2) whose row i is ``[i, [database indices]]``
(Python ints). ``DEST/order.json`` records the same provenance as the gsv sidecar.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vgdata.catalog import Catalog
from vgdata.errors import UsageError, VgdataError
from vgdata.fsio import atomic_path, atomic_write_bytes

GT_FORMATS = ("gsv-npy", "vpr-bench")
"""Formats that export an eval set's ground truth (the others export collections)."""
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")
_COLUMNS = ("role", "idx", "image_id", "collection", "path", "positives")
_RADIUS_COLUMN = re.compile(r"positives_(\d+(?:_\d+)?)m")


@dataclass
class GtExportResult:
    """What :func:`export_eval_set` wrote."""

    dest: str
    format: str
    files: list[str]
    """Files written (ground truth, lists, sidecar), relative to ``dest``."""
    n_database: int
    n_queries: int
    queries_with_positives: int
    """Queries with >= 1 positive (the length of qIdx)."""
    root: str
    """gsv-npy: the dataset root the paths are relative to (absolute, ending in '/'); vpr-bench: ``dest``."""
    linked: int = 0
    copied: int = 0


@dataclass
class _EvalRows:
    manifest: Path
    meta: dict[str, str]
    params: dict[str, Any]
    db: pa.Table
    queries: pa.Table
    positives: list[np.ndarray]
    roots: dict[str, Path]
    column: str
    """The positives column exported."""
    radius: Any
    """Its radius in metres."""


def check_dest_outside(catalog: Path, dest: Path) -> None:
    """:class:`UsageError` when ``dest`` is the catalog folder or inside it (an export never writes into a catalog)."""
    cat, out = Path(catalog).resolve(), Path(dest).resolve()
    if out == cat or out.is_relative_to(cat):
        raise UsageError(f"export destination {dest} is inside the catalog {catalog}; choose a folder outside it")


def eval_set_names(cat: Catalog) -> list[str]:
    """The eval sets of a catalog: NAME of every ``manifests/eval_<NAME>.parquet``."""
    return sorted(p.name[len("eval_") : -len(".parquet")] for p in cat.manifests_dir.glob("eval_*.parquet"))


def export_eval_set(
    catalog: str | Path,
    dest: str | Path,
    *,
    fmt: str,
    eval_set: str | None,
    prefix: str | None = None,
    qidx: bool = False,
    copy: bool = False,
    threshold: float | None = None,
) -> GtExportResult:
    """Write eval set ``eval_set`` of ``catalog`` under ``dest`` as ``fmt`` (``gsv-npy`` or ``vpr-bench``).

    ``threshold`` (metres): the positives of that radius, when the eval set holds it (``vgdata eval-set
    --threshold`` given several times: column ``positives_<t>m``); default the primary ``positives``.
    Raises :class:`UsageError` for an unknown format or eval set (listing the known ones), a bad
    ``prefix``, a radius the eval set lacks, a destination inside the catalog, or a vpr-bench folder
    already holding other files.
    """
    if fmt not in GT_FORMATS:
        raise UsageError(f"unknown ground-truth format {fmt!r}; choose one of {', '.join(GT_FORMATS)}")
    cat = Catalog(catalog)
    cat.require()
    if not eval_set:
        raise UsageError(f"--format {fmt} exports an eval set: give --eval-set NAME (have: {_known(cat)})")
    if not _NAME.fullmatch(eval_set):
        raise UsageError(f"eval set names are letters, digits, '_' or '-', got {eval_set!r} (have: {_known(cat)})")
    prefix = eval_set if prefix is None else prefix
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(f"--name must be letters, digits, '_', '-' or '.', got {prefix!r}")
    dest = Path(dest)
    check_dest_outside(cat.root, dest)
    rows = _read_eval(cat, eval_set, threshold)
    if fmt == "gsv-npy":
        return _write_gsv(rows, dest, prefix, qidx, eval_set)
    return _write_vpr_bench(rows, dest, copy, eval_set)


def _known(cat: Catalog) -> str:
    names = eval_set_names(cat)
    return ", ".join(names) if names else "none; make one with `vgdata eval-set`"


def _radius_columns(names: list[str], primary: Any) -> dict[float, str]:
    """Radius (metres) -> positives column: ``positives`` for the primary one, ``positives_<t>m`` for each radius."""
    out: dict[float, str] = {}
    for name in names:
        m = _RADIUS_COLUMN.fullmatch(name)
        if m:
            out[float(m.group(1).replace("_", "."))] = name
    if isinstance(primary, int | float):
        out[float(primary)] = "positives"
    return out


def _read_eval(cat: Catalog, name: str, threshold: float | None = None) -> _EvalRows:
    path = cat.manifests_dir / f"eval_{name}.parquet"
    if not path.is_file():
        raise UsageError(f"no eval set {name!r} in {cat.root} (have: {_known(cat)})")
    try:
        pf = pq.ParquetFile(path)
        meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
        params = json.loads(meta["vgdata.params"])
        stored_roots = json.loads(meta["vgdata.image_roots"])
    except (OSError, pa.ArrowException, KeyError, json.JSONDecodeError) as e:
        raise VgdataError(f"eval set {path} cannot be read ({e}); rebuild it with `vgdata eval-set`") from e
    column, radius = "positives", params.get("threshold")
    if threshold is not None:
        radii = _radius_columns(pf.schema_arrow.names, radius)
        if float(threshold) not in radii:
            have = ", ".join(f"{r:g}" for r in sorted(radii)) or "none"
            raise UsageError(
                f"eval set {name!r} has no positives at {threshold:g} m (radii: {have}); add it with "
                "`vgdata eval-set ... --threshold`"
            )
        column, radius = radii[float(threshold)], float(threshold)
    try:
        table = pf.read(columns=[*_COLUMNS, column] if column != "positives" else list(_COLUMNS))
    except (OSError, pa.ArrowException, KeyError) as e:
        raise VgdataError(f"eval set {path} cannot be read ({e}); rebuild it with `vgdata eval-set`") from e

    def role(value: str) -> pa.Table:
        part = table.filter(pc.equal(table["role"], value))
        part = part.take(pc.sort_indices(part["idx"]))
        if not np.array_equal(part["idx"].to_numpy(), np.arange(part.num_rows)):
            raise VgdataError(f"eval set {path}: the {value} idx are not 0..{part.num_rows - 1}; rebuild it")
        return part

    db, queries = role("database"), role("query")
    positives = [np.sort(np.asarray(p or [], dtype=np.int64)) for p in queries[column].to_pylist()]
    base = path.parent.parent.resolve()  # relative roots are relative to the catalog holding manifests/
    roots: dict[str, Path] = {}
    for c in sorted(set(db["collection"].to_pylist()) | set(queries["collection"].to_pylist())):
        if c not in stored_roots:
            raise VgdataError(f"eval set {path} has no image root for collection {c!r}; rebuild it")
        root = Path(stored_roots[c])
        roots[c] = root if root.is_absolute() else Path(os.path.normpath(base / root))
    return _EvalRows(path, meta, params, db, queries, positives, roots, column, radius)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(rows: _EvalRows, fmt: str, eval_set: str, root: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "format": fmt,
        "eval_set": eval_set,
        "root": root,
        "manifest": str(rows.manifest.resolve()),
        "manifest_sha256": _file_sha256(rows.manifest),
        "catalog_fingerprint": rows.meta.get("vgdata.catalog_fingerprint"),
        "database": rows.params.get("database"),
        "queries": rows.params.get("queries"),
        "database_fingerprint": rows.params.get("database_fingerprint"),
        "queries_fingerprint": rows.params.get("queries_fingerprint"),
        "positives": {
            "column": rows.column,
            "threshold_m": rows.radius,
            "rule": "UTM distance <= threshold, same utm_epsg (vgdata eval-set)",
        },  # fmt: skip
        "order": "the manifest's idx order: database idx 0.., then query idx 0..",
        "files": files,
        "database_image_ids": [int(x) for x in rows.db["image_id"].to_pylist()],
        "query_image_ids": [int(x) for x in rows.queries["image_id"].to_pylist()],
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=array.dtype == object)


def _full_paths(part: pa.Table, roots: dict[str, Path]) -> list[str]:
    return [
        os.path.join(roots[c], *PurePosixPath(p).parts)
        for c, p in zip(part["collection"].to_pylist(), part["path"].to_pylist(), strict=True)
    ]


def _write_gsv(rows: _EvalRows, dest: Path, prefix: str, qidx: bool, eval_set: str) -> GtExportResult:
    root = os.path.commonpath([str(r) for r in rows.roots.values()])

    def rel(part: pa.Table) -> np.ndarray:
        paths = [Path(p).relative_to(root).as_posix() for p in _full_paths(part, rows.roots)]
        return np.array(paths, dtype=f"<U{max([1, *(len(p) for p in paths)])}")

    lengths = np.array([len(p) for p in rows.positives], dtype=np.int64)
    if len(set(lengths.tolist())) == 1 and lengths[0] >= 1:
        gt = np.stack(rows.positives).astype(np.int64)  # SPED-style (N_q, k)
    else:
        gt = _object_array(rows.positives)
    arrays = {"dbImages": rel(rows.db), "qImages": rel(rows.queries), "gt": gt}
    used = np.flatnonzero(lengths > 0).astype(np.int64)
    if qidx:
        arrays["qIdx"] = used
        arrays["pIdx"] = _object_array([rows.positives[i] for i in used])
    names = {key: f"{prefix}_{key}.npy" for key in arrays}
    for key, array in arrays.items():
        _save_npy(dest / names[key], array)
    root_slash = root.rstrip("/") + "/"
    order = f"{prefix}_order.json"
    sidecar = _sidecar(rows, "gsv-npy", eval_set, root_slash, names)
    atomic_write_bytes(dest / order, (json.dumps(sidecar, indent=1) + "\n").encode())
    return GtExportResult(
        dest=str(dest), format="gsv-npy", files=[*names.values(), order], n_database=rows.db.num_rows,
        n_queries=rows.queries.num_rows, queries_with_positives=int(used.size), root=root_slash,
    )  # fmt: skip


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = np.asarray(item, dtype=np.int64)
    return out


def _write_vpr_bench(rows: _EvalRows, dest: Path, copy: bool, eval_set: str) -> GtExportResult:
    linked = copied = 0
    for sub, part in (("ref", rows.db), ("query", rows.queries)):
        sources = _full_paths(part, rows.roots)
        width = max(7, len(str(len(sources) - 1)))
        names = [f"{i:0{width}d}{PurePosixPath(p).suffix}" for i, p in enumerate(part["path"].to_pylist())]
        folder = dest / sub
        folder.mkdir(parents=True, exist_ok=True)
        stale = sorted({p.name for p in folder.iterdir() if not p.name.startswith(".tmp-")} - set(names))
        if stale:
            raise UsageError(
                f"{folder} already holds {len(stale)} file(s) this export does not write (e.g. {stale[0]}); VPR-Bench "
                "indexes files by sorted name, so export into an empty folder"
            )
        for src, name in zip(sources, names, strict=True):
            if not os.path.isfile(src):
                raise VgdataError(f"image {src} of eval set {eval_set!r} does not exist; check the catalog's images")
            dst = folder / name
            if dst.exists():
                if os.path.samefile(src, dst):
                    continue
                dst.unlink()
            if not copy:
                try:
                    os.link(src, dst)
                    linked += 1
                    continue
                except OSError:
                    pass
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            copied += 1
    gt = np.empty((rows.queries.num_rows, 2), dtype=object)
    for i, pos in enumerate(rows.positives):
        gt[i, 0] = i
        gt[i, 1] = [int(x) for x in pos]
    _save_npy(dest / "ground_truth_new.npy", gt)
    files = {"ground_truth": "ground_truth_new.npy", "database": "ref/", "queries": "query/"}
    sidecar = _sidecar(rows, "vpr-bench", eval_set, str(dest.resolve()) + "/", files)
    atomic_write_bytes(dest / "order.json", (json.dumps(sidecar, indent=1) + "\n").encode())
    return GtExportResult(
        dest=str(dest), format="vpr-bench", files=["ref/", "query/", "ground_truth_new.npy", "order.json"],
        n_database=rows.db.num_rows, n_queries=rows.queries.num_rows,
        queries_with_positives=int(sum(p.size > 0 for p in rows.positives)), root=str(dest.resolve()) + "/",
        linked=linked, copied=copied,
    )  # fmt: skip
