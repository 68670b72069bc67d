# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore a catalog with DuckDB and geopandas
#
# A catalog is a folder of Parquet tables (`images/`, `panoramas/`, `rejects/`) plus `catalog.duckdb`, which
# holds views over them and no data. This notebook opens one, asks DuckDB a few questions, then turns the
# images into a GeoDataFrame (points in WGS84, reprojected to each image's UTM zone) and draws a coverage map.
#
# Set `VGDATA_CATALOG` to the catalog folder (default `catalogs/demo`, which `make demo` builds).
# Needs the `gis` extra: `pip install -e '.[gis,notebooks]'`.

# %%
import os
from pathlib import Path

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np

from vgdata.catalog import Catalog


def find_catalog(name: str) -> Path:
    """The catalog folder: as given, else relative to the repository root (when run from notebooks/)."""
    path = Path(name).expanduser()
    if path.is_absolute() or (path / "build.json").is_file():
        return path
    return Path.cwd().parent / path if (Path.cwd().parent / path / "build.json").is_file() else path


CATALOG = find_catalog(os.environ.get("VGDATA_CATALOG", "catalogs/demo"))
MAX_POINTS = 200_000  # points drawn on the map; larger catalogs are sampled (DuckDB reservoir sample)

cat = Catalog(CATALOG)
build = cat.require()  # one-line UsageError when the folder is not a catalog
con = cat.connect()  # read-only DuckDB connection; relative Parquet paths resolve inside the catalog
print(CATALOG.resolve(), "fingerprint", build["fingerprint"][:12])

# %% [markdown]
# ## Collections
# One row per collection: images, distinct panoramas, years covered, how many have a heading.

# %%
collections = con.sql(
    """
    select collection, count(*) as images, count(distinct pano_id) as panoramas,
           min(year) as first_year, max(year) as last_year, count(heading) as with_heading
    from images group by collection order by collection
    """
).df()
collections

# %% [markdown]
# ## Images per year
# A null year is an image without a capture date (e.g. 6-DoF query poses).

# %%
per_year = con.sql(
    """
    select collection, coalesce(cast(year as varchar), 'unknown') as year, count(*) as images
    from images group by all order by all
    """
).df()
images_per_year = per_year.pivot_table(index="year", columns="collection", values="images", aggfunc="sum", fill_value=0)
images_per_year["total"] = images_per_year.sum(axis=1)
images_per_year

# %%
ax = images_per_year.drop(columns="total").plot.bar(stacked=True, figsize=(6, 3))
ax.set_ylabel("images")
ax.set_title("Images per year")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Rejects by reason
# Bad inputs are never dropped silently: each one is a row of `rejects` with a reason and an example.

# %%
rejects = con.sql(
    """
    select collection, reason, count(*) as n, any_value(coalesce(path, cast("row" as varchar))) as example
    from rejects group by all order by n desc, collection, reason
    """
).df()
print(f"{int(rejects['n'].sum()) if len(rejects) else 0} rejected inputs")
rejects

# %% [markdown]
# ## Images as a GeoDataFrame
# Points from lat/lon in EPSG:4326, then one GeoDataFrame per UTM coordinate system (the catalog's `utm_epsg`
# column: 326zz north, 327zz south). Reprojected with geopandas, the points land on the catalog's own
# `utm_east`/`utm_north` to within millimetres.

# %%
n_located = con.sql("select count(*) from images where lat is not null and lon is not null").fetchall()[0][0]
points = con.sql(
    f"""
    select image_id, collection, year, heading, lat, lon, utm_east, utm_north,
           -- catalogs built before the utm_epsg column have only the zone and its latitude band
           coalesce(utm_epsg, (case when utm_letter >= 'N' then 32600 else 32700 end) + utm_zone) as utm_epsg
    from images where lat is not null and lon is not null
    using sample reservoir({MAX_POINTS} rows) repeatable (0)
    """
).df()
images = gpd.GeoDataFrame(points, geometry=gpd.points_from_xy(points["lon"], points["lat"]), crs="EPSG:4326")
print(f"{len(images)} of {n_located} located images on the map")

by_zone = {int(epsg): part.to_crs(epsg=int(epsg)) for epsg, part in images.groupby("utm_epsg")}
zone_offset_m = {
    epsg: float(np.hypot(part.geometry.x - part["utm_east"], part.geometry.y - part["utm_north"]).max())
    for epsg, part in by_zone.items()
}
print("largest distance between geopandas' UTM point and the catalog's, per EPSG (m):", zone_offset_m)

# %% [markdown]
# ## Coverage map
# The largest UTM zone, coloured by year (the CosPlace paper's Fig. 1 style); queries drawn on top.

# %%
epsg, zone = max(by_zone.items(), key=lambda item: len(item[1]))
fig, ax = plt.subplots(figsize=(6, 6))
database = zone[zone["collection"] == "database"]
if len(database):
    database.plot(
        ax=ax,
        column="year",
        categorical=True,
        markersize=3,
        cmap="viridis",
        legend=True,
        legend_kwds={"title": "database year", "loc": "upper right"},
    )
    ax.add_artist(ax.get_legend())  # keep the year legend when the queries' legend is added
markers = iter("x+^sv*")
queries = [
    ax.scatter(part.geometry.x, part.geometry.y, marker=next(markers, "o"), s=40, color="black", label=name)
    for name, part in zone[zone["collection"] != "database"].groupby("collection")
]
if queries:
    ax.legend(handles=queries, loc="lower left", title="queries")
ax.ticklabel_format(useOffset=False, style="plain")
ax.set_title(f"{CATALOG.name}: {len(zone)} images, EPSG:{epsg}")
ax.set_xlabel("easting (m)")
ax.set_ylabel("northing (m)")
plt.tight_layout()
plt.show()

# %%
con.close()
