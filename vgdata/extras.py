"""The ``catalog`` extra: what vgdata's catalog code needs beyond the base install.

The base install (``pip install vgdata``, plus ``[train]`` for torch) is what vgtrain needs:
numpy, pyarrow, Pillow, typer, rich. Building, splitting and reading catalogs also needs
duckdb, polars, pyproj and shapely: ``pip install 'vgdata[catalog]'``. :mod:`vgdata.catalog`,
which every catalog command goes through, calls :func:`require_catalog_extra` when it is
imported, so a vgdata command run without the extra stops with one line naming it (exit 1)
instead of a ``ModuleNotFoundError`` traceback. This module imports none of those packages.
"""

from __future__ import annotations

import importlib.util

from vgdata.errors import VgdataError

CATALOG_EXTRA = ("duckdb", "polars", "pyproj", "shapely")
"""Import names of the ``catalog`` extra's packages (pyproject.toml ``[project.optional-dependencies]``)."""


def missing_catalog_packages() -> list[str]:
    """The packages of :data:`CATALOG_EXTRA` that cannot be imported here (looked up, not imported)."""
    missing = []
    for name in CATALOG_EXTRA:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked or half-installed package
            found = False
        if not found:
            missing.append(name)
    return missing


def require_catalog_extra() -> None:
    """:class:`VgdataError` (one line, naming the extra) unless every package of the ``catalog`` extra is installed."""
    missing = missing_catalog_packages()
    if missing:
        raise VgdataError(
            f"this command needs vgdata's catalog extra ({', '.join(CATALOG_EXTRA)}), and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed here; install it: pip install 'vgdata[catalog]'"
        )
