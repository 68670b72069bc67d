"""Sharded, resumable map jobs on a local process pool.

A job is a list of ``(shard_id, payload)``. ``fn(payload)`` does the work of one shard,
writes its outputs atomically and returns a JSON-able dict of stats. When it returns,
a marker ``<job_dir>/<shard_id>.done`` holding those stats is written (atomically, by
the process that ran the shard). A re-run skips every shard that has a marker, so an
interrupted job (Ctrl-C, ``kill -9``, a crash) resumes with the remaining shards only.
Shard outputs must be a pure function of the payload, which makes a resumed job's
outputs identical to an uninterrupted one's.

``workers <= 1`` runs the shards in this process (no pickling, no start-up cost);
otherwise a ``spawn`` process pool is used (no fork after DuckDB/polars threads).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from vgdata.catalog import atomic_write_bytes

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


def read_marker(job_dir: Path, shard_id: str) -> dict | None:
    """Stats of a finished shard, or None when it has not finished."""
    p = marker_path(job_dir, shard_id)
    return json.loads(p.read_text()) if p.is_file() else None


def _run_and_mark(fn: ShardFn, job_dir: str, shard_id: str, payload: Payload) -> tuple[str, dict]:
    stats = fn(payload)
    atomic_write_bytes(marker_path(Path(job_dir), shard_id), json.dumps(stats, sort_keys=True).encode())
    return shard_id, stats


def run_shards(
    job_dir: Path,
    shards: list[tuple[str, Payload]],
    fn: ShardFn,
    *,
    workers: int,
    size_of: Callable[[Payload], int] = lambda p: 1,
    on_done: Callable[[str, dict, int], None] | None = None,
) -> dict[str, dict]:
    """Run every shard that has no completion marker; return the stats of all shards.

    ``size_of(payload)`` counts the items of a shard (for progress); ``on_done(shard_id,
    stats, items)`` is called in this process after each shard finishes, including the
    ones skipped because they were already done (with ``stats`` from the marker).
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    pending: list[tuple[str, Payload]] = []
    for shard_id, payload in shards:
        stats = read_marker(job_dir, shard_id)
        if stats is None:
            pending.append((shard_id, payload))
        else:
            results[shard_id] = stats
            if on_done:
                on_done(shard_id, stats, size_of(payload))
    sizes = {sid: size_of(p) for sid, p in pending}

    if workers <= 1 or len(pending) <= 1:
        for shard_id, payload in pending:
            _, stats = _run_and_mark(fn, str(job_dir), shard_id, payload)
            results[shard_id] = stats
            if on_done:
                on_done(shard_id, stats, sizes[shard_id])
        return results

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx) as pool:
        # Submit lazily, at most 2 shards per worker in flight, to bound memory.
        queue = list(reversed(pending))
        running = set()
        while queue or running:
            while queue and len(running) < 2 * workers:
                shard_id, payload = queue.pop()
                running.add(pool.submit(_run_and_mark, fn, str(job_dir), shard_id, payload))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                shard_id, stats = fut.result()
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
