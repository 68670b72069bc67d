"""Nordland (raw, as downloaded): DIR holds summer/*.png, winter/*.png and cleanImageNames.txt.

The same file name in both seasons is the same place (one frame of the train ride filmed in
both). ``cleanImageNames.txt`` (one file name per line: Patch-NetVLAD's selection of usable
frames) says which frames are used. The kept frames are those listed **and** present in both
seasons, sorted by name and renumbered from 0, as VPR-datasets-downloader does (FORMATS.md 2.8;
it numbers each season on its own, so a frame missing from one season would shift its numbers:
here such a frame is a reject instead and the numbers always pair the same place).

Collections, DVG's protocol ("Nordland": database summer, queries winter; positives = the frames
within 10 of the query): ``test_database`` = summer, ``test_queries`` = winter. The "Nordland*"
protocol (VPR-Bench, BoQ, SALAD) flips the seasons (winter as the reference), keeps a subset of
2,760 queries and tolerates one frame; its official ground truth is not read here. The flip and
the tolerance alone are ``--database test_queries --queries test_database`` with a threshold of
3.6 m (1 frame = 2.4 m, 2 frames = 4.8 m).

Per frame n (0-based): ``pano_id`` = n as text; positions are synthetic, as DVG makes them:
``utm_east`` = 0.0, ``utm_north`` = n * 25 / 10.5 m (2.381 m apart, so 10 frames = 23.8 m <= 25 m
and 11 frames = 26.2 m > 25 m: the 25 m positives are exactly the frames within 10), no zone,
letter, lat or lon (DVG writes north with one decimal, truncated; the positives are the same).
Attributes: ``split`` = test, ``frame`` = n, ``coords_synthetic`` = True, ``source_name`` = the
original file name (e.g. its frame number in the ride), own column ``nordland_season`` (summer,
winter). No heading, time or real position is shipped.

Rejects: a listed frame present in one season only (``frame in one season only``, in that season's
collection), a listed name with no file in either season (``file not found``, in ``test_database``,
pointing at its line of ``cleanImageNames.txt``), a line that is not a plain file name (``bad
metadata row``), an unreadable image (shared checks). Frames not listed are **skipped, not bad**:
the list is a selection (the full ride has more frames than the ~27,600 it keeps [unverified]);
each skipped image is a rejects row with reason ``not in cleanImageNames`` in its season's
collection, so the count is visible in ``rejects_by_reason`` and the ``rejects`` table, and
``--strict`` reports them too. Files in the season folders that are not images are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from vgdata.errors import UsageError
from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.native import NativeCollection

NAME = "nordland"
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("nordland_season", pa.string()),  # summer or winter: the ride the frame comes from
]

LIST_FILE = "cleanImageNames.txt"
SEASONS = (("summer", "test_database"), ("winter", "test_queries"))
"""The season folders and their collections (DVG's protocol: summer is the database)."""
FRAME_SPACING_M = 25 / 10.5
"""Metres between consecutive synthetic positions: 10 frames <= 25 m < 11 frames (DVG)."""


def _images(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _listed(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(line, name)`` of the list's file names (first occurrence) and of its bad lines."""
    names: list[tuple[int, str]] = []
    bad: list[tuple[int, str]] = []
    seen: set[str] = set()
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for i, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name or name in seen:
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            bad.append((i, name))
            continue
        seen.add(name)
        names.append((i, name))
    return names, bad


def read(root: Path) -> list[NativeCollection]:
    """``test_database`` (summer) and ``test_queries`` (winter) of a raw Nordland folder; [] when not one."""
    if not all((root / season).is_dir() for season, _ in SEASONS):
        return []
    if not (root / LIST_FILE).is_file():
        raise UsageError(f"{root} has summer/ and winter/ but no {LIST_FILE} (the list of usable frames)")
    files = {season: _images(root / season) for season, _ in SEASONS}
    colls = {season: NativeCollection(name) for season, name in SEASONS}
    names, bad = _listed(root / LIST_FILE)
    for line, name in bad:
        detail = f"{name!r} is not a file name"
        colls["summer"].rejects.append(("metadata", LIST_FILE, line, "bad metadata row", detail))
    listed = {name for _, name in names}
    kept: list[str] = []
    for line, name in names:
        present = [season for season, _ in SEASONS if name in files[season]]
        if len(present) == 2:
            kept.append(name)
        elif present:
            other = next(s for s, _ in SEASONS if s != present[0])
            detail = f"listed in {LIST_FILE} but there is no {other}/{name}"
            colls[present[0]].rejects.append(
                ("image", str(root / present[0] / name), None, "frame in one season only", detail)
            )
        else:
            detail = f"{name} is listed but is in neither summer/ nor winter/"
            colls["summer"].rejects.append(("metadata", LIST_FILE, line, "file not found", detail))
    for season, _ in SEASONS:
        for name in sorted(files[season] - listed):
            detail = f"not listed in {LIST_FILE} (the selection of usable frames): skipped"
            colls[season].rejects.append(("image", str(root / season / name), None, "not in cleanImageNames", detail))
        for n, name in enumerate(sorted(kept)):
            colls[season].rows.append(
                {
                    "path": f"{season}/{name}",
                    "pano_id": str(n),
                    "utm_east": 0.0,
                    "utm_north": n * FRAME_SPACING_M,
                    "attrs": {
                        "split": "test",
                        "frame": n,
                        "coords_synthetic": True,
                        "source_name": name,
                        "nordland_season": season,
                    },
                }
            )
    return [colls[season] for season, _ in SEASONS]
