"""Split views: render the ``"splits"`` of build.json into ``create view`` statements.

The one place SQL text is built from split definitions (views cannot take prepared
parameters). Both :mod:`vgdata.catalog` (which rebuilds ``catalog.duckdb``) and
:mod:`vgdata.splits` (which defines splits) use it; it imports neither, so the two do not
import each other. A definition is ``{"kind", "params", "views"}``; each kind names one table
macro of ``vgdata/sql/splits/`` and the arguments it takes (:data:`KINDS`). Values are
checked before they are rendered (:func:`literal`): names match ``^[A-Za-z0-9_-]+$``, ints
are ints, floats are finite; anything else raises :class:`~vgdata.errors.UsageError`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from vgdata.errors import UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
"""Split, view and collection names accepted in a split (they become quoted SQL identifiers)."""


# ---------- the three kinds: macro, parameters (build.json name -> macro argument, type), views
KINDS: dict[str, dict[str, Any]] = {
    "years": {
        "macro": "year_split",
        "params": {"queries_from": ("queries_from", "int"), "database_before": ("database_before", "int?")},
        "views": {"_database": "database", "_queries": "queries"},
    },
    "test": {
        "macro": "test_database",
        "params": {"year": ("year", "int")},
        "views": {"": None},
    },
    "val": {
        "macro": "val_split",
        "params": {
            "size": ("size", "int"),
            "seed": ("seed", "int"),
            "threshold": ("threshold", "float"),
            "grid_m": ("grid_m", "float"),
        },
        "views": {"_database": "database", "_queries": "queries"},
    },
}


def split_views(name: str, kind: str) -> list[str]:
    """The view names a split of ``kind`` called ``name`` creates."""
    if kind not in KINDS:
        raise UsageError(f"unknown split kind {kind!r}; use one of: {', '.join(KINDS)}")
    return [name + suffix for suffix in KINDS[kind]["views"]]


def split_view_statements(splits: dict[str, Any]) -> list[str]:
    """``create or replace view`` statements for the ``"splits"`` of build.json, in name order.

    Each is ``create or replace view "<view>" as select * from <macro>(arg := literal, ...)``.
    Values are checked before they are rendered: names match ``^[A-Za-z0-9_-]+$``, ints are
    ints, floats are finite; anything else raises :class:`UsageError`.
    """
    statements = []
    for name in sorted(splits):
        definition = splits[name]
        if not isinstance(definition, dict):
            raise UsageError(f"build.json splits.{name} is not an object; define the split again")
        kind = definition.get("kind")
        views = split_views(check_name(name, "split name"), kind)
        if list(definition.get("views", views)) != views:
            raise UsageError(f"build.json splits.{name}.views should be {views}; define the split again")
        for view in views:
            statements.append(
                f'create or replace view "{view}" as select * from {_macro_call(name, kind, definition, view)}'
            )
    return statements


def _macro_call(name: str, kind: str, definition: dict[str, Any], view: str) -> str:
    """``<macro>(role := 'queries', ..., coll := 'database')`` for one view of a split."""
    spec = KINDS[kind]
    params = definition.get("params")
    if not isinstance(params, dict):
        raise UsageError(f"build.json splits.{name}.params is not an object; define the split again")
    args = []
    role = spec["views"][view[len(name) :]]
    if role is not None:
        args.append(f"role := {literal(role, 'name', 'role')}")
    for key, (arg, typ) in spec["params"].items():
        if key in params:
            args.append(f"{arg} := {literal(params[key], typ, f'splits.{name}.params.{key}')}")
        elif not typ.endswith("?"):
            raise UsageError(f"build.json splits.{name}.params lacks {key!r}; define the split again")
    unknown = set(params) - set(spec["params"]) - {"collection"}
    if unknown:
        raise UsageError(f"build.json splits.{name}.params has unknown keys {sorted(unknown)}; define the split again")
    args.append(f"coll := {literal(params.get('collection', 'database'), 'name', f'splits.{name}.params.collection')}")
    return f"{spec['macro']}({', '.join(args)})"


def literal(value: Any, typ: str, what: str) -> str:
    """A SQL literal for a checked value: ``int``, ``int?`` (int or null), ``float``, ``name``."""
    if typ == "int?" and value is None:
        return "null"
    if typ in ("int", "int?"):
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise UsageError(f"{what} must be a whole number (64-bit), got {value!r}")
        return str(int(value))
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"{what} must be a finite number, got {value!r}")
        return f"cast('{float(value)!r}' as double)"
    if typ == "name":
        return f"'{check_name(value, what)}'"
    raise AssertionError(typ)


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a name :data:`NAME_RE` accepts (it is then safe as a quoted SQL identifier or literal)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise UsageError(f"{what} must be letters, digits, '_' or '-' (e.g. sfxl_star), got {value!r}")
    return value
