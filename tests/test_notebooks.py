"""notebooks/: each jupytext percent-format notebook runs top to bottom on the tiny city (nbclient).

The notebooks are converted in memory (``jupytext.read``) and executed in a kernel of this interpreter; a cell
appended by the test prints, as JSON, values the notebook computed, which are compared with values computed
here independently (pyarrow over the catalog's Parquet parts, numpy floors, the ``utm`` package). Outputs are
never written back: the .py files are byte-identical after the run.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("geopandas")
utm = pytest.importorskip("utm")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="session")
def jupyter_dir(tmp_path_factory) -> Path:
    """A ``python3`` kernel spec that runs this interpreter, found first through JUPYTER_PATH.

    Works on a fresh clone where only ``.venv`` exists: nothing is installed into the user's home.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (vgdata tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


@pytest.fixture
def kernel_env(jupyter_dir, tmp_path, monkeypatch) -> Path:
    """The environment the kernel inherits: our kernel spec, runtime and IPython folders and TMPDIR in tmp."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("VGTRAIN_RUN", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # ipykernel then sets its inline backend: figures as PNG
    return tmp_path


@pytest.fixture
def catalog(tiny_catalog, tmp_path, monkeypatch) -> Path:
    """A private copy of the tiny city's catalog (the notebooks write manifests), named by VGDATA_CATALOG."""
    cat = tmp_path / "cat"
    shutil.copytree(tiny_catalog, cat)
    monkeypatch.setenv("VGDATA_CATALOG", str(cat))
    return cat


def run_notebook(name: str, cwd: Path, values: str) -> tuple[dict, object]:
    """Execute ``notebooks/<name>`` in ``cwd``; return the JSON of the expression ``values`` and the notebook."""
    path = NOTEBOOKS / name
    before = path.read_bytes()
    nb = jupytext.read(path)
    nb.cells.append(
        nbformat.v4.new_code_cell(f"import json as _json\nimport math\n\nprint(_json.dumps({values}, default=str))")
    )
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}})
    client.execute()  # CellExecutionError (with the cell and its traceback) on the first failing cell
    assert path.read_bytes() == before, f"{name} was modified by its run"
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stdout = "".join(o.text for o in nb.cells[-1].outputs if o.output_type == "stream" and o.name == "stdout")
    return json.loads(stdout), nb


def figures(nb) -> int:
    """PNG figures the notebook displayed."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)


def database_images(cat: Path):
    """The catalog's images table, read straight from its Parquet parts (no DuckDB)."""
    return ds.dataset(cat / "images", format="parquet").to_table()


def test_notebooks_are_plain_percent_scripts_without_outputs():
    files = sorted(NOTEBOOKS.glob("*.py"))
    assert {p.name for p in files} >= {"explore_catalog.py", "classes_and_groups.py", "eval_predictions.py"}
    for path in files:
        nb = jupytext.read(path)
        assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        compile(path.read_text(), str(path), "exec")  # the file is plain Python too
    assert not list(NOTEBOOKS.glob("*.ipynb")), "notebooks are stored as .py only"


def test_explore_catalog(catalog, kernel_env):
    values = (
        "{'per_year': images_per_year['total'].to_dict(), 'collections': dict(zip(collections['collection'], "
        "collections['images'].tolist())), 'rejects': int(rejects['n'].sum()) if len(rejects) else 0, "
        "'located': int(n_located), 'points': len(images), 'crs': images.crs.to_epsg(), "
        "'zones': sorted(by_zone), 'offset_m': zone_offset_m, 'map_epsg': epsg}"
    )
    got, nb = run_notebook("explore_catalog.py", kernel_env, values)
    table = database_images(catalog)
    years = Counter("unknown" if y is None else str(y) for y in table.column("year").to_pylist())
    assert got["per_year"] == dict(years)
    assert got["collections"] == dict(Counter(table.column("collection").to_pylist()))
    assert got["rejects"] == ds.dataset(catalog / "rejects", format="parquet").count_rows()
    lat, lon = table.column("lat").to_numpy(zero_copy_only=False), table.column("lon").to_numpy(zero_copy_only=False)
    located = np.isfinite(lat) & np.isfinite(lon)
    assert got["located"] == got["points"] == int(located.sum())
    assert got["crs"] == 4326
    zones = {32600 + utm.from_latlon(a, o)[2] if a >= 0 else 32700 + utm.from_latlon(a, o)[2]
             for a, o in zip(lat[located], lon[located], strict=True)}  # fmt: skip
    assert got["zones"] == sorted(zones) and got["map_epsg"] in zones
    assert all(v < 0.01 for v in got["offset_m"].values())  # geopandas' reprojection lands on the catalog's UTM
    assert figures(nb) == 2  # images per year, coverage map


@pytest.mark.slow
def test_classes_and_groups(catalog, kernel_env):
    values = (
        "{'params': PARAMS, 'manifest': result.manifest, 'total_groups': result.total_groups, "
        "'sizes': sorted(class_sizes['images'].tolist()), 'per_group': per_group['images'].tolist(), "
        "'epsg': epsg}"
    )
    got, nb = run_notebook("classes_and_groups.py", kernel_env, values)
    p = got["params"]
    assert Path(got["manifest"]).parent == catalog / "manifests"
    rows = pq.read_table(got["manifest"])
    e, n, h = (rows.column(c).to_numpy() for c in ("utm_east", "utm_north", "heading"))
    keys = zip(rows.column("utm_epsg").to_pylist(), np.floor(e / p["m"]), np.floor(n / p["m"]),
               np.floor(np.mod(h, 360) / p["alpha"]), strict=True)  # fmt: skip
    assert got["sizes"] == sorted(Counter(keys).values())  # images per class, recomputed with numpy floors
    assert sum(got["per_group"]) == rows.num_rows and len(got["per_group"]) == p["groups_num"]
    # Every database class is kept (min_images_per_class=1): the groups are the distinct floor-mods.
    table = database_images(catalog).filter(ds.field("collection") == "database")
    e, n, h = (table.column(c).to_numpy() for c in ("utm_east", "utm_north", "heading"))
    ce, cn, ch = np.floor(e / p["m"]), np.floor(n / p["m"]), np.floor(np.mod(h, 360) / p["alpha"])
    groups = set(zip(np.mod(ce, p["n"]), np.mod(cn, p["n"]), np.mod(ch, p["l"]), strict=True))
    assert p["min_images_per_class"] == 1 and got["total_groups"] == len(groups)
    assert got["epsg"] == 32600 + utm.from_latlon(*table.select(["lat", "lon"]).to_pylist()[0].values())[2]
    assert figures(nb) == 2  # class sizes, cells by group


@pytest.mark.slow
def test_eval_predictions_makes_a_run_then_reads_it(catalog, kernel_env, monkeypatch):
    values = (
        "{'run': str(RUN), 'found': found_in_top, 'top': TOP, 'worst': worst.index.tolist(), "
        "'first': {int(k): (None if math.isnan(v) else int(v)) for k, v in "
        "summary['first_positive_rank'].items()}, 'metres': top['metres'].tolist(), "
        "'pairs': top[['query_idx', 'database_idx']].values.tolist()}"
    )
    got, _ = run_notebook("eval_predictions.py", kernel_env, values)
    run = Path(got["run"])
    assert run.parent == kernel_env and (run / "predictions.parquet").is_file()  # made under TMPDIR
    manifest = pq.read_table(catalog / "manifests" / "eval_notebook_v2.parquet").to_pylist()
    db = [r for r in manifest if r["role"] == "database"]
    queries = [r for r in manifest if r["role"] == "query"]
    pred = pq.read_table(run / "predictions.parquet").to_pylist()
    ranked = {q["idx"]: [r["database_idx"] for r in sorted(pred, key=lambda r: r["rank"]) if r["query_idx"] == q["idx"]]
              for q in queries}  # fmt: skip
    first = {}
    for q in queries:  # the first positive's rank, from the manifest's positives (not predictions' is_positive)
        hits = [rank for rank, i in enumerate(ranked[q["idx"]]) if i in set(q["positives"])]
        first[q["idx"]] = hits[0] if hits else None
    assert got["first"] == {str(k): v for k, v in first.items()}
    assert got["found"] == sum(v is not None and v < got["top"] for v in first.values())
    assert sorted(got["worst"]) == sorted(first)  # fewer queries than WORST: all listed
    worst_first = [math.inf if first[i] is None else first[i] for i in got["worst"]]
    assert worst_first == sorted(worst_first, reverse=True)
    by_idx = {r["idx"]: r for r in db}
    qs = {q["idx"]: q for q in queries}
    expect = [math.hypot(by_idx[d]["utm_east"] - qs[q]["utm_east"], by_idx[d]["utm_north"] - qs[q]["utm_north"])
              for q, d in got["pairs"]]  # fmt: skip
    assert np.allclose(got["metres"], expect)

    # The same notebook on the run it made, through VGTRAIN_RUN: no second eval, the same answers.
    monkeypatch.setenv("VGTRAIN_RUN", str(run))
    again, _ = run_notebook("eval_predictions.py", kernel_env, values)
    assert again == got
