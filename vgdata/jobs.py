"""Sharded, resumable map jobs on a local process pool.

A job is a list of ``(shard_id, payload)``. ``fn(payload)`` does the work of one shard,
writes its outputs atomically and returns a JSON-able dict of stats. When it returns,
a marker ``<job_dir>/<shard_id>.done`` holding those stats is written (atomically, by
the process that ran the shard). A re-run skips every shard that has a marker, so an
interrupted job (Ctrl-C, ``kill -9``, a crash) resumes with the remaining shards only.
Shard outputs must be a pure function of the payload, which makes a resumed job's
outputs identical to an uninterrupted one's.

Markers are keyed by the plan: given ``keys`` (shard id -> ``{name: key}``, e.g. a hash of
the shard's inputs, their file identities and the parameters), a marker counts only when
its keys equal the plan's (the names in ``match``); any other marker is deleted before its
shard runs again, so a shard of other inputs is never adopted, and a shard whose marker is
gone is never taken for done while its old outputs are still on disk. :func:`shard_keys` makes
those keys for build jobs (parameters, payload, generator, and each source file's size+mtime or,
with ``verify``, its sha256).

``workers <= 1`` runs the shards in this process (no pickling, no start-up cost);
otherwise a ``spawn`` process pool is used (no fork after DuckDB/polars threads).
:func:`local_map` is that executor on its own (the one local process pool of vgdata: map
jobs and ``vgdata synth`` rendering both run through it). Workers
die with this process whatever ends it (``kill -9`` included): on Linux each arms
``PR_SET_PDEATHSIG`` (SIGKILL), and a watchdog thread exits when its parent changes, so
no orphan keeps working or holds the caller's pipes open. Ctrl-C reaches the whole
process group as before: the finished shards keep their markers.

``run_shards(..., executor="ray")`` runs the same shards as Ray tasks instead
(:mod:`vgdata.ray_exec`, imported only then); markers and keys do not depend on the
executor, so a job started on one resumes on the other.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from vgdata import __version__
from vgdata.fsio import atomic_write_bytes

Payload = Any
ShardFn = Callable[[Payload], dict]


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def marker_path(job_dir: Path, shard_id: str) -> Path:
    """The completion marker of one shard."""
    return job_dir / f"{shard_id}.done"


def read_marker(
    job_dir: Path, shard_id: str, keys: Mapping[str, str] | None = None, match: Sequence[str] | None = None
) -> dict | None:
    """Stats of a finished shard, or None when it has not finished for this plan.

    With ``keys``, the marker must hold the same value for every name in ``match`` (default:
    all of ``keys``); a marker of another plan, or one without keys, does not count.
    """
    p = marker_path(job_dir, shard_id)
    try:
        marker = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: run the shard again
    keyed = isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT
    if keys is None:
        return marker["stats"] if keyed else marker
    if not keyed:
        return None
    names = list(keys) if match is None else list(match)
    held = marker.get("keys") or {}
    if any(name not in keys or held.get(name) != keys[name] for name in names):
        return None
    return marker["stats"]


MARKER_FORMAT = "vgdata-marker/1"


def _marker_bytes(stats: dict, keys: Mapping[str, str] | None) -> bytes:
    body: Any = stats if keys is None else {"format": MARKER_FORMAT, "keys": dict(keys), "stats": stats}
    return json.dumps(body, sort_keys=True).encode()


def _run_and_mark(
    fn: ShardFn, job_dir: str, shard_id: str, payload: Payload, keys: Mapping[str, str] | None = None
) -> tuple[str, dict]:
    stats = fn(payload)
    atomic_write_bytes(marker_path(Path(job_dir), shard_id), _marker_bytes(stats, keys))
    return shard_id, stats


# ---------- workers die with their parent

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.5
"""How often a worker's watchdog thread checks that its parent is alive."""


def _worker_init(parent_pid: int) -> None:
    """Initializer of every pool worker: die when the parent dies, however it dies.

    ``PR_SET_PDEATHSIG`` asks the kernel for SIGKILL when the thread that started this
    worker ends (Linux); the check right after it catches a parent that died before the
    request, and the watchdog thread covers other systems (and a parent that started the
    pool from a thread that has ended while the process lives on).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
    import warnings

    from vgdata.errors import one_line_warning

    warnings.showwarning = one_line_warning  # a worker's warning is one line too, as in the CLI
    # Ctrl-C reaches the whole process group: the parent reports it (finished shards are kept, "interrupted");
    # a worker stops at once, silently, instead of printing its own KeyboardInterrupt traceback (its shard's
    # outputs are written atomically, so an unfinished shard leaves nothing behind and runs again next time).
    signal.signal(signal.SIGINT, _exit_quietly)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="vgdata-parent-watch", daemon=True).start()


def _exit_quietly(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent_pid:  # re-parented: the parent is gone
            os._exit(1)


# ---------- the local executor
def local_map(fn: Callable[..., Any], calls: Sequence[tuple], *, workers: int) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*calls[i])`` for every ``i``; yield ``(i, result)`` as each call finishes.

    ``workers <= 1`` (or a single call) runs the calls here, in order, with no pickling.
    Otherwise a ``spawn`` pool of ``min(workers, len(calls))`` processes runs them, each
    worker armed by :func:`_worker_init` (it dies with this process, Ctrl-C stops it quietly),
    with at most 2 calls per worker in flight to bound memory; results come in completion
    order. ``fn`` and the arguments must pickle (``fn`` a module-level function). The first
    exception a call raises is raised here, after the calls in flight have finished.
    """
    if workers <= 1 or len(calls) <= 1:
        for i, args in enumerate(calls):
            yield i, fn(*args)
        return
    ctx = multiprocessing.get_context("spawn")
    workers = min(workers, len(calls))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        queue = list(reversed(list(enumerate(calls))))
        running: dict[Any, int] = {}
        while queue or running:
            while queue and len(running) < 2 * workers:
                i, args = queue.pop()
                running[pool.submit(fn, *args)] = i
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = running.pop(fut)
                yield i, fut.result()


def run_shards(
    job_dir: Path,
    shards: list[tuple[str, Payload]],
    fn: ShardFn,
    *,
    workers: int,
    size_of: Callable[[Payload], int] = lambda p: 1,
    on_done: Callable[[str, dict, int], None] | None = None,
    keys: Mapping[str, Mapping[str, str]] | None = None,
    match: Sequence[str] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, dict]:
    """Run every shard that has no completion marker for this plan; return the stats of all shards.

    ``size_of(payload)`` counts the items of a shard (for progress); ``on_done(shard_id,
    stats, items)`` is called in this process after each shard finishes, including the
    ones skipped because they were already done (with ``stats`` from the marker).
    ``keys[shard_id]`` (names -> key strings) are written into each marker, and ``match``
    names the keys a marker must share with the plan to count (default: all); see
    :func:`read_marker`. Without ``keys`` any marker counts (the caller keys ``job_dir``).
    ``executor`` runs the pending shards on the local pool (``"local"``, :func:`local_map`) or
    as Ray tasks (``"ray"``, :func:`vgdata.ray_exec.ray_map`, on the cluster at ``ray_address``
    or a local one of ``workers`` CPUs): the same shard function, markers and keys on both.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    pending: list[tuple[str, Payload]] = []
    for shard_id, payload in shards:
        shard_keys = None if keys is None else keys[shard_id]
        stats = read_marker(job_dir, shard_id, shard_keys, match)
        if stats is None:
            # A marker of another plan goes first: if this run dies mid-shard, the shard's
            # outputs are then never taken for the other plan's.
            marker_path(job_dir, shard_id).unlink(missing_ok=True)
            pending.append((shard_id, payload))
        else:
            results[shard_id] = stats
            if on_done:
                on_done(shard_id, stats, size_of(payload))
    sizes = {sid: size_of(p) for sid, p in pending}

    def key_of(shard_id: str) -> Mapping[str, str] | None:
        return None if keys is None else keys[shard_id]

    calls = [(fn, str(job_dir), shard_id, payload, key_of(shard_id)) for shard_id, payload in pending]
    if executor == "ray" and calls:
        from vgdata.ray_exec import ray_map

        mapped = ray_map(_run_and_mark, calls, workers=workers, address=ray_address)
    else:
        mapped = local_map(_run_and_mark, calls, workers=workers)
    for _, (shard_id, stats) in mapped:
        results[shard_id] = stats
        if on_done:
            on_done(shard_id, stats, sizes[shard_id])
    return results


def cut_shards(catalog: Path, collection: str, items: list, size: int, common: dict) -> list[tuple[str, dict]]:
    """Cut ``items`` into shards of ``size``: ``(shard_id, payload)``, ``payload["items"]`` the slice.

    Every payload also carries ``catalog``, ``collection``, ``shard`` and ``common``'s keys.
    Shard ids are zero-padded positions, so a re-plan of the same inputs gives the same ids.
    """
    out = []
    for k in range(0, len(items), size):
        sid = f"{k // size:06d}"
        payload = {"catalog": str(catalog), "collection": collection, "shard": sid, **common}
        payload["items"] = items[k : k + size]
        out.append((sid, payload))
    return out


# ---------- plan keys: what each shard is made from


def shard_keys(plan_key: str, shards: list[tuple[str, dict]], fn: Callable, *, verify: bool = False) -> dict:
    """Each shard's keys: ``{"stat": ...}`` and, with ``verify``, ``{"content": ...}`` too (sha256 hex).

    A key hashes the build parameters (``plan_key``), the shard id, its payload (rows and
    shard parameters, less the catalog's own location, so a moved catalog keeps its keys),
    the shard function (the generator of the outputs) and, per source file the shard reads,
    ``size:mtime_ns`` (``stat``) or the sha256 of its bytes (``content``). A missing or
    unreadable file has an identity of its own, so its later arrival is a change.
    """
    generator = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    files = {sid: [_item_file(payload, item) for item in payload["items"]] for sid, payload in shards}
    content: dict[Path, str] = {}
    if verify:
        unique = sorted({f for fs in files.values() for f in fs if f is not None})
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            content = dict(zip(unique, pool.map(_content_identity, unique), strict=True))
    keys: dict[str, dict[str, str]] = {}
    for sid, payload in shards:
        shape = {k: v for k, v in payload.items() if k not in ("catalog", "crop_root")}
        base = json.dumps(
            {"plan": plan_key, "shard": sid, "payload": shape, "generator": generator, "tool": __version__},
            sort_keys=True,
            default=str,
        )
        stat = [None if f is None else _stat_identity(f) for f in files[sid]]
        keys[sid] = {"stat": _sha(base, stat)}
        if verify:
            keys[sid]["content"] = _sha(base, [None if f is None else content[f] for f in files[sid]])
    return keys


def _sha(base: str, identities: list) -> str:
    return hashlib.sha256((base + json.dumps(identities)).encode()).hexdigest()


def _item_file(payload: dict, item: Any) -> Path | None:
    """The source file one shard item is read from (panoramas: pano_dir/source_path; imports,
    photos and poses: folder/item or folder/src), or None when the item names no file."""
    if isinstance(item, str) and "folder" in payload:
        return Path(payload["folder"]) / item
    if isinstance(item, dict):
        if "source_path" in item and "pano_dir" in payload:
            return Path(payload["pano_dir"]) / item["source_path"]
        if "src" in item and "folder" in payload:
            return Path(payload["folder"]) / item["src"]
    return None


def _stat_identity(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"error {e.errno}"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _content_identity(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"error {e.errno}"
    return h.hexdigest()
