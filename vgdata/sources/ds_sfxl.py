"""SF-XL (Berton et al. 2022) as shipped: DIR is the sf_xl folder holding processed/, raw/, small/ (any of them).

Every SF-XL folder is a folder of '@'-named images (REFERENCE.md a.1, a.3), so each becomes one
collection imported exactly as ``vgdata build-catalog --images`` imports a folder
(:mod:`vgdata.sources.at_folder`): the name gives UTM (east, north, zone, letter: kept verbatim,
lat/lon from the name), heading, pano_id and timestamp; the 9-part names of the test database
(no heading) are read too; ``<folder>_images_paths.txt`` beside a folder, when present, is the
file list and its order is kept (CosPlace's convention), otherwise every image below the folder
(the latitude sub-folders of ``train/``, e.g. ``37.74/@...``) in sorted order.

Collections (``<part prefix><split>_<role>``; the processed part has no prefix):

===================================================  ===========================
folder                                               collection
===================================================  ===========================
processed/train (crops in latitude sub-folders)      train_database
processed/val/database, processed/val/queries        val_database, val_queries
processed/test/database                              test_database
processed/test/queries_v1, _v2, _night, _occlusion   test_queries_v1, test_queries_v2, ...
raw/train/database (12 crops per panorama)           raw_train_database
raw/train/panoramas (the 3328x512 strips)            raw_train_panoramas
small/train, small/val/..., small/test/...           small_train_database, small_val_queries, ...
===================================================  ===========================

Any other ``queries_<x>`` folder of a split (``x``: letters, digits, '_') becomes
``<split>_queries_<x>`` the same way; other folders are not read.

Attributes (constant per collection): ``split`` (train/val/test), ``night`` = True on
``queries_night`` (null elsewhere: the dataset does not say), ``is_pano`` = True on
``raw/train/panoramas``, and the own columns ``sfxl_part`` (processed, raw, small) and
``sfxl_condition`` (``night``, ``occlusion``; null on other sets).

Headings are the names' field 9, verbatim, in degrees from north (null when empty: the
``queries_v1`` names have none). Beware what they measure: on a panorama strip
(``raw/train/panoramas``) the heading is the azimuth of the **centre column**, as the catalog's
heading is; on the 512x512 crops (raw/train/database, processed/, small/) the SF-XL README says
it is the azimuth of the crop's **leftmost** column (REFERENCE.md e.3), so a crop's optical axis is
about heading + 27.7 degrees. ``small/train`` names carry heading 0 everywhere (EigenPlaces #16).

Not kept: ``metadata.csv`` (altitude, pitch, roll of the panoramas: its columns are not documented
in FORMATS.md, so it is not read) and ``all_images_paths.txt`` (a list of the whole tree; each
folder's own list is used). Rejects are those of ``--images``: bad '@' names, listed files that are
missing, unreadable or EXIF-rotated images, lat/lon out of range, band letter inconsistent...
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from vgdata.sources.native import NativeCollection

NAME = "sfxl"
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("sfxl_part", pa.string()),  # processed, raw or small: the top folder of sf_xl
    ("sfxl_condition", pa.string()),  # night, occlusion (test query sets); null otherwise
]

PARTS = ("processed", "raw", "small")
"""The top folders of ``sf_xl``, in collection order; raw and small prefix their collection names."""
SPLITS = ("train", "val", "test")
CONDITIONS = ("night", "occlusion")
"""Query-set suffixes that name a capture condition (``sfxl_condition``); v1/v2 are versions."""
_QUERY_SET = re.compile(r"queries_[A-Za-z0-9_]+", re.ASCII)


def _role_folders(split_dir: Path) -> list[tuple[str, Path]]:
    """``(role, folder)`` of one split: database, panoramas, queries, queries_<x>, in that order."""
    found: list[tuple[str, Path]] = []
    for role in ("database", "panoramas", "queries"):
        if (split_dir / role).is_dir():
            found.append((role, split_dir / role))
    extra = sorted(p for p in split_dir.iterdir() if p.is_dir() and _QUERY_SET.fullmatch(p.name))
    found += [(p.name, p) for p in extra]
    return found


def read(root: Path) -> list[NativeCollection]:
    """The collections of an ``sf_xl`` folder (see the module docstring); [] when it holds none."""
    collections: list[NativeCollection] = []
    for part in PARTS:
        if not (root / part).is_dir():
            continue
        prefix = "" if part == "processed" else f"{part}_"
        for split in SPLITS:
            split_dir = root / part / split
            if not split_dir.is_dir():
                continue
            roles = _role_folders(split_dir)
            if not roles and split == "train":  # processed/train, small/train: the crops themselves
                roles = [("database", split_dir)]
            for role, folder in roles:
                suffix = role.removeprefix("queries_") if role.startswith("queries_") else None
                constant = {
                    "split": split,
                    "sfxl_part": part,
                    "sfxl_condition": suffix if suffix in CONDITIONS else None,
                    "night": True if suffix == "night" else None,
                    "is_pano": True if role == "panoramas" else None,
                }
                collections.append(
                    NativeCollection(
                        f"{prefix}{split}_{role}",
                        at_folder=folder.relative_to(root).as_posix(),
                        constant=constant,
                    )
                )
    return collections
