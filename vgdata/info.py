"""``vgdata info``: a summary of a catalog computed with SQL over its views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vgdata.catalog import Catalog


def catalog_info(catalog: str | Path) -> dict[str, Any]:
    """Counts per collection and year, UTM zones, bounding box, rejects by reason, fingerprint."""
    cat = Catalog(catalog)
    build = cat.require()
    con = cat.connect()
    try:

        def rows(sql: str) -> list[dict[str, Any]]:
            rel = con.sql(sql)
            cols = rel.columns
            return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]

        return {
            "catalog": str(cat.root),
            "fingerprint": build.get("fingerprint"),
            "tool_version": build.get("tool_version"),
            "collections": rows(
                "select collection, count(*) as images, count(distinct pano_id) as panoramas, "
                "count(heading) as with_heading from images group by all order by collection"
            ),
            "years": rows(
                "select collection, year, count(*) as images from images group by all order by collection, year"
            ),
            "zones": rows(
                "select utm_zone, utm_letter, count(*) as images from images group by all "
                "order by utm_zone nulls last, utm_letter"
            ),
            "bbox": rows(
                "select collection, min(lat) as lat_min, max(lat) as lat_max, min(lon) as lon_min, "
                "max(lon) as lon_max from images group by all order by collection"
            ),
            "rejects": rows(
                "select collection, reason, count(*) as count from rejects group by all order by collection, reason"
            ),
        }
    finally:
        con.close()
