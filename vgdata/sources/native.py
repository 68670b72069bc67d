"""Public VPR datasets in their own layouts: ``vgdata build-catalog CATALOG --from <dataset> DIR``.

A dataset module ``vgdata/sources/ds_<name>.py`` (registered in :data:`DATASETS`) reads the
dataset's own files (CSV, ``.mat``, folder names) once and returns its collections as
:class:`NativeCollection` objects: the dataset's splits and roles become catalog collections named
``<split>_<role>`` (``train_database``, ``val_queries``, ``test_queries_night``; see each module).
This module does everything the datasets share, so each reader only maps fields:

* positions: a row with lat/lon gets UTM recomputed with pyproj (zone per point); a row with only
  UTM (easting, northing, zone, letter; Pittsburgh, Tokyo) is inverted to lat/lon and its UTM kept
  verbatim; a row with neither keeps whatever easting/northing it gives without a zone (Nordland's
  synthetic positions) and has no lat/lon. Bad points are rejects (``lat/lon out of range``,
  ``UTM out of range``, ``band letter inconsistent``...), never a crash.
* headings: degrees clockwise from north, wrapped into [0, 360); null when the dataset has none or
  only a relative yaw (that goes to ``tile``); a non-finite value is a ``bad heading`` reject.
* times: any form :func:`vgdata.sources.common.canonical_timestamp` reads becomes the '@' text form
  ``YYYY[MM[DD[_hhmmss]]]``; anything else is a ``bad timestamp`` reject.
* paths: relative to the dataset root as on disk; one leading out of it (``..``, a symlink out) is a
  ``path outside folder`` reject, a second row naming the same file a ``duplicate path`` reject.
* images: opened in the workers for their header only (size, pixel mode, EXIF orientation), as
  '@' folder imports are (:func:`vgdata.sources.at_folder.probe_header`); the files stay in place
  and the dataset root is the collection's image root.
* attributes: every image also gets a row in the ``attributes`` table
  (:data:`vgdata.schema.ATTRIBUTES`: split, city, sequence, frame, place, night, panorama, view
  direction, synthetic-coordinates flag, the dataset's own easting/northing and name) plus the
  dataset's own typed columns, prefixed with its name.

Collections of '@'-named images (SF-XL processed, SVOX) are imported exactly as ``--images``
imports a folder (:mod:`vgdata.sources.at_folder`), with constant attributes per collection.
Every collection is built, resumed and fingerprinted on its own, as any other build.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vgdata.errors import UsageError
from vgdata.schema import ATTRIBUTES, IMAGES, PANORAMAS, REJECTS, from_columns
from vgdata.sources.common import (
    add_reject,
    canonical_timestamp,
    image_id,
    inside,
    is_utf8,
    new_rejects,
    safe_relative,
)

DATASETS = {
    "msls": "vgdata.sources.ds_msls",
    "pitts": "vgdata.sources.ds_pitts",
    "tokyo247": "vgdata.sources.ds_tokyo247",
    "gsv-cities": "vgdata.sources.ds_gsv_cities",
    "osv5m": "vgdata.sources.ds_osv5m",
    "sfxl": "vgdata.sources.ds_sfxl",
    "svox": "vgdata.sources.ds_svox",
    "nordland": "vgdata.sources.ds_nordland",
}
"""``--from`` names and their reader modules (each has ``NAME``, ``ATTRIBUTES`` and ``read(root)``)."""

IMAGE_FIELDS = (
    "pano_id", "tile", "lat", "lon", "utm_east", "utm_north", "utm_zone", "utm_letter",
    "heading", "pitch", "roll", "altitude", "timestamp",
)  # fmt: skip
"""The catalog fields a reader may give per row (units: vgdata/schema.py); the rest are derived here."""


@dataclass
class NativeCollection:
    """One collection of a dataset, as its reader found it.

    Either ``rows`` (one dict per image) or ``at_folder`` (a folder of '@'-named images).
    A row holds ``path`` (relative to the dataset root, '/'-separated, as on disk), optionally
    ``source`` and ``row`` (the metadata file, relative to the root, and its 1-based data row:
    where a reject points), any of :data:`IMAGE_FIELDS`, and ``attrs``: attribute values by
    column name (the shared :data:`vgdata.schema.ATTRIBUTES` names and the dataset's own).
    """

    name: str
    """The catalog collection, ``<split>_<role>[_<condition>]``: letters, digits and '_'."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[str, str, int | None, str, str]] = field(default_factory=list)
    """Found while reading: ``(source, path, row, reason, detail)``; ``source`` is a kind (metadata, image)."""
    at_folder: str | None = None
    """A folder of '@'-named images, relative to the dataset root, imported as ``--images`` does."""
    constant: dict[str, Any] = field(default_factory=dict)
    """Attributes shared by every image of an ``at_folder`` collection (e.g. split, night)."""


def dataset_module(name: str):
    """The reader module of dataset ``name``; a UsageError naming the known ones otherwise."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r} for --from; choose one of {', '.join(sorted(DATASETS))}")
    return importlib.import_module(DATASETS[name])


def attributes_schema(dataset: str) -> pa.Schema:
    """The shared attribute columns followed by the dataset's own (``ATTRIBUTES`` of its module)."""
    own = list(getattr(dataset_module(dataset), "ATTRIBUTES", []))
    return pa.schema([*ATTRIBUTES, *own])


_READ: dict[tuple[str, str, str], list[NativeCollection]] = {}


def default_prefix(dataset: str) -> str:
    """The collection prefix of a dataset: its module's ``PREFIX``, else its name with '-' as '_'."""
    return getattr(dataset_module(dataset), "PREFIX", dataset.replace("-", "_"))


def read_dataset(dataset: str, root: Path, *, prefix: str | None = None, fresh: bool = False) -> list[NativeCollection]:
    """The dataset's collections, named ``<prefix>_<name>`` (``prefix`` None: :func:`default_prefix`;
    ``""``: the reader's names as they are), read once per process (``fresh``: read again).

    The prefix lets several datasets share one catalog: Tokyo's, Nordland's and SVOX's
    ``test_database`` become ``tokyo247_test_database``, ``nordland_test_database``, ``svox_test_database``.
    """
    if not root.is_dir():
        raise UsageError(f"{dataset} folder not found: {root}")
    prefix = default_prefix(dataset) if prefix is None else prefix
    if prefix and not prefix.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"--prefix must be letters, digits, '_' or '-', got {prefix!r}")
    key = (dataset, str(root.resolve()), prefix)
    if fresh or key not in _READ:
        collections = dataset_module(dataset).read(root)
        if not collections:
            raise UsageError(f"no {dataset} data found in {root}: {dataset_module(dataset).__doc__.splitlines()[0]}")
        _READ[key] = [replace(c, name=f"{prefix}_{c.name}" if prefix else c.name) for c in collections]
    return _READ[key]


def describe(config) -> dict:
    """The inputs, for the build's plan key."""
    root = str(config.dataset_root.resolve())
    return {"dataset": config.dataset, "root": root, "collection": config.collection, "prefix": config.prefix}


def plan(config, cat) -> tuple[list[tuple[str, dict]], pa.Table, str]:
    """Shards of prepared rows (or '@' paths), the rejects found while reading, and the image root."""
    from vgdata.jobs import cut_shards

    root = config.dataset_root.resolve()
    found = {c.name: c for c in read_dataset(config.dataset, root, prefix=config.prefix)}
    if config.collection not in found:
        raise UsageError(f"{config.dataset} in {root} has no collection {config.collection!r}; have {', '.join(found)}")
    coll = found[config.collection]
    rej = new_rejects()
    for source, path, row, reason, detail in coll.rejects:
        add_reject(rej, coll.name, source, path, row, reason, detail)
    common = {"dataset": config.dataset, "constant": coll.constant}
    size = config.shard_size * 64  # header probes are ~100x cheaper than cropping a panorama
    if coll.at_folder is not None:
        from vgdata.sources.at_folder import list_images

        folder = root / coll.at_folder
        paths, listed = list_images(folder, coll.name)
        for r in listed.to_pylist():
            add_reject(rej, coll.name, r["source"], r["path"], r["row"], r["reason"], r["detail"])
        image_root = str(folder.resolve())
        return cut_shards(cat.root, coll.name, paths, size, {**common, "folder": image_root}), _rejects(rej), image_root
    items = prepare_rows(coll.name, root, coll.rows, rej, allowed=set(attributes_schema(config.dataset).names))
    return cut_shards(cat.root, coll.name, items, size, {**common, "folder": str(root)}), _rejects(rej), str(root)


def _rejects(rej: dict[str, list]) -> pa.Table:
    return from_columns(REJECTS, rej)


def prepare_rows(
    collection: str, root: Path, rows: list[dict[str, Any]], rej: dict[str, list], *, allowed: set[str] | None = None
) -> list[dict]:
    """Check and complete a reader's rows (paths, positions, headings, times); rejected rows go to ``rej``.

    ``allowed``: the attribute columns of the dataset; an ``attrs`` key outside it is a reader bug
    (ValueError), never a silently dropped field.

    Returns the shard items: JSON-able dicts with ``src`` (the path), the :data:`IMAGE_FIELDS`
    (positions completed, timestamp canonical, ``year``/``month`` added) and ``attrs``.
    """
    seen: dict[str, int] = {}
    kept: list[dict] = []

    def reject(r: dict, reason: str, detail: str) -> None:
        where = r.get("source") or str(root / str(r.get("path", "")))
        add_reject(rej, collection, "metadata" if r.get("source") else "image", where, r.get("row"), reason, detail)

    for r in rows:
        text = str(r.get("path", ""))
        rel = safe_relative(root, text, follow_links=False) if is_utf8(text) else None  # links: in the workers
        if rel is None:
            reject(r, "path outside folder", f"{r.get('path')!r} is not a file inside {root}")
            continue
        if rel in seen:
            reject(r, "duplicate path", f"{rel!r} already given by row {seen[rel]}")
            continue
        heading = r.get("heading")
        if heading is not None and not (isinstance(heading, int | float) and math.isfinite(heading)):
            reject(r, "bad heading", f"heading {heading!r} is not a finite number of degrees")
            continue
        ts = r.get("timestamp")
        parsed = canonical_timestamp(str(ts)) if ts not in (None, "") else None
        if ts not in (None, "") and parsed is None:
            reject(r, "bad timestamp", f"{ts!r} is not a date or time (YYYYMM, YYYYMMDD, ISO 8601)")
            continue
        seen[rel] = r.get("row") or len(seen) + 1
        item = {k: r.get(k) for k in IMAGE_FIELDS}
        item["src"] = rel
        item["heading"] = None if heading is None else _wrap(float(heading))
        item["timestamp"], item["year"], item["month"] = parsed if parsed else (None, None, None)
        item["attrs"] = dict(r.get("attrs") or {})
        if allowed is not None and not item["attrs"].keys() <= allowed:
            raise ValueError(f"reader bug: attributes {sorted(item['attrs'].keys() - allowed)} are not declared")
        item["_meta"] = r
        kept.append(item)
    kept = _positions(kept, reject)
    for item in kept:
        del item["_meta"]
    return kept


def _wrap(h: float) -> float:
    """A finite heading in degrees wrapped into [0, 360) (as :func:`vgdata.geo.wrap_heading`, for one value)."""
    w = h % 360.0 + 0.0  # Python's float modulo is non-negative for a positive divisor; + 0.0 drops -0.0
    return 0.0 if w >= 360.0 else w


def _positions(items: list[dict], reject) -> list[dict]:
    """Fill lat/lon from UTM or UTM from lat/lon, vectorised; the points that fail are rejected."""
    from vgdata import geo, utm_input

    bad: dict[int, tuple[str, str]] = {}
    with_latlon = [i for i, it in enumerate(items) if it["lat"] is not None and it["lon"] is not None]
    if with_latlon:
        lat = np.array([float(items[i]["lat"]) for i in with_latlon])
        lon = np.array([float(items[i]["lon"]) for i in with_latlon])
        reasons = geo.invalid_latlon_reasons(lat, lon)
        ok = [j for j, why in enumerate(reasons) if why is None]
        for j, why in enumerate(reasons):
            if why is not None:
                bad[with_latlon[j]] = ("lat/lon out of range", why)
        if ok:
            u = geo.latlon_to_utm(lat[ok], lon[ok])
            for k, j in enumerate(ok):
                it = items[with_latlon[j]]
                it["lat"], it["lon"] = float(lat[j]), float(lon[j])
                it["utm_east"], it["utm_north"] = float(u.east[k]), float(u.north[k])
                it["utm_zone"], it["utm_letter"] = int(u.zone[k]), str(u.letter[k])
    utm_only = [
        i
        for i, it in enumerate(items)
        if i not in bad and it["lat"] is None and it["utm_zone"] is not None and it["utm_letter"] is not None
    ]
    if utm_only:
        e = [float(items[i]["utm_east"]) for i in utm_only]
        n = [float(items[i]["utm_north"]) for i in utm_only]
        z = [items[i]["utm_zone"] for i in utm_only]
        letters = [str(items[i]["utm_letter"]).upper() for i in utm_only]
        lat, lon, problems = utm_input.utm_to_latlon_checked(e, n, z, letters)
        for j, i in enumerate(utm_only):
            if problems[j] is not None:
                bad[i] = problems[j]
                continue
            items[i]["lat"], items[i]["lon"] = float(lat[j]), float(lon[j])
            items[i]["utm_east"], items[i]["utm_north"] = e[j], n[j]
            items[i]["utm_zone"], items[i]["utm_letter"] = int(z[j]), letters[j]
    for i, it in enumerate(items):
        if i in bad or it["utm_zone"] is not None or it["lat"] is not None:
            continue
        it["utm_letter"] = None  # no zone: synthetic positions (east/north kept) or none at all
    for i, (reason, detail) in sorted(bad.items()):
        reject(items[i]["_meta"], reason, detail)
    return [it for i, it in enumerate(items) if i not in bad]


def run_shard(payload: dict) -> dict:
    """Probe one shard's image headers; write its images, attributes and rejects parts."""
    from vgdata.sources.at_folder import probe_header, probe_tables
    from vgdata.sources.panoramas import write_shard_tables

    collection, dataset = payload["collection"], payload["dataset"]
    schema = attributes_schema(dataset)
    constant = payload.get("constant") or {}
    if payload["items"] and isinstance(payload["items"][0], str):  # an '@' folder
        tables = probe_tables(payload)
        ids = tables["images"].column("image_id").to_pylist()
        attrs = {"image_id": ids, "collection": [collection] * len(ids), "dataset": [dataset] * len(ids)}
        attrs.update({k: [v] * len(ids) for k, v in constant.items()})
        tables["attributes"] = _attributes_table(schema, attrs, len(ids))
        return write_shard_tables(payload["catalog"], collection, payload["shard"], tables)
    folder = Path(payload["folder"])
    img: dict[str, list] = {f.name: [] for f in IMAGES}
    attrs: dict[str, list] = {f.name: [] for f in schema}
    rej = new_rejects()
    for it in payload["items"]:
        full = folder / it["src"]
        if not inside(folder, full):  # the rows were checked as text; a symlink may still lead out
            add_reject(
                rej, collection, "image", str(full), None, "path outside folder", f"{full} leads out of {folder}"
            )
            continue
        probed = probe_header(full)
        if isinstance(probed[0], str):
            add_reject(rej, collection, "image", str(full), None, *probed)
            continue
        iid = image_id(collection, it["src"])
        row = {**it, "image_id": iid, "path": it["src"], "collection": collection}
        row["width"], row["height_px"] = probed
        for k in img:
            img[k].append(row.get(k))
        values = {**constant, **it["attrs"], "image_id": iid, "collection": collection, "dataset": dataset}
        for k in attrs:
            attrs[k].append(values.get(k))
    tables = {
        "images": from_columns(IMAGES, img),
        "panoramas": PANORAMAS.empty_table(),
        "rejects": from_columns(REJECTS, rej),
        "attributes": _attributes_table(schema, attrs, len(img["image_id"])),
    }
    return write_shard_tables(payload["catalog"], collection, payload["shard"], tables)


def _attributes_table(schema: pa.Schema, columns: dict[str, list], n: int) -> pa.Table:
    unknown = sorted(set(columns) - set(schema.names))
    if unknown:  # a reader bug: an attribute its module does not declare
        raise ValueError(f"attributes not in the {columns.get('dataset', ['?'])[:1]} schema: {unknown}")
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
