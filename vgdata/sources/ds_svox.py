"""SVOX (Berton et al. 2021) as shipped: DIR is the svox folder holding images/{train,val,test}/gallery, queries*.

Oxford: the gallery is Google Street View, the queries are Oxford RobotCar images sorted by
weather and light (FORMATS.md 2.7). Every folder is a folder of '@'-named images, imported
exactly as ``vgdata build-catalog --images`` imports a folder (:mod:`vgdata.sources.at_folder`):
UTM (zone 30U in Oxford) verbatim from the name and lat/lon from it, heading, pano_id and
timestamp when the name has them; ``<folder>_images_paths.txt`` beside a folder, when present,
is its file list (order kept). DIR may also be the ``images`` folder itself.

Collections per split (train, val, test), from the folders found:

* ``gallery`` -> ``<split>_database`` (svox_condition null);
* ``queries`` -> ``<split>_queries`` (null);
* ``queries_night``, ``queries_overcast``, ``queries_rain``, ``queries_snow``, ``queries_sun`` ->
  ``<split>_queries_night``, ... (svox_condition night, overcast, rain, snow, sun).

The database folder is ``gallery``, not ``database`` (a ``database`` folder is read only when
there is no ``gallery``). Any other ``queries_<x>`` folder (``x``: letters, digits, '_') becomes
``<split>_queries_<x>`` with condition ``x``; other folders are not read.

Attributes (constant per collection): ``split``; ``night`` = True on ``queries_night`` (null
elsewhere: the dataset does not say); own column ``svox_condition``. Nothing else is shipped:
every field is in the names. Rejects are those of ``--images`` (bad '@' names, missing listed
files, unreadable or EXIF-rotated images, lat/lon out of range, band letter inconsistent...).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from vgdata.sources.native import NativeCollection

NAME = "svox"
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("svox_condition", pa.string()),  # the query set's weather/light: night, overcast, rain, snow, sun; null else
]

SPLITS = ("train", "val", "test")
_QUERY_SET = re.compile(r"queries_[A-Za-z0-9_]+", re.ASCII)


def _images_dir(root: Path) -> Path | None:
    """The folder holding the splits: ``root/images``, or ``root`` itself when it holds them."""
    for base in (root / "images", root):
        if any((base / s / "gallery").is_dir() or (base / s / "database").is_dir() for s in SPLITS):
            return base
    return None


def read(root: Path) -> list[NativeCollection]:
    """The collections of an ``svox`` folder (see the module docstring); [] when it holds none."""
    base = _images_dir(root)
    if base is None:
        return []
    collections: list[NativeCollection] = []
    for split in SPLITS:
        split_dir = base / split
        if not split_dir.is_dir():
            continue
        folders: list[tuple[str, Path, str | None]] = []
        gallery = split_dir / "gallery"
        if not gallery.is_dir():
            gallery = split_dir / "database"
        if gallery.is_dir():
            folders.append(("database", gallery, None))
        if (split_dir / "queries").is_dir():
            folders.append(("queries", split_dir / "queries", None))
        for p in sorted(split_dir.iterdir()):
            if p.is_dir() and _QUERY_SET.fullmatch(p.name):
                folders.append((p.name, p, p.name.removeprefix("queries_")))
        for role, folder, condition in folders:
            constant = {"split": split, "svox_condition": condition, "night": True if condition == "night" else None}
            collections.append(
                NativeCollection(f"{split}_{role}", at_folder=folder.relative_to(root).as_posix(), constant=constant)
            )
    return collections
