"""Arrow schemas of the catalog tables: the column names and types are the contract.

Units and conventions:
  * ``lat``/``lon``: WGS84 degrees. ``utm_east``/``utm_north``: metres in the UTM zone
    ``utm_zone`` (1..60) with latitude band ``utm_letter`` (C..X without I and O; 'N' and
    later is northern, as in ``utm`` and MGRS).
  * ``utm_epsg``: the EPSG code of that coordinate system, 32600 + zone north, 32700 + zone
    south (32610 for San Francisco, 32756 for Sydney): the one key of a coordinate system
    (classes, positives and validation cells compare it, never zone and letter). Derived at
    ingest by :func:`from_columns` with :func:`vgdata.geo.utm_epsg` (SQL: the ``utm_epsg``
    macro); null when the zone or the letter is missing (names without a zone, e.g. Nordland's
    dummy coordinates), and such images form one system of their own.
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
    ("utm_epsg", pa.int32()),
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

ATTRIBUTES = pa.schema(
    [
        ("image_id", pa.int64()),
        ("collection", pa.string()),
        ("dataset", pa.string()),  # the native source: msls, pitts, tokyo247, gsv-cities, osv5m, sfxl, svox, nordland
        ("split", pa.string()),  # the dataset's own split: train, val, test
        ("city", pa.string()),  # the dataset's city or region folder, verbatim (MSLS 'cph', gsv-cities 'London')
        ("sequence_id", pa.string()),  # a capture sequence (MSLS sequence_key, OSV-5M sequence), as text
        ("frame", pa.int32()),  # position in the sequence (MSLS frame_number, Nordland frame index)
        ("place_id", pa.string()),  # the dataset's own place label (gsv-cities place_id, Pittsburgh place)
        ("night", pa.bool_()),  # captured at night (MSLS night flag; SF-XL/SVOX night query sets)
        ("is_pano", pa.bool_()),  # a 360-degree panorama frame (MSLS pano)
        ("view_direction", pa.string()),  # relative to the vehicle: Forward, Backward, Sideways (MSLS)
        ("coords_synthetic", pa.bool_()),  # positions made up to encode an identity ground truth (Nordland)
        ("source_east", pa.float64()),  # the dataset's own easting, metres, verbatim (MSLS, Pittsburgh, Tokyo)
        ("source_north", pa.float64()),  # the dataset's own northing, metres, verbatim
        ("source_name", pa.string()),  # the image's name in the dataset's metadata when it differs from path
    ]
)
"""Dataset attributes: one row per image imported by a native source (``--from``), keyed by image_id.

These columns are shared by every dataset (null where one has no such field); a dataset adds its
own typed columns, prefixed with its name (``msls_unique_cluster``, ``osv5m_country``), documented
in its module (``vgdata/sources/ds_<name>.py``). The ``attributes`` view reads every part with
``union_by_name``, so one dataset's columns are null on another's rows."""

TABLES = {"images": IMAGES, "panoramas": PANORAMAS, "rejects": REJECTS, "attributes": ATTRIBUTES}


def empty(schema: pa.Schema) -> pa.Table:
    """A zero-row table with ``schema``."""
    return schema.empty_table()


def from_columns(schema: pa.Schema, columns: dict[str, list]) -> pa.Table:
    """Build a table of ``schema`` from python lists; missing columns become nulls.

    ``utm_epsg``, where the schema has it and a row leaves it None (or ``columns`` lacks it),
    is derived from that row's ``utm_zone`` and ``utm_letter`` (:func:`utm_epsg_column`):
    every source builds its tables here, so this is the one place the column is made.
    """
    n = max((len(v) for v in columns.values()), default=0)
    if "utm_epsg" in schema.names:
        given = columns.get("utm_epsg") or [None] * n
        derived = utm_epsg_column(columns.get("utm_zone"), columns.get("utm_letter"), n)
        columns = {**columns, "utm_epsg": [d if g is None else g for g, d in zip(given, derived, strict=True)]}
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def utm_epsg_column(zones: list | None, letters: list | None, n: int) -> list[int | None]:
    """``utm_epsg`` of ``n`` rows: :func:`vgdata.geo.utm_epsg` where both zone and letter are set, else None.

    Raises :class:`vgdata.geo.GeoError` for a zone outside 1..60 or an unknown letter (sources
    reject those rows before they build a table).
    """
    zones = zones if zones is not None else [None] * n
    letters = letters if letters is not None else [None] * n
    known = [i for i in range(n) if zones[i] is not None and letters[i] is not None]
    out: list[int | None] = [None] * n
    if known:
        from vgdata.geo import utm_epsg  # lazily: pyproj is only needed where a table has zones

        codes = utm_epsg([zones[i] for i in known], [str(letters[i]) for i in known])
        for i, code in zip(known, codes.tolist(), strict=True):
            out[i] = code
    return out
