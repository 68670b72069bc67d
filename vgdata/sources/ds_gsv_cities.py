"""GSV-Cities (Ali-bey et al. 2022): ``Images/<City>/*.jpg`` and one ``Dataframes/<City>.csv`` per city.

Collection: ``train_database`` (the dataset is a training set). Per CSV row (columns ``place_id,
year, month, northdeg, city_id, lat, lon, panoid``, read as text): the image name is built from
the row as the dataset's own loader builds it, ``<city_id>_<place_id:07d>_<year>_<month:02d>_
<northdeg:03d>_<lat>_<lon>_<panoid>.jpg`` (``.JPG`` is accepted when that is the file on disk);
the name is never parsed (panoid may hold '_').

Mapping: lat/lon as given (UTM recomputed); ``heading`` = ``northdeg`` (the camera bearing,
degrees from north); ``timestamp`` = ``YYYYMM``; ``pano_id`` = ``panoid``. Attributes:
``city`` (the CSV's ``city_id``), ``place_id`` (as text), ``split`` = train. The loader's
``city_index * 10**5`` offset is not stored: a place is ``(city, place_id)``.

Rejects: a row whose image is missing (``file not found``), an image no CSV row names
(``no metadata row``), a CSV without the columns (``bad metadata file``), a row with a
non-numeric lat/lon/northdeg/year/month (``bad metadata row``), and the shared checks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa

from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.native import NativeCollection

NAME = "gsv-cities"
ATTRIBUTES: list[tuple[str, pa.DataType]] = []
"""No columns of its own: city and place_id are shared attributes."""

COLUMNS = ("place_id", "year", "month", "northdeg", "city_id", "lat", "lon", "panoid")


def image_name(row: dict[str, str]) -> str:
    """The file name the gsv-cities loader builds for a CSV row (values as text)."""
    place = str(int(row["place_id"])).zfill(7)
    return (
        f"{row['city_id']}_{place}_{int(row['year'])}_{str(int(row['month'])).zfill(2)}_"
        f"{str(int(float(row['northdeg']))).zfill(3)}_{row['lat']}_{row['lon']}_{row['panoid']}.jpg"
    )


def read(root: Path) -> list[NativeCollection]:
    """The ``train_database`` collection of a GSV-Cities folder (see the module docstring)."""
    frames = root / "Dataframes"
    if not frames.is_dir():
        return []
    coll = NativeCollection("train_database")
    named: set[str] = set()
    for csv_path in sorted(frames.glob("*.csv")):
        src = csv_path.relative_to(root).as_posix()
        city = csv_path.stem
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                coll.rejects.append(("metadata", src, None, "bad metadata file", f"no column(s) {', '.join(missing)}"))
                continue
            for i, row in enumerate(reader, start=1):
                try:
                    name = image_name(row)
                    lat, lon, heading = float(row["lat"]), float(row["lon"]), float(row["northdeg"])
                except (TypeError, ValueError) as e:
                    coll.rejects.append(("metadata", src, i, "bad metadata row", f"{e}"))
                    continue
                rel = f"Images/{city}/{name}"
                if not (root / rel).exists() and (root / rel[:-4]).with_suffix(".JPG").exists():
                    rel = rel[:-4] + ".JPG"
                named.add(rel)
                coll.rows.append(
                    {
                        "path": rel,
                        "source": src,
                        "row": i,
                        "pano_id": row["panoid"],
                        "lat": lat,
                        "lon": lon,
                        "heading": heading,
                        "timestamp": f"{int(row['year']):04d}{int(row['month']):02d}",
                        "attrs": {"split": "train", "city": row["city_id"], "place_id": str(int(row["place_id"]))},
                    }
                )
    images = root / "Images"
    if images.is_dir():
        for p in sorted(images.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and rel not in named:
                coll.rejects.append(
                    ("image", str(p), None, "no metadata row", "no Dataframes/*.csv row names this file")
                )
    return [coll] if coll.rows or coll.rejects else []
