"""The shape of the code: no import cycles, vgtrain free of the catalog stack, the library never imports ``cli``,
and vgdata commands without the ``catalog`` extra stop with one line naming it.

The import graph is read with ``ast`` from every module of ``vgdata/`` and ``vgtrain/``, imports inside
functions included (a lazy import is still a dependency); ``from pkg import name`` counts as an import of
``pkg.name`` when that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vgdata", "vgtrain")
CATALOG_STACK = ("duckdb", "polars", "pyproj", "geopandas", "shapely")
"""What a training machine may lack: vgtrain never imports these (DESIGN.md: vgtrain reads manifests with pyarrow)."""


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module ``name`` imports (dotted; relative imports resolved), at any depth of its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (edges to anything else are left out)."""
    modules = module_files(root, packages)
    return {
        name: {m for m in imported_names(name, path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles met by a depth-first walk, each as ``[a, b, ..., a]``; empty iff the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path):
    """The walker on real files: ``a`` imports ``b`` inside a function, ``b`` imports ``a`` (relative)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("import pkg.a\nfrom pkg.b import thing\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a", "pkg.b"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_no_import_cycles_in_vgdata_and_vgtrain():
    graph = import_graph(ROOT, PACKAGES)
    assert {"vgdata.catalog", "vgdata.splits", "vgdata.views", "vgtrain.fit"} <= set(graph)
    assert "vgdata.views" in graph["vgdata.catalog"] and "vgdata.views" in graph["vgdata.splits"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_library_never_imports_cli():
    """cli.py is the outermost layer: torchrun re-enters training through the `vgtrain` console script."""
    modules = module_files(ROOT, PACKAGES)
    importers = sorted(
        name
        for name, path in modules.items()
        if any(m.split(".")[0] == "cli" for m in imported_names(name, path, modules))
    )
    assert importers == []
    assert not [name for name, path in modules.items() if "sys.path" in path.read_text(encoding="utf-8")]


def _loaded_after_importing(modules: list[str], block: tuple[str, ...] = ()) -> set[str]:
    """Top-level names in ``sys.modules`` after a fresh interpreter imports ``modules`` (``block``: made unimportable)."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(block)!r}: sys.modules[m] = None\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n, m in sys.modules.items() if m is not None})))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_every_vgtrain_module_imports_without_the_catalog_stack_or_vgdata():
    vgtrain_modules = sorted(m for m in module_files(ROOT, ("vgtrain",)) if m != "vgtrain")
    assert {"vgtrain.fit", "vgtrain.data", "vgtrain.eval", "vgtrain.report"} <= set(vgtrain_modules)
    loaded = _loaded_after_importing(vgtrain_modules)
    assert "torch" in loaded and "pyarrow" in loaded  # the imports really ran
    bad = loaded & {*CATALOG_STACK, "vgdata"}
    if bad:  # name the culprits, one fresh interpreter per module
        culprits = {m: sorted(_loaded_after_importing([m]) & bad) for m in vgtrain_modules}
        pytest.fail(f"vgtrain pulls {sorted(bad)}: " + str({m: c for m, c in culprits.items() if c}))


def test_the_vgtrain_cli_loads_no_catalog_stack():
    """`vgtrain ...` imports cli, which imports only vgdata's errors (not the catalog stack) before a command runs."""
    loaded = _loaded_after_importing(["cli"])
    assert "typer" in loaded and not loaded & set(CATALOG_STACK)


BLOCK = "import sys\nfor m in {block!r}: sys.modules[m] = None\nfrom cli import {app}\n{app}()\n"


def _run_blocked(app: str, args: list[str], block: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = BLOCK.format(block=block, app=app)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "block", "missing"),
    [
        (["info", "{tmp}"], ("duckdb",), "duckdb is"),
        (["synth", "{tmp}/raw", "--preset", "tiny"], CATALOG_STACK, "duckdb, polars, pyproj, shapely are"),
    ],
)
def test_vgdata_without_the_catalog_extra_is_one_line_naming_it(tmp_path, args, block, missing):
    res = _run_blocked("vgdata_app", [a.format(tmp=tmp_path) for a in args], block)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: this command needs vgdata's catalog extra (duckdb, polars, pyproj, shapely), and "
        f"{missing} not installed here; install it: pip install 'vgdata[catalog]'"
    ]
    assert not (tmp_path / "raw").exists()


def test_vgtrain_fit_parses_without_the_catalog_extra():
    res = _run_blocked("vgtrain_app", ["fit", "--help"], CATALOG_STACK)
    assert res.returncode == 0 and "--groups" in res.stdout and "--nproc" in res.stdout
