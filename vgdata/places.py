"""``split-places``: a dataset's own places (gsv-cities ``place_id``) as training classes, as a manifest.

``vgdata split-groups`` stays CosPlace's (classes are UTM/heading cells, :mod:`vgdata.groups`). A
dataset imported with ``--from`` may instead label its images with places: gsv-cities gives every
image a ``place_id`` unique within its city (FORMATS.md 2.5), 4 to 20 images of one spot. This
module writes those places as a manifest that ``vgtrain fit`` trains on unchanged:

* class = one place, ``(city, place_id)`` of the ``attributes`` table joined on ``image_id``;
  images without a city or place id belong to no class;
* places with fewer than ``min_images`` images are dropped (gsv-cities' ``min_img_per_place``);
* classes are numbered 0..K-1 by city (byte order), then place_id as a number where it is a whole
  number (gsv-cities' ids: place 3 before place 10), then as text;
* ONE group (``group_rank`` 0): train with ``vgtrain fit --groups-num 1``; each epoch draws classes
  uniformly from every kept place (one CosFace head of K rows).

The manifest ``manifests/places_<name>.parquet`` (default name ``<collection>_mi<min>_<fingerprint[:12]>``)
has the groups manifest's columns in its order (``group_rank, class_index, image_id, collection,
path, utm_east, utm_north, utm_zone, utm_epsg, heading``, then ``class_e .. group_h`` all null:
a place is no CosPlace cell) followed by ``city``, ``place_id``, ``class_images``; rows by
class_index, image_id. The metadata is the groups manifest's (:meth:`vgdata.catalog.Catalog.manifest_metadata`)
with ``vgdata.kind`` = ``places`` and ``vgdata.params`` = :meth:`PlacesConfig.params` (``kind``
``places``, ``class``, ``class_order``, ``min_images``, ``collection``, ``groups_num`` 1).
The SQL is ``vgdata/sql/manifests/places_manifest.sql`` (``place_classes``, ``places_manifest``).

Audits: CosPlace's class-of-position audits do not apply (a place is no cell). The ``places`` audits
of ``vgdata/sql/places_audits/`` (:func:`vgdata.check.audit_places`, run at the end of split-places
and by ``vgdata check`` on every places manifest) check instead
that every image of a class has that class's place in the catalog's attributes, that one place is
one class of one group, and that the kept places are exactly the places with >= ``min_images``
images, each with all its images, class indexes counting from 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vgdata.catalog import Catalog, _sql_literal, writer_lock
from vgdata.check import audit_places
from vgdata.errors import UsageError, VgdataError
from vgdata.manifest import write_manifest

KIND = "places"
"""``vgdata.kind`` of a places manifest."""
CLASS_ORDER = "city (byte order), then place_id as a whole number where it is one, then as text"


@dataclass
class PlacesConfig:
    """Parameters of ``vgdata split-places``."""

    catalog: Path
    """Catalog folder."""
    collection: str = "gsv_cities_train_database"
    """Collection whose places become classes (``--from gsv-cities`` imports as ``gsv_cities_train_database``)."""
    min_images: int = 4
    """Places with fewer images are dropped (gsv-cities' ``min_img_per_place``)."""
    name: str | None = None
    """Manifest name (``places_<name>.parquet``); default ``<collection>_mi<min>_<fingerprint[:12]>``."""

    def params(self) -> dict[str, Any]:
        """The parameters that define the manifest's content (``vgdata.params``)."""
        return {
            "kind": KIND,
            "class": "place (city, place_id)",
            "class_order": CLASS_ORDER,
            "min_images": self.min_images,
            "collection": self.collection,
            "groups_num": 1,
        }


@dataclass
class PlacesResult:
    """What split-places found and wrote."""

    manifest: str
    places: int
    """Places (city, place_id) of the collection."""
    kept_places: int
    """Classes in the manifest: places with >= min_images images."""
    manifest_images: int
    unplaced_images: int
    """Images of the collection without a city or place id (in no class)."""
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(c: PlacesConfig) -> None:
    from vgdata.views import check_name

    if not isinstance(c.min_images, int) or isinstance(c.min_images, bool) or c.min_images < 1:
        raise UsageError(f"--min-images must be a whole number >= 1, got {c.min_images!r}")
    if c.name is not None:
        check_name(c.name, "places manifest name")


def manifest_name(c: PlacesConfig, fingerprint: str) -> str:
    """``places_<name>``, or ``places_<collection>_mi<min>_<fingerprint[:12]>`` (no extension)."""
    return f"places_{c.name}" if c.name else f"places_{c.collection}_mi{c.min_images}_{fingerprint[:12]}"


def split_places(config: PlacesConfig) -> PlacesResult:
    """Write the places manifest of ``config`` and audit it (:func:`vgdata.check.audit_places`); returns the counts.

    Raises UsageError for an unknown collection or a bad option, VgdataError (saying what to do)
    when the collection has no places or none with ``min_images`` images.
    """
    _check(config)
    cat = Catalog(config.catalog)
    build = cat.require()
    if config.collection not in build["collections"]:
        raise UsageError(f"no collection {config.collection!r} in {cat.root}; have {', '.join(build['collections'])}")
    args = {"coll": config.collection, "min_images": int(config.min_images)}
    con = cat.connect()
    try:
        places, kept = con.execute(
            "select count(*), count(*) filter (where kept) from place_classes(coll := $coll, min_images := $min_images)",
            args,
        ).fetchall()[0]
        total = con.execute("select count(*) from images where collection = $coll", {"coll": config.collection})
        total = total.fetchall()[0][0]
        if places == 0:
            raise VgdataError(
                f"none of the {total} images of collection {config.collection!r} has a city and place_id; places come "
                "from a dataset that labels them (build it with `--from gsv-cities DIR`); for CosPlace's cells use "
                "`vgdata split-groups`"
            )
        if kept == 0:
            raise VgdataError(
                f"no place of collection {config.collection!r} has >= {config.min_images} images ({places} places); "
                "use a smaller --min-images"
            )
        name = manifest_name(config, build["fingerprint"])
        query = "from places_manifest(coll := $coll, min_images := $min_images)"
        with writer_lock(cat.root, task=f"write places manifest {name!r}"):  # re-entrant: write_manifest takes it too
            if cat.load_build().get("fingerprint") != build["fingerprint"]:
                raise VgdataError(f"{cat.root} was changed by another command while split-places ran; run it again")
            path = write_manifest(con, cat, build, name, query, kind=KIND, params=config.params(), query_params=args)
        images = con.execute(f"select count(*) from read_parquet('{_sql_literal(str(path))}')").fetchall()[0][0]
        placed = "select coalesce(sum(images), 0) from place_classes(coll := $coll, min_images := 1)"
        unplaced = total - con.execute(placed, {"coll": args["coll"]}).fetchall()[0][0]
        audit_places(con, path, config.params())  # vgdata/sql/places_audits/: rows found are a bug
    finally:
        con.close()
    return PlacesResult(
        manifest=str(path),
        places=int(places),
        kept_places=int(kept),
        manifest_images=int(images),
        unplaced_images=int(unplaced),
        params=config.params(),
    )
