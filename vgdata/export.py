"""``vgdata export --format at-folder``: the VPR-datasets-downloader layout.

``DEST/<collection>/<path>`` for every image (``database/``, ``queries_v1/`` ...), as
hard links when source and destination share a file system (copies otherwise, or
with ``copy=True``), plus CosPlace's ``DEST/<collection>_images_paths.txt`` listing
the files in catalog order. Names are the catalog's paths, so they are byte-identical
to the imported or cut files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.fsio import atomic_write_bytes

FORMATS = ("at-folder",)


@dataclass
class ExportResult:
    dest: str
    files: dict[str, int]
    linked: int
    copied: int


def export_catalog(
    catalog: str | Path,
    dest: str | Path,
    *,
    fmt: str = "at-folder",
    collections: list[str] | None = None,
    copy: bool = False,
) -> ExportResult:
    """Write the images of ``collections`` (default: all) under ``dest`` in the '@' folder layout."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    cat = Catalog(catalog)
    build = cat.require()
    names = collections or sorted(build["collections"])
    unknown = [c for c in names if c not in build["collections"]]
    if unknown:
        raise UsageError(f"no collection {', '.join(unknown)} in {cat.root}; have {', '.join(build['collections'])}")
    dest = Path(dest)
    con = cat.connect()
    files: dict[str, int] = {}
    linked = copied = 0
    try:
        for collection in names:
            root = cat.image_root(collection, build)
            paths = [
                r[0]
                for r in con.execute(
                    "select path from images where collection = ? order by path", [collection]
                ).fetchall()
            ]
            out = dest / collection
            made: set[Path] = set()
            for rel in paths:
                src, dst = root / rel, out / rel
                if dst.parent not in made:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    made.add(dst.parent)
                if dst.exists():
                    if dst.stat().st_size == src.stat().st_size:
                        continue
                    dst.unlink()
                if not copy:
                    try:
                        os.link(src, dst)
                        linked += 1
                        continue
                    except OSError:
                        pass
                shutil.copyfile(src, dst)
                copied += 1
            atomic_write_bytes(dest / f"{collection}_images_paths.txt", "".join(p + "\n" for p in paths).encode())
            files[collection] = len(paths)
    finally:
        con.close()
    return ExportResult(dest=str(dest), files=files, linked=linked, copied=copied)
