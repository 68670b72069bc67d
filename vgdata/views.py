"""Split views: render the ``"splits"`` of build.json into ``create view`` statements.

The one place SQL text is built from split definitions (views cannot take prepared
parameters). Both :mod:`vgdata.catalog` (which rebuilds ``catalog.duckdb`` and reads
build.json) and :mod:`vgdata.splits` (which defines splits) use it; it imports neither, so the
two do not import each other.

A stored split is generic: one table macro of ``vgdata/sql/splits/`` and its arguments::

    "sfxl_star": {
      "macro": "year_split",
      "args": {"coll": "database", "database_before": null, "queries_from": 2011},
      "views": {"sfxl_star_database": {"role": "database"}, "sfxl_star_queries": {"role": "queries"}}
    }

Each key of ``"views"`` is a view name; its value holds the arguments of that view only
(``{}`` when there are none). A view is ``create or replace view "<view>" as select * from
<macro>(<arg> := <literal>, ...)`` with the view's and the split's arguments, in the order the
macro declares its parameters; an argument left out takes the macro's default.

Before anything is rendered (:func:`split_view_statements`):

* the macro must be a table macro that a shipped ``vgdata/sql/splits/*.sql`` file defines
  (:func:`split_macros` reads them: an allowlist derived from the files, not a hand list);
* every argument must be a parameter of that macro, and its value a checked literal
  (:func:`literal`): names match ``^[A-Za-z0-9_-]+$``, ints are 64-bit ints, floats are
  finite; a parameter whose SQL default is a string takes names only, an integer default ints
  only, a decimal default numbers only, a ``null`` default any of these or ``null``;
* split and view names match the name pattern and no view name is defined twice.

Anything else raises :class:`~vgdata.errors.UsageError`. build.json files written by the
previous format (``{"kind", "params", "views": [...]}``) are converted on load
(:func:`stored_splits`, called by :meth:`vgdata.catalog.Catalog.load_build`).
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

from vgdata.errors import UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
"""Split, view and collection names accepted in a split (they become quoted SQL identifiers)."""

SPLITS_SQL_DIR = Path(__file__).parent / "sql" / "splits"
"""The folder whose table macros a split may use."""

_MACRO_RE = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.IGNORECASE)
_PARAM_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*(.+?))?\s*$", re.DOTALL)
_TABLE_RE = re.compile(r"\s*as\s+table\b", re.IGNORECASE)


# ---------- the allowlist: table macros of vgdata/sql/splits/ and their parameters
@functools.cache
def split_macros(sql_dir: Path = SPLITS_SQL_DIR) -> dict[str, dict[str, str]]:
    """Table macros defined in ``sql_dir/*.sql``: name -> {parameter: type of its default}.

    The type is ``name`` (a string default), ``int``, ``float`` (a decimal default) or ``any``
    (``null`` or another expression). Only macros whose parameters all have defaults are
    listed, since views call them with named arguments only.
    """
    macros: dict[str, dict[str, str]] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        text = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
        for match in _MACRO_RE.finditer(text):
            inner, end = _parenthesised(text, match.end())
            if inner is None or not _TABLE_RE.match(text, end):
                continue  # a scalar macro, or one this reader cannot parse: not usable by a split
            params = _parameters(inner)
            if params is not None:
                macros[match.group(1)] = params
    return macros


def _parenthesised(text: str, start: int) -> tuple[str | None, int]:
    """The text up to the parenthesis closing the one before ``start`` (quotes respected), and the index after it."""
    depth, quoted = 1, False
    for i in range(start, len(text)):
        c = text[i]
        if c == "'":
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
            if depth == 0:
                return text[start:i], i + 1
    return None, len(text)


def _parameters(inner: str) -> dict[str, str] | None:
    """``{parameter: type}`` of a macro's parameter list; None if one has no default."""
    parts, depth, quoted, current = [], 0, False, []
    for c in inner:
        if c == "'":
            quoted = not quoted
        elif not quoted and c in "()":
            depth += 1 if c == "(" else -1
        if c == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    if "".join(current).strip():
        parts.append("".join(current))
    params: dict[str, str] = {}
    for part in parts:
        m = _PARAM_RE.match(part)
        if m is None or m.group(2) is None:
            return None
        params[m.group(1)] = _default_type(m.group(2))
    return params


def _default_type(default: str) -> str:
    if re.fullmatch(r"'(?:[^']|'')*'", default):
        return "name"
    if re.fullmatch(r"-?\d+", default):
        return "int"
    if re.fullmatch(r"-?\d+\.\d*(?:[eE][-+]?\d+)?", default):
        return "float"
    return "any"


# ---------- rendering
def split_view_statements(splits: dict[str, Any]) -> list[str]:
    """``create or replace view`` statements for the ``"splits"`` of build.json, in name order.

    Each is ``create or replace view "<view>" as select * from <macro>(arg := literal, ...)``;
    see the module docstring for what is checked. Old-form entries are converted first.
    """
    statements = []
    seen: dict[str, str] = {}
    splits = stored_splits(splits)
    for name in sorted(splits):
        check_name(name, "split name")
        definition = splits[name]
        macro, args, views = _checked_definition(name, definition)
        for view in sorted(views):
            if view.lower() in seen:
                raise UsageError(
                    f"build.json: view {view!r} of split {name!r} is also a view of split {seen[view.lower()]!r}"
                )
            seen[view.lower()] = name
            call = _macro_call(macro, {**args, **views[view]}, f"splits.{name}.views.{view}")
            statements.append(f'create or replace view "{view}" as select * from {call}')
    return statements


def _checked_definition(name: str, definition: Any) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """(macro, args, views) of one stored split, each checked for shape; a one-line error otherwise."""
    where = f"build.json splits.{name}"
    if not isinstance(definition, dict):
        raise UsageError(f"{where} is not an object; define the split again")
    unknown = set(definition) - {"macro", "args", "views"}
    if unknown:
        raise UsageError(f"{where} has unknown keys {sorted(unknown)}; define the split again")
    macro = definition.get("macro")
    macros = split_macros()
    if macro not in macros:
        raise UsageError(
            f"{where}.macro is {macro!r}, not a table macro of vgdata/sql/splits/ ({', '.join(sorted(macros))}); "
            "define the split again"
        )
    args = definition.get("args", {})
    views = definition.get("views")
    if not isinstance(args, dict):
        raise UsageError(f"{where}.args is not an object; define the split again")
    if not isinstance(views, dict) or not views or not all(isinstance(v, dict) for v in views.values()):
        raise UsageError(f"{where}.views must map view names to their arguments; define the split again")
    for view, view_args in views.items():
        check_name(view, f"{where}.views name")
        both = set(view_args) & set(args)
        if both:
            raise UsageError(f"{where}.views.{view} repeats arguments {sorted(both)} of args; define the split again")
    return macro, args, views


def _macro_call(macro: str, args: dict[str, Any], what: str) -> str:
    """``<macro>(a := literal, ...)`` with the arguments in the macro's parameter order."""
    params = split_macros()[macro]
    unknown = set(args) - set(params)
    if unknown:
        raise UsageError(
            f"build.json {what}: {macro} has no parameters {sorted(unknown)} (it takes {', '.join(params)}); "
            "define the split again"
        )
    rendered = [f"{p} := {literal(args[p], params[p], f'{what}.{p}')}" for p in params if p in args]
    return f"{macro}({', '.join(rendered)})"


def literal(value: Any, typ: str, what: str) -> str:
    """A SQL literal for a checked value.

    ``typ``: ``int``, ``int?`` (int or null), ``float`` (finite int or float, rendered as a
    double), ``name`` (:data:`NAME_RE`), or ``any`` (null, or by the value's Python type:
    str as ``name``, int as ``int``, float as ``float``).
    """
    if typ == "any":
        if value is None:
            return "null"
        if isinstance(value, str):
            typ = "name"
        elif isinstance(value, int) and not isinstance(value, bool):
            typ = "int"
        elif isinstance(value, float):
            typ = "float"
        else:
            raise UsageError(f"{what} must be a name, a whole number, a finite number or null, got {value!r}")
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


# ---------- build.json of the previous format: {"kind", "params", "views": [...]}
_OLD_KINDS: dict[str, tuple[str, dict[str, str], dict[str, str | None]]] = {
    # kind: (macro, {old param: macro argument}, {view suffix: role or None})
    "years": (
        "year_split",
        {"queries_from": "queries_from", "database_before": "database_before", "collection": "coll"},
        {"_database": "database", "_queries": "queries"},
    ),
    "test": ("test_database", {"year": "year", "collection": "coll"}, {"": None}),
    "val": (
        "val_split",
        {"size": "size", "seed": "seed", "threshold": "threshold", "grid_m": "grid_m", "collection": "coll"},
        {"_database": "database", "_queries": "queries"},
    ),
}


def stored_splits(splits: Any) -> Any:
    """The ``"splits"`` of build.json with every previous-format entry converted to ``{macro, args, views}``.

    An old entry ``{"kind", "params", "views"}`` becomes the macro of its kind, its params
    renamed to the macro's arguments (``collection`` -> ``coll``; ``collection`` defaulted to
    ``database`` as the old reader did) and one view per suffix of the kind. Entries that are
    not old-form, or not convertible, are returned as they are (rendering reports them).
    """
    if not isinstance(splits, dict):
        return splits
    return {name: _from_old(name, d) for name, d in splits.items()}


def _from_old(name: str, definition: Any) -> Any:
    if not isinstance(definition, dict) or "macro" in definition or definition.get("kind") not in _OLD_KINDS:
        return definition
    params = definition.get("params")
    if not isinstance(params, dict):
        return definition
    macro, renames, suffixes = _OLD_KINDS[definition["kind"]]
    args = {renames.get(key, key): value for key, value in params.items()}
    args.setdefault("coll", "database")
    views = {name + suffix: ({} if role is None else {"role": role}) for suffix, role in suffixes.items()}
    return {"macro": macro, "args": args, "views": views}


def stale_split(build: dict[str, Any], name: str) -> str | None:
    """Why split ``name`` of ``build`` (build.json) no longer describes its collection, or None.

    An area split (``vgdata split-area``) stores the image_ids drawn from collection ``coll`` when
    its fingerprint was ``fingerprint``; after a rebuild of that collection the stored membership is
    stale (its view refuses to answer). The other splits are macros over the live tables, never stale.
    """
    split = build.get("splits", {}).get(name)
    if not isinstance(split, dict) or split.get("macro") != "area_split":
        return None
    args = split.get("args", {})
    coll = args.get("coll", "database")
    if build.get("collections", {}).get(coll, {}).get("fingerprint") != args.get("fingerprint"):
        return (
            f"area split {name!r} is stale: collection {coll!r} changed since it was drawn; run vgdata split-area again"
        )
    return None
