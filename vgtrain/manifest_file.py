"""Opening a manifest file: its Parquet footer, format version, columns, metadata and image roots.

:class:`ManifestFile` checks everything a manifest must carry before any row is read and
resolves each collection's image folder by the root rule that :mod:`vgtrain.manifest` (the
contract, and the readers of the rows) states; :func:`parse_image_roots` reads
``--image-root COLLECTION=DIR``. pyarrow only, like the rest of the contract.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vgtrain.errors import VgtrainError

FORMAT_KEY = "vgdata.manifest_format"
"""Metadata key of the contract's version."""
FORMAT = "4"
"""The version vgdata writes: image roots relative to the catalog, plus ``vgdata.catalog_location`` (2), a
``utm_epsg`` column (3; vgtrain does not need it), and in eval manifests a ``positives_<t>m`` column per radius
of ``vgdata.params`` ``thresholds`` (4; :attr:`vgtrain.manifest.EvalManifest.positives_by_threshold`)."""
READABLE_FORMATS = ("1", "2", "3", "4")
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


def full_paths(table: pa.Table, roots: dict[str, str]) -> pa.ChunkedArray:
    """``root[collection] + "/" + path`` for every row, with Arrow kernels (millions of rows)."""
    coll = pc.dictionary_encode(table["collection"].combine_chunks())
    root_of = pa.array([roots[c].rstrip("/") or "/" for c in coll.dictionary.to_pylist()], pa.string())
    return pc.binary_join_element_wise(root_of.take(coll.indices), table["path"].combine_chunks(), "/")


def collections_of(table: pa.Table) -> list[str]:
    """The sorted distinct ``collection`` values of ``table`` (``[None]`` when one is null: resolve_roots names it)."""
    coll = table["collection"]
    if coll.null_count:
        return [None]  # type: ignore[list-item]  # resolve_roots names it
    return sorted(pc.unique(coll.combine_chunks()).to_pylist())
