"""The manifest contract: every vgdata manifest vgtrain reads, read here once, with pyarrow only.

No torch, duckdb, polars or vgdata here: a GPU machine needs pyarrow and numpy to read a manifest.
Two layouts:

* the **groups manifest** (``vgdata split-groups``): one row per training image with
  ``group_rank``, ``class_index``, ``collection`` and ``path``; :class:`GroupsManifest`;
* the **eval manifest** (``vgdata eval-set``): database rows then query rows, each with
  ``role``, ``idx``, ``image_id``, ``collection``, ``path`` and, for queries, ``positives``
  (the primary radius ``vgdata.params`` ``threshold``) and, from format 4, ``positives_<t>m`` for each
  radius of ``vgdata.params`` ``thresholds`` (:func:`threshold_column`); :class:`EvalManifest`.

Key-value metadata (:data:`META_KEYS` are required):

* ``vgdata.manifest_format``: the contract's version, :data:`FORMAT` (``"4"``). A manifest without
  the key is format ``"1"`` (absolute image roots, before this key existed) and is still read; a
  version not in :data:`READABLE_FORMATS` (a newer vgdata) is refused with one line.
* ``vgdata.params`` (JSON) and ``vgdata.catalog_fingerprint``: what made the manifest.
* ``vgdata.image_roots`` (JSON: collection -> folder that the ``path`` column is relative to).
  Format 2 writes a root inside the catalog **relative to the catalog folder** (``crops/database``,
  POSIX separators) and only a root outside it ('@' folders imported in place elsewhere) absolute.
* ``vgdata.catalog_location``: the catalog's absolute path when the manifest was written;
  informational only (error messages), never used to find images.

**Root rule**: manifests live in ``<catalog>/manifests/``, so a relative root is resolved against
the parent of the folder that holds the manifest file (``dirname(dirname(abspath(manifest)))``, the
path as given, symlinks not followed), never against the current directory or the location hint.
A catalog folder copied or moved with its manifests therefore works as is. ``--image-root
COLLECTION=DIR`` (:func:`parse_image_roots`) replaces a collection's root, relative DIRs being
relative to the current directory. A relative root that climbs out of the catalog (``..``) is
refused. A collection whose resolved root is not a folder is refused with one line naming the
collection, the folder tried and the ``--image-root`` option.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vgtrain.manifest_file import (  # noqa: F401 - re-exported: every manifest name is importable from here
    EVAL_COLUMNS,
    FORMAT,
    FORMAT_KEY,
    GROUPS_COLUMNS,
    LOCATION_KEY,
    META_KEYS,
    READABLE_FORMATS,
    ManifestError,
    ManifestFile,
    catalog_dir,
    check_image_roots,
    collections_of,
    full_paths,
    parse_image_roots,
)


def threshold_key(threshold: float) -> str:
    """A radius as text, as vgdata writes it: plain decimal, shortest digits giving the float back, no trailing
    zeros (25.0 -> ``"25"``, 12.5 -> ``"12.5"``); the keys of ``recalls_by_threshold`` in recalls.json."""
    text = format(Decimal(repr(float(threshold))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def threshold_column(threshold: float) -> str:
    """The eval manifest column of a radius (format 4): ``positives_<key>m``, ``.`` as ``_`` (``positives_12_5m``)."""
    return f"positives_{threshold_key(threshold).replace('.', '_')}m"


def _fingerprint(catalog_fingerprint: str, params: dict) -> str:
    text = catalog_fingerprint + json.dumps(params, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class GroupsManifest:
    """CosPlace's training groups: ``groups[g][c]`` = absolute image paths of class ``c`` of group ``g``."""

    path: str
    """The manifest file."""
    params: dict
    """``vgdata.params``: M, alpha, N, L, min_images_per_class, groups_num, collection."""
    catalog_fingerprint: str
    """``vgdata.catalog_fingerprint`` of the catalog the manifest was made from."""
    groups: list[list[list[str]]] = field(repr=False)
    """Per group (``group_rank`` order), per class (``class_index`` order): sorted absolute paths."""
    image_roots: dict[str, str] = field(default_factory=dict)
    """The absolute folder each collection was read from (after the root rule and overrides)."""

    @staticmethod
    def open(path: str | os.PathLike) -> ManifestFile:
        """The opened file (metadata checked, no rows read): pass it to :meth:`load`."""
        return ManifestFile.open(path, "groups", "vgdata split-groups", GROUPS_COLUMNS)

    @classmethod
    def read(cls, path: str | os.PathLike, image_roots: Mapping[str, str] | None = None) -> GroupsManifest:
        """Read a ``vgdata split-groups`` manifest (four columns only) and resolve its paths.

        ``image_roots``: collection -> folder overrides (``--image-root``); an unknown collection is
        refused. Raises :class:`ManifestError` when the file, a column, a metadata key or an image
        folder is missing, or when group ranks or class indexes are not contiguous from 0.
        """
        mf = cls.open(path)
        check_image_roots(image_roots, mf)
        return cls.load(mf, image_roots)

    @classmethod
    def load(cls, mf: ManifestFile, image_roots: Mapping[str, str] | None = None) -> GroupsManifest:
        """Read the rows of an opened groups manifest (overrides already checked by the caller)."""
        path, command = mf.path, mf.command
        table = mf.pf.read(columns=list(GROUPS_COLUMNS))
        if table.num_rows == 0:
            raise ManifestError(f"groups manifest {path} has no rows; rebuild it with `{command}`")
        if table["group_rank"].null_count or table["class_index"].null_count or table["path"].null_count:
            raise ManifestError(f"groups manifest {path} has null group_rank, class_index or path; rebuild it")
        roots = mf.resolve_roots(collections_of(table), image_roots)
        full = full_paths(table, roots)
        order = pc.sort_indices(
            pa.table({"g": table["group_rank"], "c": table["class_index"], "p": full}),
            sort_keys=[("g", "ascending"), ("c", "ascending"), ("p", "ascending")],
        )
        g = table["group_rank"].take(order).to_numpy().astype(np.int64)
        c = table["class_index"].take(order).to_numpy().astype(np.int64)
        paths = full.take(order).to_pylist()
        # Class boundaries: where (group, class) changes; group boundaries: where group changes.
        new_class = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (c[1:] != c[:-1])])
        class_end = np.r_[new_class[1:], len(paths)]
        groups: list[list[list[str]]] = []
        for start, end in zip(new_class.tolist(), class_end.tolist(), strict=True):
            gi, ci = int(g[start]), int(c[start])
            if gi == len(groups):
                groups.append([])
            if gi != len(groups) - 1 or ci != len(groups[gi]):
                raise ManifestError(
                    f"groups manifest {path}: group ranks and class indexes must count from 0 without gaps "
                    f"(found group {gi} class {ci} after {len(groups)} group(s)); rebuild it with `{command}`"
                )
            groups[gi].append(paths[start:end])
        return cls(
            path=path,
            params=mf.params,
            catalog_fingerprint=mf.catalog_fingerprint,
            groups=groups,
            image_roots=roots,
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of the catalog fingerprint and the parameters: identifies the training data in meta.json."""
        return _fingerprint(self.catalog_fingerprint, self.params)

    @property
    def classes_per_group(self) -> list[int]:
        """Number of classes of each group (the size of each group's CosFace head)."""
        return [len(g) for g in self.groups]


@dataclass
class EvalManifest:
    """A database, queries and each query's positives (database ``idx``), from ``vgdata eval-set``.

    Everything vgtrain needs from the file (paths, ids, sizes, UTM, the set's fingerprint) is read
    by :meth:`read` in one pass; nothing reads the file again.
    """

    path: str
    """The manifest file."""
    params: dict
    """``vgdata.params``: database, queries, threshold, fingerprints and counts."""
    catalog_fingerprint: str
    """``vgdata.catalog_fingerprint``."""
    database: list[str] = field(repr=False)
    """Absolute paths in database ``idx`` order."""
    queries: list[str] = field(repr=False)
    """Absolute paths in query ``idx`` order."""
    positives: list[np.ndarray] = field(repr=False)
    """Per query, the sorted database ``idx`` (int64) within the primary threshold; may be empty."""
    database_sizes: list[tuple[int, int]] | None = field(default=None, repr=False)
    """(width, height) per database image from the manifest, or None when it lacks them."""
    query_sizes: list[tuple[int, int]] | None = field(default=None, repr=False)
    """(width, height) per query from the manifest, or None when it lacks them."""
    database_ids: np.ndarray | None = field(default=None, repr=False)
    """int64 ``image_id`` per database ``idx``."""
    query_ids: np.ndarray | None = field(default=None, repr=False)
    """int64 ``image_id`` per query ``idx``."""
    database_utm: np.ndarray | None = field(default=None, repr=False)
    """float64 (N, 3): utm_east, utm_north (metres), utm_zone per database ``idx``; NaN where null; None without
    those columns."""
    query_utm: np.ndarray | None = field(default=None, repr=False)
    """float64 (Q, 3) as :attr:`database_utm`, per query ``idx``."""
    set_fingerprint: str = ""
    """:func:`eval_set_fingerprint` of the rows."""
    image_roots: dict[str, str] = field(default_factory=dict)
    """The absolute folder each collection was read from (after the root rule and overrides)."""
    positives_by_threshold: dict[float, list[np.ndarray]] = field(default_factory=dict, repr=False)
    """Radius (metres) -> per query, as :attr:`positives`; ascending; the primary radius always (its lists are
    :attr:`positives`); the other radii of a format-4 manifest's ``thresholds``."""

    @property
    def threshold(self) -> float:
        """The primary radius, metres (``vgdata.params`` ``threshold``)."""
        return float(self.params["threshold"])

    @staticmethod
    def open(path: str | os.PathLike) -> ManifestFile:
        """The opened file (metadata checked, no rows read): pass it to :meth:`load`."""
        return ManifestFile.open(path, "eval", "vgdata eval-set", EVAL_COLUMNS)

    @classmethod
    def read(cls, path: str | os.PathLike, image_roots: Mapping[str, str] | None = None) -> EvalManifest:
        """Read a ``vgdata eval-set`` manifest and resolve its paths (``image_roots``: as :meth:`GroupsManifest.read`).

        Raises :class:`ManifestError` when the file, a column, a metadata key or an image folder is
        missing, when the ``idx`` of a role do not count from 0, when a positive is not a database
        ``idx``, or when no query has a positive (Recall@N would be 0 whatever the model).
        """
        mf = cls.open(path)
        check_image_roots(image_roots, mf)
        return cls.load(mf, image_roots)

    @classmethod
    def load(cls, mf: ManifestFile, image_roots: Mapping[str, str] | None = None) -> EvalManifest:
        """Read the rows of an opened eval manifest (overrides already checked by the caller)."""
        path, command = mf.path, mf.command
        names = mf.pf.schema_arrow.names
        sized = "width" in names and "height_px" in names
        utm = [c for c in ("utm_east", "utm_north", "utm_zone") if c in names]
        extra = (["width", "height_px"] if sized else []) + utm
        primary, others = _thresholds(mf)
        lacking = [threshold_column(t) for t in others if threshold_column(t) not in names]
        if lacking:
            raise ManifestError(
                f"eval manifest {path} lacks column(s) {', '.join(lacking)} of its thresholds; rebuild it with `{command}`"
            )
        table = mf.pf.read(columns=list(EVAL_COLUMNS) + extra + [threshold_column(t) for t in others])

        def role(name: str) -> pa.Table:
            part = table.filter(pc.equal(table["role"], name))
            part = part.take(pc.sort_indices(part["idx"]))
            idx = part["idx"].to_numpy()
            if not np.array_equal(idx, np.arange(len(idx))):
                raise ManifestError(
                    f"eval manifest {path}: the {name} rows' idx must be 0..{len(idx) - 1}; rebuild it with `{command}`"
                )
            return part

        db, qs = role("database"), role("query")
        if db.num_rows == 0 or qs.num_rows == 0:
            raise ManifestError(
                f"eval manifest {path} has {db.num_rows} database and {qs.num_rows} query rows; "
                f"rebuild it with `{command}` and non-empty sets"
            )
        positives = _lists(qs["positives"])
        by_threshold = {primary: positives, **{t: _lists(qs[threshold_column(t)]) for t in others}}
        for lists in by_threshold.values():
            values = np.concatenate([np.zeros(0, np.int64), *lists])
            if values.size and (values.min() < 0 or values.max() >= db.num_rows):
                raise ManifestError(f"eval manifest {path} has positives outside the database; rebuild it")
        if not any(p.size for p in positives):
            raise ManifestError(
                f"eval manifest {path} has no query with a positive; rebuild it with `{command}` "
                "and a larger --threshold or other sets"
            )
        roots = mf.resolve_roots(collections_of(table), image_roots)  # after the rows' checks: those need no images

        def sizes(part: pa.Table) -> list[tuple[int, int]] | None:
            if not sized or part["width"].null_count or part["height_px"].null_count:
                return None
            return list(zip(part["width"].to_pylist(), part["height_px"].to_pylist(), strict=True))

        def positions(part: pa.Table) -> np.ndarray | None:
            if "utm_east" not in utm or "utm_north" not in utm:
                return None
            cols = [part[c] if c in utm else pa.nulls(part.num_rows) for c in ("utm_east", "utm_north", "utm_zone")]
            return np.stack(
                [pc.cast(c, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64) for c in cols], axis=1
            )  # nulls become NaN

        return cls(
            path=path,
            params=mf.params,
            catalog_fingerprint=mf.catalog_fingerprint,
            database=full_paths(db, roots).to_pylist(),
            queries=full_paths(qs, roots).to_pylist(),
            positives=positives,
            database_sizes=sizes(db),
            query_sizes=sizes(qs),
            database_ids=db["image_id"].to_numpy().astype(np.int64),
            query_ids=qs["image_id"].to_numpy().astype(np.int64),
            database_utm=positions(db),
            query_utm=positions(qs),
            set_fingerprint=eval_set_fingerprint(
                pa.concat_tables([db, qs]), mf.params.get("threshold"), {t: qs[threshold_column(t)] for t in others}
            ),
            image_roots=roots,
            positives_by_threshold=dict(sorted(by_threshold.items())),
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of the catalog fingerprint and the parameters (for meta.json)."""
        return _fingerprint(self.catalog_fingerprint, self.params)


def _lists(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Per row, the sorted int64 values of a list<int32> column (a null list: empty)."""
    pos = column.combine_chunks()
    offsets = pos.offsets.to_numpy().astype(np.int64)  # absolute positions in pos.values
    values = pos.values.to_numpy(zero_copy_only=False).astype(np.int64)
    nulls = pos.is_null().to_numpy(zero_copy_only=False)  # a null list: no positives
    return [
        np.sort(values[a:b]) if not null else np.zeros(0, np.int64)
        for a, b, null in zip(offsets[:-1], offsets[1:], nulls, strict=True)
    ]


def _thresholds(mf: ManifestFile) -> tuple[float, list[float]]:
    """(the primary radius, the other radii of ``thresholds`` ascending) from ``vgdata.params``; ManifestError when
    they are not positive finite numbers. Formats 1..3 have no ``thresholds``: the primary alone."""

    def radius(v: Any) -> float | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and v > 0
        return float(v) if ok else None

    primary = radius(mf.params.get("threshold"))
    given = mf.params.get("thresholds", [])
    radii = [radius(v) for v in given] if isinstance(given, list) else [None]
    if primary is None or None in radii:
        raise ManifestError(
            f"eval manifest {mf.path} has no valid threshold(s) in vgdata.params (positive metres); "
            f"rebuild it with `{mf.command}`"
        )
    return primary, sorted({r for r in radii if r is not None and r != primary})


def eval_set_fingerprint(
    rows: pa.Table, threshold: Any, other_thresholds: Mapping[float, pa.ChunkedArray] | None = None
) -> str:
    """sha256 of what an eval set is: its database and queries in idx order and each query's positives.

    ``rows``: the database rows in ``idx`` order, then the query rows in ``idx`` order. Hashes
    (role, idx, image_id, collection, relative path, positives) and the threshold, not the file's
    bytes nor its image roots, so the same eval set written again (another pyarrow, a moved
    catalog, a re-run of ``vgdata eval-set``) keeps its fingerprint while other queries, another
    database or other positives change it. Two evals with equal fingerprints have the same query
    at every ``query_idx`` and can be compared query by query (``vgtrain compare``).
    ``other_thresholds``: the radii besides the primary one -> their query rows' ``positives_<t>m`` lists;
    they are hashed too (radii and lists), and only when there are some, so a set with the primary radius
    alone keeps the fingerprint it had before format 4.
    """
    h = hashlib.sha256(b"vgtrain eval set v1\0")
    h.update(json.dumps({"threshold": threshold}, sort_keys=True).encode())
    for name in ("role", "collection", "path"):
        h.update(name.encode() + b"\0")
        h.update("\0".join(map(str, rows[name].to_pylist())).encode())
    for name in ("idx", "image_id"):
        h.update(name.encode() + b"\0")
        h.update(rows[name].to_numpy().astype("<i8").tobytes())
    pos = rows["positives"].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(pos), -1).to_numpy(zero_copy_only=False)  # null (database row): -1
    h.update(b"positives\0" + lengths.astype("<i8").tobytes())
    h.update(pc.list_flatten(pos).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
    if other_thresholds:
        h.update(json.dumps({"thresholds": sorted(map(float, other_thresholds))}).encode())
        for t in sorted(other_thresholds):
            lists = other_thresholds[t].combine_chunks()
            lengths = pc.fill_null(pc.list_value_length(lists), -1).to_numpy(zero_copy_only=False)
            h.update(f"positives {t!r}\0".encode() + lengths.astype("<i8").tobytes())
            h.update(pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
    return h.hexdigest()
