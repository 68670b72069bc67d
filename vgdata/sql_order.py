"""The order in which ``catalog.duckdb`` runs the SQL files: derived from what each file defines and uses.

DuckDB binds a view or a macro body when it is created, so a file must run after every file
whose names it uses. :func:`order_sql_files` reads each file (comments and string literals
removed) and finds

* what it **defines**: ``create [or replace] [temp] macro|view|table NAME``;
* what it **uses**: every ``NAME(`` call and every relation after ``from`` / ``join`` that
  another file defines. A relation that no file defines must be a CTE of the same file, else it
  is an undefined dependency and raises :class:`SqlOrderError` naming the file and the name.
  A call that no file defines must be a DuckDB function: checked when ``known`` (the names of
  :func:`duckdb_names`) is given, as the tests do; :func:`vgdata.catalog.sql_files` skips that
  check (listing DuckDB's functions costs ~0.1 s per process, and DuckDB refuses an unknown
  function itself when the file runs);

then sorts the files topologically (Kahn's algorithm; among files that are free to run,
the one with the smallest path first, so the order is stable). A cycle raises
:class:`SqlOrderError` naming the files on it. Names inside ``query_table('x')`` are strings
the caller supplies at run time and are not dependencies.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Iterable
from pathlib import Path

from vgdata.errors import VgdataError

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_DEFINE = re.compile(
    r"\bcreate\s+(?:or\s+replace\s+)?(?:temp\s+|temporary\s+)?(?:macro|view|table)\s+"
    r"(?:if\s+not\s+exists\s+)?\"?(\w+)\"?",
    re.IGNORECASE,
)
_CALL = re.compile(r"(?<![\w.:])(\w+)\s*\(")
_AS_ALIAS = re.compile(r"\bas\s+$", re.IGNORECASE)
_RELATION = re.compile(r"(\w*)\s+(?:from|join)\s+\"?(\w+)\b\"?(?!\s*[(.])", re.IGNORECASE)
_NOT_RELATION_BEFORE = {"distinct", "year", "month", "day", "both", "leading", "trailing"}  # `is distinct from x`
_CTE = re.compile(r"\b(\w+)\s+as\s+(?:not\s+)?(?:materialized\s+)?\(", re.IGNORECASE)


class SqlOrderError(VgdataError):
    """The shipped SQL files cannot be ordered: a cycle, an undefined name or a name defined twice (a bug)."""


def strip_sql(text: str) -> str:
    """``text`` without ``--`` comments and without the contents of string literals (they become ``''``)."""
    return _STRING.sub("''", _COMMENT.sub("", text))


@functools.lru_cache(maxsize=1)
def duckdb_names() -> frozenset[str]:
    """Lower-case names of DuckDB's functions and keywords (what a SQL file may call without defining)."""
    import duckdb

    con = duckdb.connect()
    try:
        functions = con.sql("select distinct function_name from duckdb_functions()").fetchall()
        keywords = con.sql("select keyword_name from duckdb_keywords()").fetchall()
    finally:
        con.close()
    return frozenset(name.lower() for (name,) in [*functions, *keywords])


def definitions(text: str) -> set[str]:
    """Lower-case names a SQL text creates (macros, views, tables)."""
    return {m.lower() for m in _DEFINE.findall(strip_sql(text))}


def dependencies(text: str) -> tuple[set[str], set[str]]:
    """``(calls, relations)``: lower-case names called as ``NAME(`` and read after ``from``/``join``.

    Names the text defines itself, its CTEs and ``as NAME (col, ...)`` aliases (written with a space
    before the parenthesis, which a call never has in these files) are left out.
    """
    code = strip_sql(text)
    own = {m.lower() for m in _DEFINE.findall(code)}
    ctes = {m.lower() for m in _CTE.findall(code)}
    calls = set()
    for m in _CALL.finditer(code):
        if _AS_ALIAS.search(code[max(0, m.start() - 12) : m.start()]) and code[m.end(1)].isspace():
            continue  # `as e (exponent)`: a table alias with column names (a call has no space before `(`)
        calls.add(m.group(1).lower())
    relations = {r.lower() for before, r in _RELATION.findall(code) if before.lower() not in _NOT_RELATION_BEFORE}
    relations -= ctes
    return calls - own, relations - own


def order_sql_files(
    files: Iterable[Path], *, root: Path | None = None, known: frozenset[str] | None = None
) -> list[Path]:
    """``files`` in an order where each runs after every file whose names it uses (module docstring).

    ``root`` only shortens the paths in error messages and sets the tie-break key (relative path).
    ``known``: lower-case names a file may call or read without defining them (DuckDB's functions and
    keywords, :func:`duckdb_names`); None: calls are not checked (relations always are).
    Raises :class:`SqlOrderError` on a name defined by two files, an undefined dependency or a cycle.
    """
    files = sorted(Path(f) for f in files)

    def label(p: Path) -> str:
        return str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p)

    texts = {p: p.read_text() for p in files}
    owner: dict[str, Path] = {}
    for p in files:
        for name in sorted(definitions(texts[p])):
            if name in owner and owner[name] != p:
                raise SqlOrderError(f"{name} is defined by both {label(owner[name])} and {label(p)}; keep one")
            owner[name] = p
    builtin = known if known is not None else frozenset()
    needs: dict[Path, set[Path]] = {}
    for p in files:
        calls, relations = dependencies(texts[p])
        deps = set()
        for name in sorted(calls):
            if name in owner:
                deps.add(owner[name])
            elif known is not None and name not in builtin:
                raise SqlOrderError(f"{label(p)} calls {name}(), which no SQL file defines and DuckDB does not know")
        for name in sorted(relations):
            if name in owner:
                deps.add(owner[name])
            elif name not in builtin:
                raise SqlOrderError(f"{label(p)} reads {name}, which no SQL file defines and is no CTE of that file")
        deps.discard(p)
        needs[p] = deps

    users: dict[Path, set[Path]] = {p: set() for p in files}
    for p, deps in needs.items():
        for d in deps:
            users[d].add(p)
    waiting = {p: len(deps) for p, deps in needs.items()}
    ready = [(label(p), p) for p, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[Path] = []
    while ready:
        _, p = heapq.heappop(ready)
        order.append(p)
        for u in users[p]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (label(u), u))
    if len(order) < len(files):
        raise SqlOrderError(
            f"the SQL files depend on each other in a cycle: {' -> '.join(_cycle(needs, order, label))}"
        )
    return order


def _cycle(needs: dict[Path, set[Path]], done: list[Path], label) -> list[str]:
    """One cycle among the files left unordered, as labels ``a -> b -> a``."""
    left = {p: {d for d in deps if d not in done} for p, deps in needs.items() if p not in done}
    p = min(left, key=label)
    path: list[Path] = []
    while p not in path:
        path.append(p)
        p = min(left[p], key=label)
    cycle = path[path.index(p) :] + [p]
    return [label(x) for x in cycle]
