"""Writers that meet: one writer per catalog, plan-keyed markers, staleness that sees the pixels, clean kills.

Concurrency cases use real processes: the CLI as subprocesses, and a "holder" process that takes
the catalog's writer lock (the OS lock, ``flock``) and keeps it until the test closes its stdin.
Two writers started while the holder has the lock both wait for it; when it is released they
contend for the lock at the same moment, which is the race the issue found (mixed shards, a lost
build.json entry), every time rather than now and then.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps
from raw_panoramas import make_raw_panoramas

from vgdata import jobs
from vgdata.build import BuildConfig, build_catalog
from vgdata.catalog import LOCK_FILE, CatalogBusy, writer_lock
from vgdata.splits import split_years

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
WIDTH = 512  # 2:1 panoramas of 512x256: 12 crops of 78 px each
CROPS = 12

HOLDER = """
import sys
from vgdata.catalog import writer_lock
with writer_lock(sys.argv[1], task="test holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


# ---------- helpers


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "cli", *map(str, args)]


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def build_args(cat: Path, raw: tuple[Path, Path], *extra: object) -> list[object]:
    """``build-catalog CAT --panoramas DIR --metadata CSV [extra]``."""
    return ["build-catalog", cat, "--panoramas", raw[0], "--metadata", raw[1], *extra]


def start_cli(log: Path, *args: object) -> subprocess.Popen:
    """A CLI run in the background, stdout to ``log.out``, stderr to ``log.err``."""
    out, err = log.with_suffix(".out").open("w"), log.with_suffix(".err").open("w")
    proc = subprocess.Popen(cli(*args), cwd=ROOT, env=ENV, stdout=out, stderr=err, text=True)
    out.close()
    err.close()
    return proc


def text_of(log: Path, kind: str) -> str:
    return log.with_suffix(f".{kind}").read_text()


def wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def holder(cat: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``cat``'s writer lock until the block ends."""
    cat.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cat)], cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline() == b"held\n"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def waiting_lines(log: Path) -> list[str]:
    return [line for line in text_of(log, "err").splitlines() if line.startswith("waiting:")]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def lock_is_free(cat: Path) -> bool:
    fd = os.open(cat / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def rows(cat: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.sql(sql.replace("IMAGES", f"read_parquet('{cat}/images/*.parquet', union_by_name=true)")).fetchall()
    finally:
        con.close()


def pano_ids(csv_path: Path) -> set[str]:
    return {line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]}


def crop_files(cat: Path, collection: str = "database") -> dict[str, Path]:
    return {p.name: p for p in (cat / "crops" / collection).rglob("*.jpg")}


def write_poses(folder: Path, n: int = 3) -> Path:
    """``n`` small query images and a poses CSV (path, lat, lon, heading) for add-queries."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,lat,lon,heading"]
    for i in range(n):
        Image.new("RGB", (64, 48), (40 * i, 90, 200 - 30 * i)).save(folder / "img" / f"q{i}.jpg")
        lines.append(f"img/q{i}.jpg,{37.7749 + i * 1e-4:.7f},-122.4194,{30 * i}")
    (folder / "poses.csv").write_text("\n".join(lines) + "\n")
    return folder / "poses.csv"


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(d.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def replace_pixels(path: Path) -> None:
    """Write other pixels (the image mirrored and inverted) to ``path``: a new file, a new mtime."""
    with Image.open(path) as im:
        ImageOps.invert(ImageOps.mirror(im.convert("RGB"))).save(path.with_suffix(".new.jpg"), quality=90)
    os.replace(path.with_suffix(".new.jpg"), path)


def replace_pixels_same_size_and_mtime(path: Path) -> None:
    """Other pixels in a file of the same size and modification time (what ``cp -p`` can leave)."""
    st = path.stat()
    with Image.open(path) as im:
        other = ImageOps.invert(im.convert("RGB"))
    for quality in range(90, 5, -5):
        tmp = path.with_suffix(".new.jpg")
        other.save(tmp, quality=quality)
        data = tmp.read_bytes()
        tmp.unlink()
        if len(data) <= st.st_size:
            break
    path.write_bytes(data + b"\0" * (st.st_size - len(data)))  # bytes after the JPEG's end are ignored
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def crops_of(cat: Path, pano_id: str) -> dict[str, tuple[int, int, bytes]]:
    """Name -> (inode, mtime_ns, bytes) of one panorama's crops."""
    out = {}
    for name, p in crop_files(cat).items():
        if f"@{pano_id}@" in name:
            st = p.stat()
            out[name] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


# ---------- fixtures


@pytest.fixture(scope="module")
def raws(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Read-only raw inputs: two different small sets (a, b), and 40 panoramas for the kill cases."""
    base = tmp_path_factory.mktemp("raws")
    return {
        "a": make_raw_panoramas(base / "a", n=4, width=WIDTH, seed=1),
        "b": make_raw_panoramas(base / "b", n=5, width=WIDTH, seed=2),
        "big": make_raw_panoramas(base / "big", n=40, width=WIDTH, seed=3),
    }


@pytest.fixture(scope="module")
def shared_cat(raws, tmp_path_factory) -> Path:
    """A built catalog (database of set a, queries q from poses) that the no-wait cases never change."""
    base = tmp_path_factory.mktemp("shared")
    cat = base / "cat"
    pano_dir, csv_path = raws["a"]
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    build_catalog(BuildConfig(cat, poses=write_poses(base / "poses"), collection="q", workers=1))
    return cat


@pytest.fixture
def raw_copy(raws, tmp_path) -> tuple[Path, Path]:
    """A private copy of set a that a test may change."""
    pano_dir, _ = raws["a"]
    shutil.copytree(pano_dir.parent, tmp_path / "raw")
    return tmp_path / "raw" / "panoramas", tmp_path / "raw" / "panoramas.csv"


def build(cat: Path, raw: tuple[Path, Path], **kw):
    return build_catalog(BuildConfig(cat, panoramas=raw[0], metadata=raw[1], workers=1, shard_size=1, **kw))


# ---------- one writer per catalog: real processes


@pytest.mark.slow
def test_two_builds_of_different_inputs_into_one_collection_never_mix(raws, tmp_path):
    cat = tmp_path / "cat"
    logs = {k: tmp_path / f"build_{k}" for k in ("a", "b")}
    with holder(cat):
        procs = {
            k: start_cli(logs[k], *build_args(cat, raws[k], "--workers", "1", "--shard-size", "1")) for k in ("a", "b")
        }
        wait_for(lambda: all(waiting_lines(log) for log in logs.values()), what="both builds to wait")
    codes = {k: p.wait(timeout=120) for k, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], codes
    winner = next(k for k, c in codes.items() if c == 0)
    loser = next(k for k, c in codes.items() if c == 2)
    err = text_of(logs[loser], "err")
    assert "Traceback" not in err and "Traceback" not in text_of(logs[winner], "err")
    assert error_lines(err) == [
        f"error: collection 'database' of {cat} was built from other inputs or parameters; "
        f"choose another --collection or delete {cat} to rebuild"
    ]
    ids = pano_ids(raws[winner][1])
    assert rows(cat, "select count(*), count(distinct pano_id) from IMAGES") == [(CROPS * len(ids), len(ids))]
    assert {r[0] for r in rows(cat, "select distinct pano_id from IMAGES")} == ids
    assert len(crop_files(cat)) == CROPS * len(ids)
    info = json.loads((cat / "build.json").read_text())["collections"]["database"]
    assert info["source"]["metadata"] == str(raws[winner][1].resolve())
    assert info["counts"] == {"panoramas": len(ids), "images": CROPS * len(ids), "rejects": 0}


@pytest.mark.slow
def test_build_catalog_and_add_queries_at_once_keep_both_collections(raws, tmp_path):
    cat = tmp_path / "cat"
    poses = write_poses(tmp_path / "poses")
    logs = {k: tmp_path / k for k in ("build", "add")}
    with holder(cat):
        procs = {
            "build": start_cli(logs["build"], *build_args(cat, raws["a"], "--workers", "1")),
            "add": start_cli(
                logs["add"], "add-queries", cat, "--collection", "queries_v2", "--poses", poses, "--workers", "1"
            ),
        }
        wait_for(lambda: all(waiting_lines(log) for log in logs.values()), what="both commands to wait")
    assert {k: p.wait(timeout=120) for k, p in procs.items()} == {"build": 0, "add": 0}
    build = json.loads((cat / "build.json").read_text())
    assert sorted(build["collections"]) == ["database", "queries_v2"]
    assert build["counts"] == {"panoramas": 4, "images": CROPS * 4 + 3, "rejects": 0}
    got = rows(cat, "select collection, count(*) from IMAGES group by all order by 1")
    assert got == [("database", CROPS * 4), ("queries_v2", 3)]


@pytest.mark.slow
def test_two_identical_builds_at_once_both_exit_0(raws, tmp_path):
    cat = tmp_path / "cat"
    logs = [tmp_path / "one", tmp_path / "two"]
    args = build_args(cat, raws["a"], "--workers", "1", "--json")
    with holder(cat):
        procs = [start_cli(log, *args) for log in logs]
        wait_for(lambda: all(waiting_lines(log) for log in logs), what="both builds to wait")
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    for log in logs:
        assert "Traceback" not in text_of(log, "err")
    results = [json.loads(text_of(log, "out")) for log in logs]
    assert sorted(r["up_to_date"] for r in results) == [False, True]
    assert {r["fingerprint"] for r in results} == {results[0]["fingerprint"]}
    assert all(r["images"] == CROPS * 4 for r in results)
    assert rows(cat, "select count(*) from IMAGES") == [(CROPS * 4,)]


NO_WAIT = {
    "build-catalog": ["build-catalog", "{cat}", "--panoramas", "{pano}", "--metadata", "{csv}", "--no-wait"],
    "add-queries": ["add-queries", "{cat}", "--collection", "q2", "--poses", "{poses}", "--no-wait"],
    "split-years": ["split-years", "{cat}", "--name", "y", "--queries-from", "2015", "--no-wait"],
    "split-test": ["split-test", "{cat}", "--year", "2013", "--no-wait"],
    "split-val": ["split-val", "{cat}", "--size", "1", "--no-wait"],
    "split-groups": ["split-groups", "{cat}", "--min-images-per-class", "1", "--groups-num", "1", "--no-wait"],
    "eval-set": ["eval-set", "{cat}", "--name", "v", "--database", "database", "--queries", "q", "--no-wait"],
}


@pytest.mark.parametrize("command", sorted(NO_WAIT))
@pytest.mark.slow
def test_no_wait_fails_in_one_line_naming_the_holder(command, shared_cat, raws, tmp_path):
    cat = shared_cat
    poses = write_poses(tmp_path / "poses", n=1)
    values = {"cat": cat, "pano": raws["b"][0], "csv": raws["b"][1], "poses": poses}
    args = [a.format(**values) for a in NO_WAIT[command]]
    before = (cat / "build.json").read_bytes()
    with holder(cat) as h:
        res = run_cli(*args)
    assert res.returncode == 75, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert re.fullmatch(
        rf"error: {re.escape(str(cat))} is being written by pid {h.pid} \(test holder: -c {re.escape(str(cat))}, "
        r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\); run again when it has finished, "
        r"or without --no-wait to wait for it",
        lines[0],
    ), lines[0]
    assert (cat / "build.json").read_bytes() == before
    assert not (cat / "manifests").exists() or not list((cat / "manifests").glob("*.parquet"))


def test_a_second_writer_waits_with_one_line_then_runs(shared_cat, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(shared_cat, cat)
    log = tmp_path / "split"
    with holder(cat) as h:
        proc = start_cli(log, "split-test", cat, "--year", "2013", "--name", "t2013")
        wait_for(lambda: waiting_lines(log), what="the waiting line")
        time.sleep(0.5)
        assert proc.poll() is None, "it must wait while the lock is held"
        assert "t2013" not in json.loads((cat / "build.json").read_text()).get("splits", {})
    assert proc.wait(timeout=60) == 0
    (line,) = waiting_lines(log)
    assert line.startswith(f"waiting: {cat} is being written by pid {h.pid} (test holder: ")
    assert line.endswith("(Ctrl-C to stop waiting)")
    assert "t2013" in json.loads((cat / "build.json").read_text())["splits"]


def test_library_wait_false_raises_catalog_busy_naming_the_holder(shared_cat, raws, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(shared_cat, cat)
    with holder(cat) as h:
        with pytest.raises(CatalogBusy, match=rf"is being written by pid {h.pid} \(test holder") as e:
            split_years(cat, name="y", queries_from=2015, wait=False)
        assert e.value.exit_code == 75
        with pytest.raises(CatalogBusy, match=rf"pid {h.pid} "):
            build(cat, raws["a"], collection="other", wait=False)
    assert not (cat / "_jobs" / "other").exists() and not list((cat / "images").glob("other-*"))
    assert split_years(cat, name="y", queries_from=2015, wait=False).counts == {"y_database": 24, "y_queries": 24}


def test_readers_take_no_lock(shared_cat):
    with holder(shared_cat):
        res = run_cli("info", shared_cat, "--json", timeout=60)
    assert res.returncode == 0 and "Traceback" not in res.stderr
    info = json.loads(res.stdout)
    assert [(c["collection"], c["images"]) for c in info["collections"]] == [("database", CROPS * 4), ("q", 3)]


@pytest.mark.slow
def test_the_lock_is_released_after_a_failure(shared_cat, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(shared_cat, cat)
    res = run_cli("split-years", cat, "--name", "y", "--queries-from", "2100")
    assert res.returncode == 2 and "Traceback" not in res.stderr  # a usage error, raised under the lock
    assert error_lines(res.stderr) == [
        "error: split 'y': y_queries would be empty in collection 'database' (its years are 2013-2017); "
        "choose --queries-from / --database-before inside that range"
    ]
    assert lock_is_free(cat) and (cat / LOCK_FILE).read_text() == ""
    res = run_cli("split-years", cat, "--name", "y", "--queries-from", "2015", "--no-wait")
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_a_stale_or_garbled_lock_file_never_blocks(shared_cat, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(shared_cat, cat)
    (cat / LOCK_FILE).write_text('{"pid": 2147483646, "task": "a writer killed long ago"}\n')
    res = run_cli("split-test", cat, "--year", "2013", "--no-wait")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    (cat / LOCK_FILE).write_bytes(b"\xff\x00 not json")
    res = run_cli("split-test", cat, "--year", "2017", "--name", "t2017", "--no-wait")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert sorted(json.loads((cat / "build.json").read_text())["splits"]) == ["t2017", "test_database"]


@pytest.mark.slow
def test_build_json_is_replaced_atomically_and_no_update_is_lost(shared_cat, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(shared_cat, cat)
    old = (cat / "build.json").open("rb")  # an open reader of the file as it was
    original = old.read()
    stop, seen = threading.Event(), {"reads": 0, "bad": 0}

    def read_forever() -> None:
        while not stop.is_set():
            try:
                json.loads((cat / "build.json").read_bytes())
                seen["reads"] += 1
            except ValueError:
                seen["bad"] += 1

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        logs = [tmp_path / f"w{i}" for i in range(3)]
        with holder(cat):
            procs = [
                start_cli(logs[0], "split-years", cat, "--name", "y", "--queries-from", "2015"),
                start_cli(logs[1], "split-test", cat, "--year", "2017", "--name", "t2017"),
                start_cli(logs[2], "split-val", cat, "--size", "1", "--name", "v"),
            ]
            wait_for(lambda: all(waiting_lines(log) for log in logs), what="three writers to wait")
        codes = [p.wait(timeout=120) for p in procs]
        assert codes == [0, 0, 0], [text_of(log, "err")[-2000:] for log in logs]
    finally:
        stop.set()
        reader.join()
    assert seen["bad"] == 0 and seen["reads"] > 0, seen
    old.seek(0)
    assert old.read() == original  # replaced by a rename: an open reader keeps a whole old file
    old.close()
    assert sorted(json.loads((cat / "build.json").read_text())["splits"]) == ["t2017", "v", "y"]
    assert not [p.name for p in cat.iterdir() if p.name.startswith(".tmp-")]


# ---------- markers keyed by the plan


def test_markers_of_another_plan_are_never_adopted(tmp_path):
    ran: list[str] = []

    def fn(payload: dict) -> dict:
        if payload.get("fail"):
            raise RuntimeError("boom")
        ran.append(payload["x"])
        return {"x": payload["x"]}

    shards = [(f"{i:03d}", {"x": i}) for i in range(3)]
    job = tmp_path / "job"
    keys1 = {sid: {"stat": f"k1-{sid}"} for sid, _ in shards}
    jobs.run_shards(job, shards, fn, workers=1, keys=keys1)
    jobs.run_shards(job, shards, fn, workers=1, keys=keys1)
    assert ran == [0, 1, 2]  # the second run found every shard done for its plan
    marker = json.loads((job / "001.done").read_text())
    assert marker == {"format": "vgdata-marker/1", "keys": {"stat": "k1-001"}, "stats": {"x": 1}}

    keys2 = dict(keys1, **{"001": {"stat": "other inputs"}})
    jobs.run_shards(job, shards, fn, workers=1, keys=keys2)
    assert ran == [0, 1, 2, 1]  # only the shard whose inputs changed
    # A shard of another plan that fails: its old marker is gone before it runs, never left to be adopted.
    keys3 = dict(keys2, **{"002": {"stat": "again other"}})
    with pytest.raises(RuntimeError, match="boom"):
        jobs.run_shards(job, [*shards[:2], ("002", {"x": 2, "fail": True})], fn, workers=1, keys=keys3)
    assert not (job / "002.done").exists() and (job / "000.done").exists()
    # A marker without a content hash does not count when the plan asks for one (--verify).
    keys4 = {sid: {**k, "content": "c"} for sid, k in keys3.items()}
    assert jobs.read_marker(job, "000", keys4["000"], ["content"]) is None
    assert jobs.read_marker(job, "000", keys4["000"], ["stat"]) == {"x": 0}


def test_an_interrupted_build_of_other_inputs_is_discarded_not_mixed(raws, tmp_path):
    cat = tmp_path / "cat"
    build(cat, raws["a"])
    (cat / "build.json").unlink()  # as if killed right before its last step
    r = build(cat, raws["b"])
    ids = pano_ids(raws["b"][1])
    assert (r.panoramas, r.images, r.shards_skipped) == (5, CROPS * 5, 0)
    assert {x[0] for x in rows(cat, "select distinct pano_id from IMAGES")} == ids
    assert len(crop_files(cat)) == CROPS * 5 and all(any(f"@{i}@" in n for i in ids) for n in crop_files(cat))


def test_collections_whose_names_share_a_prefix_keep_their_parts(raws, raw_copy, tmp_path):
    cat = tmp_path / "cat"
    build(cat, raw_copy, collection="db-2")
    build(cat, raw_copy, collection="db")
    replace_pixels(raw_copy[0] / f"{sorted(pano_ids(raw_copy[1]))[0]}.jpg")
    r = build(cat, raw_copy, collection="db")  # a re-run of db must not take db-2's parts for its own
    assert (r.up_to_date, r.shards_skipped) == (False, 3)
    got = rows(cat, "select collection, count(*) from IMAGES group by all order by 1")
    assert got == [("db", CROPS * 4), ("db-2", CROPS * 4)]


# ---------- staleness that sees the pixels


def test_a_replaced_panorama_is_cut_again_and_only_it(raw_copy, tmp_path):
    cat = tmp_path / "cat"
    first = build(cat, raw_copy)
    ids = sorted(pano_ids(raw_copy[1]))
    before = {i: crops_of(cat, i) for i in ids}
    table_before = pq.read_table(sorted((cat / "images").glob("database-*.parquet"))).to_pylist()
    replace_pixels(raw_copy[0] / f"{ids[1]}.jpg")  # the CSV is unchanged

    second = build(cat, raw_copy)
    assert (second.up_to_date, second.shards, second.shards_skipped) == (False, 4, 3)
    after = {i: crops_of(cat, i) for i in ids}
    assert sorted(after[ids[1]]) == sorted(before[ids[1]]) and len(after[ids[1]]) == CROPS
    assert all(after[ids[1]][n][2] != before[ids[1]][n][2] for n in before[ids[1]])  # new pixels
    for i in (ids[0], ids[2], ids[3]):
        assert after[i] == before[i]  # same inode, mtime and bytes: not cut again
    assert pq.read_table(sorted((cat / "images").glob("database-*.parquet"))).to_pylist() == table_before
    assert second.fingerprint != first.fingerprint
    assert build(cat, raw_copy).up_to_date


def test_verify_sees_a_change_that_keeps_size_and_mtime(raw_copy, tmp_path):
    cat = tmp_path / "cat"
    build(cat, raw_copy, verify=True)
    ids = sorted(pano_ids(raw_copy[1]))
    before = {i: crops_of(cat, i) for i in ids}
    replace_pixels_same_size_and_mtime(raw_copy[0] / f"{ids[2]}.jpg")

    assert build(cat, raw_copy).up_to_date  # make's rule cannot see it: same size, same mtime
    r = build(cat, raw_copy, verify=True)
    assert (r.up_to_date, r.shards_skipped) == (False, 3)
    after = {i: crops_of(cat, i) for i in ids}
    assert all(after[ids[2]][n][2] != before[ids[2]][n][2] for n in before[ids[2]])
    assert all(after[i] == before[i] for i in ids if i != ids[2])
    assert build(cat, raw_copy, verify=True).up_to_date


def test_verify_on_a_catalog_built_without_it_cuts_everything_once(raw_copy, tmp_path):
    cat = tmp_path / "cat"
    plain = build(cat, raw_copy)
    r = build(cat, raw_copy, verify=True)  # no content hashes were recorded: nothing can be trusted
    assert (r.up_to_date, r.shards_skipped, r.images) == (False, 0, CROPS * 4)
    assert r.fingerprint != plain.fingerprint
    again = build(cat, raw_copy, verify=True)
    assert again.up_to_date and again.fingerprint == r.fingerprint
    assert build(cat, raw_copy).up_to_date  # the size and mtime recorded with it still hold


def test_a_panorama_replaced_by_a_bad_file_loses_its_crops(raw_copy, tmp_path):
    cat = tmp_path / "cat"
    build(cat, raw_copy)
    ids = sorted(pano_ids(raw_copy[1]))
    Image.new("RGB", (500, 400)).save(raw_copy[0] / f"{ids[0]}.jpg")
    r = build(cat, raw_copy)
    assert (r.panoramas, r.images, r.rejects_by_reason) == (3, CROPS * 3, {"wrong aspect ratio": 1})
    assert not crops_of(cat, ids[0]) and len(crop_files(cat)) == CROPS * 3
    assert {x[0] for x in rows(cat, "select distinct pano_id from IMAGES")} == set(ids[1:])


def test_an_import_folder_that_gains_files_is_not_up_to_date(shared_cat, tmp_path):
    folder = tmp_path / "at"
    shutil.copytree(shared_cat / "crops" / "database", folder)
    files = sorted(folder.rglob("*.jpg"))
    held_back = tmp_path / "held_back"
    held_back.mkdir()
    for f in files[:5]:
        shutil.move(f, held_back / f.name)
    cat = tmp_path / "cat"
    first = build_catalog(BuildConfig(cat, images=folder, workers=1))
    assert first.images == len(files) - 5
    for f in files[:5]:
        shutil.move(held_back / f.name, f)
    second = build_catalog(BuildConfig(cat, images=folder, workers=1))
    assert (second.up_to_date, second.images) == (False, len(files))
    assert rows(cat, "select count(*), count(distinct path) from IMAGES") == [(len(files), len(files))]


# ---------- clean shutdown


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.slow
def test_killing_only_the_parent_leaves_no_worker_and_no_open_pipe(sig, raws, tmp_path):
    cat = tmp_path / "cat"
    pano_dir, csv_path = raws["big"]
    args = build_args(cat, raws["big"], "--workers", "2", "--shard-size", "1")
    proc = subprocess.Popen(cli(*args), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def workers_running() -> bool:
            return sum("spawn_main" in cmdline(c) for c in children(proc.pid)) >= 2

        wait_for(workers_running, what="two pool workers")
        kids = children(proc.pid)
        os.kill(proc.pid, sig)  # the parent only, not its process group
        start = time.monotonic()
        out, err = proc.communicate(timeout=5)  # EOF on both pipes: nobody holds them any more
        wait_for(lambda: not [k for k in kids if alive(k)], timeout=5 - (time.monotonic() - start), what="no child")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -sig
    assert len(kids) >= 2 and not [k for k in kids if alive(k)]
    assert not (cat / "build.json").exists() and lock_is_free(cat)


@pytest.mark.slow
def test_ctrl_c_still_keeps_finished_shards_and_says_interrupted(raws, tmp_path):
    cat = tmp_path / "cat"
    pano_dir, csv_path = raws["big"]
    args = build_args(cat, raws["big"], "--workers", "2", "--shard-size", "1")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = subprocess.Popen(cli(*args), cwd=ROOT, env=ENV, text=True, start_new_session=True, **pipes)
    job_dir = cat / "_jobs" / "database"
    wait_for(lambda: len(list(job_dir.glob("*.done"))) >= 2, what="two finished shards")
    kids = children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "interrupted: finished shards are kept; run the same command again to resume"
    assert "Traceback" not in err
    wait_for(lambda: not [k for k in kids if alive(k)], timeout=5, what="no child")
    done = len(list(job_dir.glob("*.done")))
    assert done >= 2 and not (cat / "build.json").exists()
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=1))
    assert r.shards_skipped >= done and (r.panoramas, r.images) == (40, CROPS * 40)


def test_lock_holder_text_survives_a_lock_taken_in_this_process(tmp_path):
    """Re-entrant in one thread (a library writer inside another); another thread waits for it."""
    cat = tmp_path / "cat"
    cat.mkdir()
    order: list[str] = []
    with writer_lock(cat, task="outer"):
        with writer_lock(cat, task="inner"):
            order.append("inner")
        info = json.loads((cat / LOCK_FILE).read_text())
        assert (info["pid"], info["task"]) == (os.getpid(), "outer")

        def other() -> None:
            with writer_lock(cat, task="thread", on_wait=lambda line: order.append("waited")):
                order.append("thread")

        t = threading.Thread(target=other)
        t.start()
        wait_for(lambda: "waited" in order, what="the other thread to wait")
        order.append("outer done")
    t.join(timeout=10)
    assert order == ["inner", "waited", "outer done", "thread"]
