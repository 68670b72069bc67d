"""vgdata: build SF-XL-style visual geo-localization catalogs in DuckDB/Parquet.

The library API mirrors the CLI, one function per command (imported lazily, so
``import vgdata`` stays cheap)::

    vgdata.build_catalog(vgdata.BuildConfig(...))      # build-catalog, add-queries
    vgdata.split_groups(vgdata.GroupsConfig(...))      # split-groups
    vgdata.split_years(...), vgdata.split_test(...), vgdata.split_val(...)
    vgdata.eval_set(...), vgdata.catalog_info(...), vgdata.export_catalog(...)
"""

from __future__ import annotations

import importlib
from typing import Any

from vgdata.errors import UsageError, VgdataError

__version__ = "0.1.0"

_LAZY = {
    "BuildConfig": "vgdata.build",
    "build_catalog": "vgdata.build",
    "GroupsConfig": "vgdata.groups",
    "split_groups": "vgdata.groups",
    "split_years": "vgdata.splits",
    "split_test": "vgdata.splits",
    "split_val": "vgdata.splits",
    "eval_set": "vgdata.evalset",
    "catalog_info": "vgdata.info",
    "export_catalog": "vgdata.export",
    "Catalog": "vgdata.catalog",
}

__all__ = ["UsageError", "VgdataError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vgdata' has no attribute {name!r}")
