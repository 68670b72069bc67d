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
# # Read an eval run's predictions
#
# `vgtrain eval` writes `recalls.json`, `predictions.parquet` (each query's top-K database images, best first)
# and `report.html` into its output folder. This notebook reads the predictions and the eval manifest with
# pyarrow and lists the worst queries with their top-5: where the first positive is, and how far (UTM metres)
# each prediction is from the query.
#
# Set `VGTRAIN_RUN` to the eval output folder. Without it, the notebook makes a tiny run itself on the catalog
# `VGDATA_CATALOG` (default `catalogs/demo`): an eval set `database` vs `queries_v2` (writes
# `manifests/eval_notebook_v2.parquet` into the catalog) and an untrained ResNet18 (`--weights random`) whose
# output goes to a new folder under the system's temp dir (`TMPDIR`), so the numbers show the pipeline, not
# a model.

# %%
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def find_catalog(name: str) -> Path:
    """The catalog folder: as given, else relative to the repository root (when run from notebooks/)."""
    path = Path(name).expanduser()
    if path.is_absolute() or (path / "build.json").is_file():
        return path
    return Path.cwd().parent / path if (Path.cwd().parent / path / "build.json").is_file() else path


TOP = 5  # predictions shown per query
WORST = 10  # queries listed
RUN = os.environ.get("VGTRAIN_RUN")

if RUN is None:
    from vgdata.evalset import eval_set
    from vgtrain.eval import EvalConfig, run_eval

    catalog = find_catalog(os.environ.get("VGDATA_CATALOG", "catalogs/demo"))
    manifest = eval_set(catalog, name="notebook_v2", database="database", queries="queries_v2").manifest
    RUN = tempfile.mkdtemp(prefix="vgtrain-notebook-eval-")
    config = EvalConfig(
        weights="random",
        backbone="ResNet18",
        fc_output_dim=64,
        eval_set=str(manifest),
        out=RUN,
        image_size=64,
        num_workers=0,
        device="cpu",
    )
    run_eval(config)
RUN = Path(RUN)
print("run", RUN)

# %% [markdown]
# ## The run: protocol and Recall@N
# `recalls.json` names the eval manifest it evaluated (`protocol.eval_set`).

# %%
recalls = json.loads((RUN / "recalls.json").read_text())
protocol = recalls["protocol"]
print(
    f"{protocol['n_queries']} queries, {protocol['n_database']} database images, positives within "
    f"{protocol['threshold_m']} m; model {protocol['model'].get('weights', protocol['model'].get('backbone'))}"
)
pd.DataFrame(recalls["recalls"]).rename_axis("N")

# %% [markdown]
# ## Predictions joined with the manifest
# `predictions.parquet` has one row per (query, rank): `query_idx`, `rank`, `database_idx`, `distance`
# (descriptor distance) and `is_positive`. The manifest gives each image's path and UTM position: database
# rows first, then query rows, each in `idx` order.

# %%
eval_manifest = pq.read_table(protocol["eval_set"]).to_pandas()
database = eval_manifest[eval_manifest["role"] == "database"].set_index("idx")
queries = eval_manifest[eval_manifest["role"] == "query"].set_index("idx")
predictions = pq.read_table(RUN / "predictions.parquet").to_pandas()

top = predictions[predictions["rank"] < TOP].merge(
    database[["path", "utm_east", "utm_north"]], left_on="database_idx", right_index=True
)
top = top.merge(queries[["path", "utm_east", "utm_north"]].add_prefix("query_"), left_on="query_idx", right_index=True)
top["metres"] = np.hypot(top["utm_east"] - top["query_utm_east"], top["utm_north"] - top["query_utm_north"])
top = top.sort_values(["query_idx", "rank"])
top[["query_idx", "rank", "database_idx", "is_positive", "distance", "metres", "path"]].head(TOP)

# %% [markdown]
# ## The worst queries
# Ranked by the rank of their first positive in the saved predictions (none at all first), then by the distance
# of their top-1 prediction. A query without any positive in the database can never be found.

# %%
first_positive = predictions[predictions["is_positive"]].groupby("query_idx")["rank"].min()
summary = queries[["path"]].assign(
    positives=queries["positives"].map(len),
    first_positive_rank=first_positive.reindex(queries.index),
    top1_metres=top[top["rank"] == 0].set_index("query_idx")["metres"].reindex(queries.index),
)
worst = summary.sort_values(["first_positive_rank", "top1_metres"], ascending=[False, False], na_position="first")
worst = worst.head(WORST)
found_in_top = int((summary["first_positive_rank"] < TOP).sum())
print(f"{found_in_top} of {len(summary)} queries have a positive in their top {TOP}")
worst

# %%
for query_idx, row in worst.iterrows():
    print(f"query {query_idx} {row['path']}  ({row['positives']} positives)")
    for _, p in top[top["query_idx"] == query_idx].iterrows():
        mark = "+" if p["is_positive"] else "-"
        print(f"  {p['rank'] + 1}. {mark} {p['metres']:7.1f} m  {p['path']}")
