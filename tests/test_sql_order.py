"""The order of the SQL files comes from what each defines and uses, not from their names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vgdata.catalog import SQL_DIR, Catalog, sql_files
from vgdata.sql_order import SqlOrderError, definitions, dependencies, duckdb_names, order_sql_files


def write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        paths.append(p)
    return paths


# a chain c -> b -> a plus a view over a staging view; names chosen so that name order is the wrong order
CHAIN = {
    "a_top.sql": "create or replace macro top_m(x) as table select * from mid_m(x := x) where v > 0;",
    "b_mid.sql": "-- uses base_m( in a comment only: no dependency on z\ncreate macro mid_m(x := 1) as table\n"
    "with t as (select * from base_m(x)) select * from t;",
    "c_base.sql": "create or replace macro base_m(x) as table select x as v, 'from nowhere(' as s from rows_v;",
    "d_rows.sql": "create or replace view rows_v as select 1 as k;",
}


def test_order_follows_dependencies_whatever_the_names(tmp_path):
    order = [p.name for p in order_sql_files(write(tmp_path, CHAIN), root=tmp_path, known=duckdb_names())]
    assert order == ["d_rows.sql", "c_base.sql", "b_mid.sql", "a_top.sql"]


def test_shuffled_names_give_the_same_order(tmp_path):
    """Rename the files at random: each file still runs after what it uses, and the files really run in DuckDB."""
    import duckdb

    rng = random.Random(3)
    for trial in range(4):
        names = [f"{rng.randrange(10**6):06d}_{i}.sql" for i in range(len(CHAIN))]
        folder = tmp_path / str(trial)
        texts = dict(zip(names, CHAIN.values(), strict=True))
        order = order_sql_files(write(folder, texts), root=folder)
        defined = [sorted(definitions(p.read_text())) for p in order]
        assert defined == [["rows_v"], ["base_m"], ["mid_m"], ["top_m"]]
        con = duckdb.connect()
        for p in order:
            con.execute(p.read_text())
        assert con.sql("from top_m(5)").fetchall() == [(5, "from nowhere(")]
        con.close()


def test_independent_files_keep_path_order(tmp_path):
    files = write(tmp_path, {"z.sql": "create macro z1() as 1;", "a.sql": "create macro a1() as 2;"})
    assert [p.name for p in order_sql_files(files, root=tmp_path)] == ["a.sql", "z.sql"]


def test_a_cycle_is_named(tmp_path):
    files = write(
        tmp_path,
        {
            "one.sql": "create macro one_m() as table select * from two_m();",
            "two.sql": "create macro two_m() as table select * from three_v;",
            "three.sql": "create view three_v as select * from one_m();",
            "free.sql": "create macro free_m() as 1;",
        },
    )
    with pytest.raises(SqlOrderError, match=r"cycle: one\.sql -> two\.sql -> three\.sql -> one\.sql"):
        order_sql_files(files, root=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("create macro m() as table select * from no_such_table;", r"x\.sql reads no_such_table, which no SQL file"),
        ("create macro m() as no_such_function(1);", r"x\.sql calls no_such_function\(\), which no SQL file"),
    ],
)
def test_an_undefined_dependency_is_named(tmp_path, text, message):
    files = write(tmp_path, {"x.sql": text})
    with pytest.raises(SqlOrderError, match=message):
        order_sql_files(files, root=tmp_path, known=duckdb_names())


def test_a_name_defined_twice_is_refused(tmp_path):
    files = write(tmp_path, {"a.sql": "create macro m() as 1;", "b.sql": "create or replace macro m() as 2;"})
    with pytest.raises(SqlOrderError, match=r"m is defined by both a\.sql and b\.sql"):
        order_sql_files(files, root=tmp_path)


def test_parser_ignores_comments_strings_ctes_and_distinct_from():
    text = """
    -- from ghost_table, ghost_fn(
    create macro m(t) as table
    with near as materialized (select * from query_table(t)), far as (select 1)
    select 'join fake_table', a.x is not distinct from b.x from near as a cross join far as b, range(3) as r (k)
    """
    calls, relations = dependencies(text)
    assert relations == set()
    assert calls & {"ghost_fn", "fake_table", "r"} == set() and {"query_table", "range"} <= calls


def test_every_shipped_file_comes_after_its_dependencies(tmp_path):
    """Checked independently of the sort: for each shipped file, every name it uses is defined by an earlier file
    (or is DuckDB's), and the files really load in that order into a fresh DuckDB."""
    import duckdb

    order = sql_files()
    assert order == order_sql_files(order, root=SQL_DIR, known=duckdb_names())  # strict: calls checked too
    defined_before: set[str] = set()
    owner = {name: p for p in order for name in definitions(p.read_text())}
    for p in order:
        calls, relations = dependencies(p.read_text())
        for name in calls | relations:
            if name in owner and owner[name] != p:
                assert name in defined_before, f"{p.name} uses {name} before {owner[name].name} defines it"
        defined_before |= definitions(p.read_text())
    assert {"cosplace_kept_classes", "groups_manifest", "eval_set", "positives", "images"} <= defined_before
    Catalog(tmp_path).ensure_table_dirs()  # the staging views read <catalog>/<table>/*.parquet
    con = duckdb.connect()
    con.execute(f"set file_search_path = '{tmp_path}'")
    for p in order:
        con.execute(p.read_text())
    con.close()
