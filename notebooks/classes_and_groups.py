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
# # CosPlace classes and groups
#
# `vgdata split-groups` cuts the database into classes (UTM cells of M x M metres times heading bins of alpha
# degrees) and gathers classes N cells and L heading bins apart into groups, as CosPlace does. This notebook
# calls the library function behind that command, reads the groups manifest it writes with pyarrow (as
# vgtrain does), shows the class sizes and draws the cells coloured by group (the paper's Fig. 4 style).
#
# Set `VGDATA_CATALOG` to the catalog folder (default `catalogs/demo`). The notebook writes the manifest into
# the catalog's `manifests/` folder (reused on a second run). Needs the `gis` extra for the map.

# %%
import json
import os
from pathlib import Path

import geopandas as gpd
import matplotlib.pyplot as plt
import pandas as pd
import pyarrow.parquet as pq
from shapely.geometry import box

from vgdata.catalog import Catalog
from vgdata.groups import GroupsConfig, split_groups


def find_catalog(name: str) -> Path:
    """The catalog folder: as given, else relative to the repository root (when run from notebooks/)."""
    path = Path(name).expanduser()
    if path.is_absolute() or (path / "build.json").is_file():
        return path
    return Path.cwd().parent / path if (Path.cwd().parent / path / "build.json").is_file() else path


CATALOG = find_catalog(os.environ.get("VGDATA_CATALOG", "catalogs/demo"))
# CosPlace's M, alpha, N, L and groups_num; min_images_per_class is 1 so that a tiny catalog has 8 groups
# (CosPlace trains on SF-XL with min_images_per_class=10 and the first 8 groups).
PARAMS = {"m": 10, "alpha": 30, "n": 5, "l": 2, "min_images_per_class": 1, "groups_num": 8}
WINDOW_M = 400  # side of the map window (metres), centred on the median image of the first group

# %%
result = split_groups(GroupsConfig(CATALOG, **PARAMS))
print(f"{result.total_groups} groups with kept classes; manifest {Path(result.manifest).name}")
print(f"the first {PARAMS['groups_num']}: {result.manifest_classes} classes, {result.manifest_images} images")
pd.DataFrame(result.groups)

# %% [markdown]
# ## The manifest, read with pyarrow
# One row per image of the first `groups_num` groups; the parameters and the catalog fingerprint are in the
# file's key-value metadata.

# %%
manifest = pq.read_table(result.manifest)
metadata = {k.decode(): v.decode() for k, v in manifest.schema.metadata.items()}
print(json.dumps(json.loads(metadata["vgdata.params"]), indent=1))
rows = manifest.to_pandas()
rows.head()

# %% [markdown]
# ## Class sizes
# Images per class, per group: CosPlace samples classes uniformly, so small classes are seen as often as big ones.

# %%
class_sizes = (
    rows.groupby(
        ["group_rank", "class_index", "utm_zone", "utm_epsg", "class_e", "class_n", "class_h", "group_h"], dropna=False
    )
    .size()
    .rename("images")
    .reset_index()
)
per_group = class_sizes.groupby("group_rank").agg(classes=("class_index", "size"), images=("images", "sum"))
per_group

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for rank, part in class_sizes.groupby("group_rank"):
    ax.hist(part["images"], bins=range(1, int(class_sizes["images"].max()) + 2), alpha=0.6, label=f"group {rank}")
ax.set_xlabel("images per class")
ax.set_ylabel("classes")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Cells coloured by group
# One panel per heading offset (`group_h` = heading bin mod L): a cell holds one class per heading bin, and
# classes of one cell in different heading bins belong to different groups. Drawn in the UTM zone with the
# most images, in a window of `WINDOW_M` metres.

# %%
M = PARAMS["m"]
# The coordinate system with the most images; catalogs built before the utm_epsg column have only the zone.
by = "utm_epsg" if rows["utm_epsg"].notna().all() else "utm_zone"
key = int(rows[by].mode()[0])
epsg = key if by == "utm_epsg" else None
zone = rows[rows[by] == key]
centre_e, centre_n = zone.loc[zone["group_rank"] == zone["group_rank"].min(), ["utm_east", "utm_north"]].median()
window = box(centre_e - WINDOW_M / 2, centre_n - WINDOW_M / 2, centre_e + WINDOW_M / 2, centre_n + WINDOW_M / 2)
cells = class_sizes[class_sizes[by] == key]
cells = gpd.GeoDataFrame(
    cells,
    geometry=[
        box(e * M, n * M, (e + 1) * M, (n + 1) * M) for e, n in zip(cells["class_e"], cells["class_n"], strict=True)
    ],
    crs=epsg and f"EPSG:{epsg}",
)
cells = cells[cells.intersects(window)]
points = gpd.GeoDataFrame(zone, geometry=gpd.points_from_xy(zone["utm_east"], zone["utm_north"]), crs=cells.crs)
points = points[points.within(window)]
# Every database image of the window, from the catalog (DuckDB), in grey: cells outside the first groups too.
xmin, ymin, xmax, ymax = window.bounds
with Catalog(CATALOG).connect() as con:
    background = con.sql(
        f"""
        select utm_east, utm_north from images
        where collection = 'database' and utm_east between {xmin} and {xmax} and utm_north between {ymin} and {ymax}
        """
    ).df()

offsets = sorted(cells["group_h"].unique())
fig, axes = plt.subplots(1, len(offsets), figsize=(5 * len(offsets), 5), squeeze=False)
for ax, offset in zip(axes[0], offsets, strict=True):
    panel = cells[cells["group_h"] == offset]
    drawn = panel.drop_duplicates(["class_e", "class_n", "group_rank"])  # a cell once, not once per heading bin
    drawn.plot(
        ax=ax,
        column="group_rank",
        categorical=True,
        legend=True,
        alpha=0.5,
        edgecolor="black",
        cmap="tab10",
        legend_kwds={"title": "group"},
    )
    ax.scatter(background["utm_east"], background["utm_north"], s=1, color="lightgrey", zorder=0)
    points[points["group_h"] == offset].plot(ax=ax, color="black", markersize=2)
    ax.set_xlabel("easting (m)")
    ax.set_ylabel("northing (m)")
    ax.set_title(f"group_h = {offset}: {len(panel)} classes in {len(drawn)} cells")
    ax.ticklabel_format(useOffset=False, style="plain")
fig.suptitle(
    f"{CATALOG.name}: cells of {M} m of the first {PARAMS['groups_num']} groups, " + (f"EPSG:{epsg}" if epsg else "UTM")
)
plt.tight_layout()
plt.show()
