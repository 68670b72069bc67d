"""``vgdata check``: run the SQL audits of ``vgdata/sql/tests/`` on a real catalog.

An audit is one ``.sql`` file that returns offending rows (none when all is well). Its header says
what it returns and what it needs::

    -- returns: images that appear more than once in the groups manifest (must be none)
    -- needs: groups

``needs`` names the relations the audit reads, which the runner binds (as temp views or tables,
which shadow catalog views of the same name) before it runs the file:

===========  ===============================================================  ======================
needs        relations                                                        subjects in a catalog
===========  ===============================================================  ======================
images       ``images`` (the catalog view, or one collection's parts)          the catalog
groups       ``kept_classes`` (the rows of ``cosplace_kept_classes()``         each groups manifest
             with the manifest's parameters, of the groups it ships:
             ``group_rank < groups_num``) and ``groups_manifest`` (its rows)
eval_set     ``eval_rows``: the eval manifest's rows, and                      each eval manifest
             ``eval_threshold_positives``: one row per query and radius of
             ``thresholds`` (``threshold``, ``query_idx``, ``query_image_id``,
             ``positives``: that radius's ``positives_<t>m`` list)
val_split    ``split_database``, ``split_queries`` (the rows drawn)            each val split
year_split   ``split_database``, ``split_queries`` (the views)                 each year split
===========  ===============================================================  ======================

Parameters are DuckDB named parameters (``$n``, ``$threshold``), bound from the subject: a groups
manifest's ``vgdata.params`` (``$m``, ``$alpha``, ``$n``, ``$l``, ``$min_images_per_class``,
``$groups_num``), an eval manifest's (``$threshold``, the primary radius; the other radii come as rows of
``eval_threshold_positives``, from its ``thresholds``: a radius whose column the file lacks is the
finding ``threshold_columns``). So the groups audits run on exactly what
shipped: the class table the manifest's own parameters give, and the manifest file itself.
A manifest made from another state of the catalog (its fingerprint differs) or in an older
format is skipped with that reason; so is every audit whose subject the catalog lacks.

The commands that write run the **cheap** audits at their end, on what they have in hand, never
re-reading the whole catalog or recomputing classes, positives or a val draw; a failure there is a
bug and raises :class:`AuditFailed` (a :class:`~vgdata.errors.VgdataError`) naming the audit:

* ``build-catalog`` / ``add-queries``: the ``images`` audits, over the parts of the collection just
  built (:func:`audit_collection`);
* ``split-groups``: the ``groups`` audits, over its materialised class table and the manifest it
  wrote or reused (:func:`audit_groups`);
* ``eval-set``: the ``eval_set`` audits, over the rows it materialised (:func:`audit_eval_rows`);
* ``split-val`` / ``split-years``: the split's audit, over the drawn rows (val) or the two views
  (years: the year and pano columns only) (:func:`audit_split`).

``vgdata check`` runs every audit on every subject (a full pass over the catalog per audit).
A places manifest (``vgdata split-places``, ``vgdata.kind`` = ``places``) gets the places audits of
:data:`PLACES_AUDIT_DIR` (:func:`audit_places`) instead of CosPlace's class-of-position ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vgdata.catalog import MANIFEST_FORMAT, SQL_DIR, Catalog, _sql_literal
from vgdata.errors import VgdataError
from vgdata.sql_order import strip_sql

AUDIT_DIR = SQL_DIR / "tests"
PLACES_AUDIT_DIR = SQL_DIR / "places_audits"
"""The audits of places manifests (``-- needs: places``: ``places_rows``, the manifest's rows; :func:`audit_places`)."""
NEEDS = ("images", "groups", "eval_set", "val_split", "year_split")
SAMPLE_ROWS = 5
"""Offending rows kept per audit and subject (all are counted)."""

_HEADER = re.compile(r"^--\s*(returns|needs):\s*(.*)$")
_PARAM = re.compile(r"\$(\w+)")
_THRESHOLD_COLUMN = re.compile(r"positives_(\d+(?:_\d+)?)m")


class AuditFailed(VgdataError):
    """A cheap audit found rows at the end of a command that writes: a bug in vgdata, not a user error."""


@dataclass(frozen=True)
class Audit:
    """One file of ``vgdata/sql/tests/``."""

    name: str
    path: Path
    needs: str
    returns: str
    sql: str
    params: frozenset[str]
    """The ``$name`` parameters the SQL uses."""


@dataclass
class AuditResult:
    """One audit run on one subject (a manifest, a split, the catalog)."""

    audit: str
    subject: str
    status: str
    """``ok`` (no rows), ``failed`` (rows found) or ``skipped`` (``reason`` says why)."""
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    sample: list[list[Any]] = field(default_factory=list)
    reason: str = ""


@dataclass
class CheckReport:
    """What ``vgdata check`` found."""

    catalog: str
    results: list[AuditResult]

    @property
    def ok(self) -> bool:
        return not any(r.status == "failed" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"catalog": self.catalog, "ok": self.ok, "results": [asdict(r) for r in self.results]}


def load_audits(folder: Path = AUDIT_DIR, known: tuple[str, ...] = NEEDS) -> list[Audit]:
    """Every ``*.sql`` audit of ``folder``, by name; a file without ``-- returns:`` or a ``known`` ``-- needs:`` is a bug."""
    out = []
    for path in sorted(folder.glob("*.sql")):
        text = path.read_text()
        header: dict[str, str] = {}
        for line in text.splitlines():
            m = _HEADER.match(line.strip())
            if m and m.group(1) not in header:
                header[m.group(1)] = m.group(2).strip()
        if "returns" not in header:
            raise VgdataError(f"audit {path.name} has no '-- returns:' header line")
        needs = header.get("needs", "")
        if needs not in known:
            raise VgdataError(f"audit {path.name}: '-- needs: {needs}' is not one of {', '.join(known)}")
        params = frozenset(_PARAM.findall(strip_sql(text)))
        out.append(Audit(path.stem, path, needs, header["returns"], text, params))
    return out


def run_audit(con: Any, audit: Audit, params: dict[str, Any], subject: str) -> AuditResult:
    """Run ``audit`` on ``con`` (its relations bound) with the parameters it uses; count and sample its rows."""
    missing = sorted(audit.params - set(params))
    if missing:
        raise VgdataError(f"audit {audit.name} needs parameter(s) {', '.join(missing)} that {subject} lacks")
    bound = {k: params[k] for k in sorted(audit.params)}
    cur = con.execute(audit.sql, bound) if bound else con.execute(audit.sql)
    columns = [d[0] for d in cur.description]
    sample = [list(row) for row in cur.fetchmany(SAMPLE_ROWS)]
    n = len(sample)
    while chunk := cur.fetchmany(100_000):
        n += len(chunk)
    return AuditResult(audit.name, subject, "failed" if n else "ok", n, columns, sample)


def _bind(con: Any, name: str, sql: str, *, table: bool = False, params: dict[str, Any] | None = None) -> None:
    """Make ``name`` (a fixed relation name of the audits) a temp view, or a temp table, of ``sql``."""
    existing = con.execute(
        "select 'view' from duckdb_views() where temporary and view_name = $name "
        "union all select 'table' from duckdb_tables() where temporary and table_name = $name",
        {"name": name},
    ).fetchall()
    for (kind,) in existing:
        con.execute(f"drop {kind} temp.{name}")
    statement = f"create temp {'table' if table else 'view'} {name} as {sql}"
    con.execute(statement, params) if params else con.execute(statement)


def _raise_failures(results: list[AuditResult]) -> None:
    failed = [r for r in results if r.status == "failed"]
    if failed:
        r = failed[0]
        example = dict(zip(r.columns, r.sample[0], strict=True)) if r.sample else {}
        raise AuditFailed(
            f"audit {r.audit} found {r.rows} offending row(s) in {r.subject}, e.g. {example}"
            + (f" (and {len(failed) - 1} more failing audit(s))" if len(failed) > 1 else "")
            + "; this is a bug in vgdata: please report it with this line"
        )


def _run_all(con: Any, needs: str, params: dict[str, Any], subject: str) -> list[AuditResult]:
    return [run_audit(con, a, params, subject) for a in load_audits() if a.needs == needs]


# ---------- the cheap audits, at the end of the commands that write


def audit_collection(cat: Catalog, collection: str) -> list[AuditResult]:
    """The ``images`` audits over the parts of one collection (what build-catalog/add-queries just wrote)."""
    import duckdb

    from vgdata.catalog import sql_files

    parts = [cat.table_dir("images") / "_empty.parquet", *cat.parts("images", collection)]
    files = ", ".join(f"'{_sql_literal(str(p))}'" for p in parts if p.is_file())
    con = duckdb.connect()
    try:
        con.execute(f"set file_search_path = '{_sql_literal(str(cat.root.resolve()))}'")
        for sql in sql_files():
            con.execute(sql.read_text())
        _bind(con, "images", f"select * from read_parquet([{files}], union_by_name = true)")
        results = _run_all(con, "images", {}, f"collection {collection!r}")
    finally:
        con.close()
    _raise_failures(results)
    return results


def subset_args(params: dict[str, Any]) -> dict[str, Any]:
    """The class macros' subset arguments (``fraction``, ``seed``, ``years``; :data:`vgdata.groups.FRACTION_RULE`)
    from a groups manifest's ``vgdata.params``: only those it records, so a manifest of the whole collection runs
    the macros' constant defaults (no hash computed) and the parameters it always had."""
    out: dict[str, Any] = {}
    if "panorama_fraction" in params:
        out["fraction"] = float(params["panorama_fraction"])
        out["seed"] = int(params.get("fraction_seed", 0))
    if params.get("years") is not None:
        out["years"] = [int(y) for y in params["years"]]
    return out


def groups_params(params: dict[str, Any]) -> dict[str, Any]:
    """The audits' parameters from a groups manifest's ``vgdata.params`` (GroupsConfig.params())."""
    return {
        "m": float(params["M"]),
        "alpha": float(params["alpha"]),
        "n": int(params["N"]),
        "l": int(params["L"]),
        "min_images_per_class": int(params["min_images_per_class"]),
        "groups_num": int(params["groups_num"]),
        "coll": str(params["collection"]),
        **subset_args(params),
    }


def audit_groups(con: Any, kept_table: str, manifest: Path, params: dict[str, Any]) -> list[AuditResult]:
    """The ``groups`` audits over a materialised class table (temp table ``kept_table``) and a written manifest."""
    _bind(con, "kept_classes", f'select * from "{kept_table}" where group_rank < {int(params["groups_num"])}')
    _bind(con, "groups_manifest", f"select * from read_parquet('{_sql_literal(str(manifest))}')")
    results = _run_all(con, "groups", groups_params(params), manifest.name)
    _raise_failures(results)
    return results


def audit_places(con: Any, manifest: Path, params: dict[str, Any], *, strict: bool = True) -> list[AuditResult]:
    """The ``places`` audits (:data:`PLACES_AUDIT_DIR`) over a places manifest (``vgdata split-places``), bound as
    ``places_rows``, with its ``vgdata.params`` (``$coll``, ``$min_images``); ``strict``: rows found raise AuditFailed."""
    _bind(con, "places_rows", f"select * from read_parquet('{_sql_literal(str(manifest))}')")
    bound = {"coll": str(params["collection"]), "min_images": int(params["min_images"])}
    results = [run_audit(con, a, bound, manifest.name) for a in load_audits(PLACES_AUDIT_DIR, ("places",))]
    if strict:
        _raise_failures(results)
    return results


def audit_eval_rows(
    con: Any, rows_table: str, threshold: float, subject: str, *, thresholds: dict[float, str] | None = None
) -> list[AuditResult]:
    """The ``eval_set`` audits over materialised eval rows (temp table ``rows_table``, eval manifest layout).

    ``thresholds``: radius (metres) -> its ``positives_<t>m`` column of ``rows_table`` (None: no such columns).
    """
    _bind(con, "eval_rows", f'select * from "{rows_table}"')
    _bind(con, "eval_threshold_positives", eval_threshold_sql(thresholds or {}))
    results = _run_all(con, "eval_set", {"threshold": float(threshold)}, subject)
    _raise_failures(results)
    return results


def eval_threshold_sql(thresholds: dict[float, str]) -> str:
    """``eval_threshold_positives`` over ``eval_rows``: (threshold, query_idx, query_image_id, positives) per query
    and radius, from each radius's column (``thresholds``: radius in metres -> column name)."""
    parts = [
        f"select {float(t)!r}::double as threshold, idx as query_idx, image_id as query_image_id, "
        f"\"{column}\"::integer[] as positives from eval_rows where role = 'query'"
        for t, column in sorted(thresholds.items())
    ]
    empty = "select null::double as threshold, null::integer as query_idx, null::bigint as query_image_id, "
    return " union all ".join(parts) or empty + "null::integer[] as positives where false"


def audit_split(con: Any, name: str, macro: str, database: str, queries: str) -> list[AuditResult]:
    """The audits of a split made by ``macro`` (``val_split``, ``year_split``) over relations ``database``, ``queries``."""
    needs = macro if macro in ("val_split", "year_split") else None
    if needs is None:
        return []
    _bind(con, "split_database", f'select * from "{database}"')
    _bind(con, "split_queries", f'select * from "{queries}"')
    results = _run_all(con, needs, {}, f"split {name!r}")
    _raise_failures(results)
    return results


# ---------- vgdata check


def check_catalog(catalog: str | Path) -> CheckReport:
    """Every audit on every subject of ``catalog`` (module docstring); nothing is written."""
    from vgdata.views import check_name, stale_split

    cat = Catalog(catalog)
    build = cat.require()
    audits = load_audits()
    by_needs = {n: [a for a in audits if a.needs == n] for n in NEEDS}
    results: list[AuditResult] = []
    con = cat.connect()
    try:
        results += [run_audit(con, a, {}, "catalog") for a in by_needs["images"]]
        subjects = dict.fromkeys(NEEDS, 0)
        for path, meta, reason in _manifests(cat, build):
            kind = meta.get("vgdata.kind")
            if kind == "unreadable":  # a finding of its own: the file vgtrain would read is broken
                results.append(AuditResult("manifest_readable", path.name, "failed", reason=reason))
                continue
            if kind == "places":  # a dataset's places as classes: their own audits, not CosPlace's
                if reason:
                    names = [a.name for a in load_audits(PLACES_AUDIT_DIR, ("places",))]
                    results += [AuditResult(n, path.name, "skipped", reason=reason) for n in names]
                else:
                    results += audit_places(con, path, json.loads(meta["vgdata.params"]), strict=False)
                continue
            needs = {"groups": "groups", "eval": "eval_set"}.get(kind)
            if needs is None:
                continue
            subjects[needs] += 1
            if reason:
                results += [AuditResult(a.name, path.name, "skipped", reason=reason) for a in by_needs[needs]]
                continue
            params = json.loads(meta["vgdata.params"])
            manifest = f"read_parquet('{_sql_literal(str(path))}')"
            if needs == "groups":
                p = groups_params(params)
                subset = subset_args(params)  # a panorama fraction / years: the same subset (vgdata.groups)
                kept = (
                    "select * from cosplace_kept_classes(m := $m, alpha := $alpha, n := $n, l := $l, "
                    "min_images_per_class := $min_images_per_class, coll := $coll"
                    + "".join(f", {k} := ${k}" for k in subset)
                    + ") where group_rank < $groups_num"
                )
                names = ("m", "alpha", "n", "l", "min_images_per_class", "groups_num", "coll", *subset)
                _bind(con, "kept_classes", kept, table=True, params={k: p[k] for k in names})
                _bind(con, "groups_manifest", f"select * from {manifest}")
            else:
                p = {"threshold": float(params["threshold"])}
                _bind(con, "eval_rows", f"select * from {manifest}")
                columns, missing = _threshold_columns(path, params)
                if missing:
                    results.append(AuditResult("threshold_columns", path.name, "failed", reason=missing))
                _bind(con, "eval_threshold_positives", eval_threshold_sql(columns))
            results += [run_audit(con, a, p, path.name) for a in by_needs[needs]]
        for name, definition in sorted(build.get("splits", {}).items()):
            if (why := stale_split(build, name)) is not None:  # a stored membership of an older collection
                results.append(AuditResult("split_current", f"split {name!r}", "failed", reason=why))
                continue
            macro, roles = _split_shape(name, definition)
            if macro not in ("val_split", "year_split") or set(roles) != {"database", "queries"}:
                continue
            subjects[macro] += 1
            for role, view in roles.items():
                check_name(view, "split view")
                _bind(con, f"split_{role}", f'select * from "{view}"', table=macro == "val_split")
            results += [run_audit(con, a, {}, f"split {name!r}") for a in by_needs[macro]]
    finally:
        con.close()
    what = {
        "groups": "groups manifest",
        "eval_set": "eval manifest",
        "val_split": "val split",
        "year_split": "year split",
    }
    for needs, n in subjects.items():
        if needs != "images" and n == 0:
            reason = f"the catalog has no {what[needs]}"
            results += [AuditResult(a.name, "-", "skipped", reason=reason) for a in by_needs[needs]]
    return CheckReport(str(cat.root), results)


def _threshold_columns(path: Path, params: dict[str, Any]) -> tuple[dict[float, str], str]:
    """``({radius: column}, '')`` of the ``thresholds`` an eval manifest records, or a reason naming the columns
    the file lacks (those radii left out)."""
    import pyarrow.parquet as pq

    present = {}  # positives_<t>m, t's point written as '_' (vgdata.evalset.threshold_column) -> t
    for name in pq.read_schema(path).names:
        m = _THRESHOLD_COLUMN.fullmatch(name)
        if m:
            present[float(m.group(1).replace("_", "."))] = name
    wanted = [float(t) for t in params.get("thresholds") or [params["threshold"]]]
    missing = [f"{t!r} m" for t in wanted if t not in present]
    reason = f"the manifest lacks the positives_<t>m column of threshold(s) {', '.join(missing)}" if missing else ""
    return {t: present[t] for t in wanted if t in present}, reason


def _manifests(cat: Catalog, build: dict[str, Any]) -> list[tuple[Path, dict[str, str], str]]:
    """``(path, metadata, reason to skip or '')`` of every manifest in ``<catalog>/manifests/``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []
    for path in sorted(cat.manifests_dir.glob("*.parquet")):
        try:
            raw = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException) as e:
            out.append((path, {"vgdata.kind": "unreadable"}, f"unreadable Parquet: {e}"))
            continue
        meta = {k.decode(): v.decode() for k, v in raw.items()}
        reason = ""
        if meta.get("vgdata.manifest_format") != MANIFEST_FORMAT:
            reason = f"manifest format {meta.get('vgdata.manifest_format')!r}, not {MANIFEST_FORMAT!r}: write it again"
        elif meta.get("vgdata.catalog_fingerprint") != build.get("fingerprint"):
            reason = "made from another state of the catalog (fingerprint differs): write it again"
        out.append((path, meta, reason))
    return out


def _split_shape(name: str, definition: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """``(macro, {role: view})`` of a build.json split, in the stored (macro/args/views) or the older (kind) form."""
    macro = definition.get("macro") or {"years": "year_split", "val": "val_split", "test": "test_database"}.get(
        definition.get("kind")
    )
    views = definition.get("views", {})
    roles = {}
    for view in views:
        spec = views[view] if isinstance(views, dict) else None
        role = spec.get("role") if isinstance(spec, dict) else spec
        if role is None:
            role = next((r for r in ("database", "queries") if view == f"{name}_{r}"), None)
        if role in ("database", "queries"):
            roles[role] = view
    return macro, roles
