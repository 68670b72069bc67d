"""The manifest contract: every vgdata manifest vgtrain reads, read here once, with pyarrow only.

No torch, duckdb, polars or vgdata here: a GPU machine needs pyarrow and numpy to read a manifest.
Two layouts:

* the **groups manifest** (``vgdata split-groups``): one row per training image with
  ``group_rank``, ``class_index``, ``collection`` and ``path``; :class:`GroupsManifest`;
* the **eval manifest** (``vgdata eval-set``): database rows then query rows, each with
  ``role``, ``idx``, ``image_id``, ``collection``, ``path`` and, for queries, ``positives``;
  :class:`EvalManifest`.

Key-value metadata (:data:`META_KEYS` are required):

* ``vgdata.manifest_format``: the contract's version, :data:`FORMAT` (``"2"``). A manifest without
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
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vgtrain.errors import VgtrainError

FORMAT_KEY = "vgdata.manifest_format"
"""Metadata key of the contract's version."""
FORMAT = "2"
"""The version vgdata writes: image roots relative to the catalog, plus ``vgdata.catalog_location``."""
READABLE_FORMATS = ("1", "2")
"""Versions this vgtrain reads; ``"1"`` (no key) had absolute roots."""
LOCATION_KEY = "vgdata.catalog_location"
"""Metadata key of the catalog's absolute path at write time (informational)."""
META_KEYS = ("vgdata.params", "vgdata.catalog_fingerprint", "vgdata.image_roots")
"""Key-value metadata every manifest must carry."""
GROUPS_COLUMNS = ("group_rank", "class_index", "collection", "path")
"""Columns :meth:`GroupsManifest.read` reads."""
EVAL_COLUMNS = ("role", "idx", "collection", "path", "positives", "image_id")
"""Columns :meth:`EvalManifest.read` needs (``width``/``height_px`` and ``utm_*`` are used when present)."""
_HINT = "--image-root"


class ManifestError(VgtrainError):
    """A manifest (or a file it lists) cannot be used; the message says how to fix it."""


def parse_image_roots(values: Sequence[str] | None) -> dict[str, str]:
    """``["database=/data/crops", ...]`` (``--image-root COLLECTION=DIR``, repeatable) -> {collection: DIR}.

    DIR is made absolute against the current directory. :class:`ManifestError` (one line) for an
    entry without ``=``, an empty collection or DIR, or a collection given twice.
    """
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, folder = str(value).partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise ManifestError(
                f"--image-root must be COLLECTION=DIR (e.g. database=/data/crops/database), got {value!r}"
            )
        if name in out:
            raise ManifestError(f"--image-root gives collection {name!r} twice; give each collection once")
        out[name] = os.path.abspath(folder)
    return out


def catalog_dir(manifest: str | os.PathLike) -> str:
    """The folder relative image roots are resolved against: the parent of the manifest's folder."""
    return os.path.dirname(os.path.dirname(os.path.abspath(os.fspath(manifest))))


@dataclass
class ManifestFile:
    """An opened manifest: its Parquet footer and decoded metadata; no rows read yet."""

    path: str
    what: str
    """``groups`` or ``eval`` (for messages)."""
    command: str
    """The vgdata command that makes it (for messages)."""
    pf: Any = field(repr=False)
    format: str
    params: dict
    catalog_fingerprint: str
    roots: dict[str, str]
    """``vgdata.image_roots`` as stored (relative or absolute)."""
    catalog_location: str | None
    """``vgdata.catalog_location`` (format 2), or None."""

    @classmethod
    def open(cls, path: str | os.PathLike, what: str, command: str, columns: Sequence[str]) -> ManifestFile:
        """Open ``path`` and check its format version, columns and metadata keys."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ManifestError(f"{what} manifest {path} does not exist; make it with `{command}`")
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise ManifestError(
                f"{what} manifest {path} is not a readable Parquet file ({e}); rebuild it with `{command}`"
            ) from e
        raw = pf.schema_arrow.metadata or {}
        meta = {
            k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items() if k.startswith(b"vgdata.")
        }
        version = meta.get(FORMAT_KEY, "1")
        if version not in READABLE_FORMATS:
            raise ManifestError(
                f"{what} manifest {path} has format version {version!r}, which this vgtrain cannot read (it reads "
                f"{', '.join(READABLE_FORMATS)}); upgrade vgtrain, or rebuild the manifest with this version's `{command}`"
            )
        names = set(pf.schema_arrow.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise ManifestError(
                f"{what} manifest {path} lacks columns {', '.join(missing)}; rebuild it with `{command}`"
            )
        lacking = [k for k in META_KEYS if k not in meta]
        if lacking:
            raise ManifestError(
                f"{what} manifest {path} lacks metadata {', '.join(lacking)}; it was not written by vgdata, "
                f"rebuild it with `{command}`"
            )
        try:
            params = json.loads(meta["vgdata.params"])
            roots = json.loads(meta["vgdata.image_roots"])
        except json.JSONDecodeError as e:
            raise ManifestError(
                f"{what} manifest {path} has unreadable metadata ({e}); rebuild it with `{command}`"
            ) from e
        if (
            not isinstance(params, dict)
            or not isinstance(roots, dict)
            or not all(isinstance(v, str) and v for v in roots.values())
        ):
            raise ManifestError(f"{what} manifest {path} has malformed metadata; rebuild it with `{command}`")
        return cls(
            path=path,
            what=what,
            command=command,
            pf=pf,
            format=version,
            params=params,
            catalog_fingerprint=meta["vgdata.catalog_fingerprint"],
            roots={str(k): v for k, v in roots.items()},
            catalog_location=meta.get(LOCATION_KEY),
        )

    def resolve_roots(self, collections: Sequence[str], image_roots: Mapping[str, str] | None = None) -> dict[str, str]:
        """Absolute, existing folder of each of ``collections`` (overrides first, then the module's root rule)."""
        where = f"{self.what} manifest {self.path}"
        out = {}
        for c in collections:
            if image_roots and c in image_roots:
                root, how = os.path.abspath(image_roots[c]), f"from {_HINT} {c}=..."
            elif c not in self.roots:
                raise ManifestError(
                    f"{where} lists collection {c!r} that vgdata.image_roots lacks; rebuild it with "
                    f"`{self.command}` or pass {_HINT} {c}=DIR"
                )
            else:
                raw = self.roots[c]
                if os.path.isabs(raw):
                    root, how = os.path.normpath(raw), "absolute in the manifest"
                else:
                    rel = posixpath.normpath(raw.replace("\\", "/"))
                    if rel == ".." or rel.startswith("../"):
                        raise ManifestError(
                            f"{where}: image root {raw!r} of collection {c!r} leaves the catalog folder; "
                            f"rebuild it with `{self.command}` or pass {_HINT} {c}=DIR"
                        )
                    base = catalog_dir(self.path)
                    root, how = os.path.normpath(os.path.join(base, rel)), f"{raw!r} relative to the catalog {base}"
            if not os.path.isdir(root):
                written = f"; it was written in catalog {self.catalog_location}" if self.catalog_location else ""
                raise ManifestError(
                    f"image folder of collection {c!r} not found: {root} ({how}; {where}{written}); "
                    f"keep the manifest in <catalog>/manifests/ beside the images, or pass {_HINT} {c}=DIR"
                )
            out[c] = root
        return out


def check_image_roots(image_roots: Mapping[str, str] | None, *files: ManifestFile) -> None:
    """:class:`ManifestError` for an ``--image-root`` collection that none of ``files`` knows."""
    known = sorted({c for f in files for c in f.roots})
    unknown = [c for c in (image_roots or {}) if c not in known]
    if unknown:
        raise ManifestError(
            f"--image-root names unknown collection(s) {', '.join(unknown)}; the manifests have: {', '.join(known)}"
        )


def _full_paths(table: pa.Table, roots: dict[str, str]) -> pa.ChunkedArray:
    """``root[collection] + "/" + path`` for every row, with Arrow kernels (millions of rows)."""
    coll = pc.dictionary_encode(table["collection"].combine_chunks())
    root_of = pa.array([roots[c].rstrip("/") or "/" for c in coll.dictionary.to_pylist()], pa.string())
    return pc.binary_join_element_wise(root_of.take(coll.indices), table["path"].combine_chunks(), "/")


def _collections(table: pa.Table) -> list[str]:
    coll = table["collection"]
    if coll.null_count:
        return [None]  # type: ignore[list-item]  # resolve_roots names it
    return sorted(pc.unique(coll.combine_chunks()).to_pylist())


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
        roots = mf.resolve_roots(_collections(table), image_roots)
        full = _full_paths(table, roots)
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
    """Per query, the sorted database ``idx`` (int64) within the threshold; may be empty."""
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
        table = mf.pf.read(columns=list(EVAL_COLUMNS) + extra)

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
        pos = qs["positives"].combine_chunks()
        offsets = pos.offsets.to_numpy().astype(np.int64)  # absolute positions in pos.values
        values = pos.values.to_numpy(zero_copy_only=False).astype(np.int64)
        nulls = pos.is_null().to_numpy(zero_copy_only=False)  # a null list: no positives
        positives = [
            np.sort(values[a:b]) if not null else np.zeros(0, np.int64)
            for a, b, null in zip(offsets[:-1], offsets[1:], nulls, strict=True)
        ]
        values = np.concatenate([np.zeros(0, np.int64), *positives])
        if values.size and (values.min() < 0 or values.max() >= db.num_rows):
            raise ManifestError(f"eval manifest {path} has positives outside the database; rebuild it")
        if not any(p.size for p in positives):
            raise ManifestError(
                f"eval manifest {path} has no query with a positive; rebuild it with `{command}` "
                "and a larger --threshold or other sets"
            )
        roots = mf.resolve_roots(_collections(table), image_roots)  # after the rows' checks: those need no images

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
            database=_full_paths(db, roots).to_pylist(),
            queries=_full_paths(qs, roots).to_pylist(),
            positives=positives,
            database_sizes=sizes(db),
            query_sizes=sizes(qs),
            database_ids=db["image_id"].to_numpy().astype(np.int64),
            query_ids=qs["image_id"].to_numpy().astype(np.int64),
            database_utm=positions(db),
            query_utm=positions(qs),
            set_fingerprint=eval_set_fingerprint(pa.concat_tables([db, qs]), mf.params.get("threshold")),
            image_roots=roots,
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of the catalog fingerprint and the parameters (for meta.json)."""
        return _fingerprint(self.catalog_fingerprint, self.params)


def eval_set_fingerprint(rows: pa.Table, threshold: Any) -> str:
    """sha256 of what an eval set is: its database and queries in idx order and each query's positives.

    ``rows``: the database rows in ``idx`` order, then the query rows in ``idx`` order. Hashes
    (role, idx, image_id, collection, relative path, positives) and the threshold, not the file's
    bytes nor its image roots, so the same eval set written again (another pyarrow, a moved
    catalog, a re-run of ``vgdata eval-set``) keeps its fingerprint while other queries, another
    database or other positives change it. Two evals with equal fingerprints have the same query
    at every ``query_idx`` and can be compared query by query (``vgtrain compare``).
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
    return h.hexdigest()
