"""Arrow schemas of the catalog tables: the column names and types are the contract.

Units and conventions:
  * ``lat``/``lon``: WGS84 degrees. ``utm_east``/``utm_north``: metres in the UTM zone
    ``utm_zone`` (1..60) with latitude band ``utm_letter`` (C..X; >= 'N' is northern).
  * ``heading``: degrees clockwise from north in [0, 360); null when unknown (e.g. Flickr
    queries). For crops we cut it is the azimuth of the crop's centre column; for imported
    '@' names it is field 9 verbatim.
  * ``pitch``/``roll``: degrees; ``altitude``: metres; ``timestamp``: the '@' text form
    ``YYYY[MM[DD[_hh[mm[ss]]]]]``; ``year``/``month`` parsed from it.
  * ``path``: relative to the collection's image root (``build.json``), '/'-separated.
  * ``width``/``height_px``: pixels.
"""

from __future__ import annotations

import pyarrow as pa

# Position, orientation and time: shared by images and panoramas, in this order.
_POSE = [
    ("lat", pa.float64()),
    ("lon", pa.float64()),
    ("utm_east", pa.float64()),
    ("utm_north", pa.float64()),
    ("utm_zone", pa.int16()),
    ("utm_letter", pa.string()),
    ("heading", pa.float64()),
    ("pitch", pa.float64()),
    ("roll", pa.float64()),
    ("altitude", pa.float64()),
    ("timestamp", pa.string()),
    ("year", pa.int16()),
    ("month", pa.int8()),
]
_SIZE = [("width", pa.int32()), ("height_px", pa.int32())]

IMAGES = pa.schema(
    [
        ("image_id", pa.int64()),
        ("path", pa.string()),
        ("collection", pa.string()),
        ("pano_id", pa.string()),
        ("tile", pa.int16()),
        *_POSE,
        *_SIZE,
    ]
)

PANORAMAS = pa.schema(
    [("pano_id", pa.string()), ("collection", pa.string()), ("source_path", pa.string()), *_POSE, *_SIZE]
)

REJECTS = pa.schema(
    [
        ("collection", pa.string()),
        ("source", pa.string()),  # metadata (CSV row), panorama, image (import), photo, pose (query sources)
        ("path", pa.string()),  # the file or CSV concerned
        ("row", pa.int64()),  # 1-based data row of the CSV, null for files
        ("reason", pa.string()),  # a short category, e.g. "unreadable image", "duplicate pano_id"
        ("detail", pa.string()),  # the specifics: the offending value, the decoder's message
    ]
)

TABLES = {"images": IMAGES, "panoramas": PANORAMAS, "rejects": REJECTS}


def empty(schema: pa.Schema) -> pa.Table:
    """A zero-row table with ``schema``."""
    return schema.empty_table()


def from_columns(schema: pa.Schema, columns: dict[str, list]) -> pa.Table:
    """Build a table of ``schema`` from python lists; missing columns become nulls."""
    n = max((len(v) for v in columns.values()), default=0)
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
