"""The Ray executor of vgdata's sharded jobs (``--executor ray``).

:func:`ray_map` has the contract of :func:`vgdata.jobs.local_map`: it runs ``fn(*calls[i])``
for every ``i`` and yields ``(i, result)`` as each call finishes. Each call is one Ray task
(``num_cpus=1``); a task whose worker process dies (killed, out of memory, a lost node) is
retried up to :data:`MAX_RETRIES` times by Ray. :func:`vgdata.jobs.run_shards` passes the same
shard function as on the local pool, wrapped so the worker writes the shard's outputs
atomically and then its completion marker; a retried shard therefore starts from nothing
(a killed attempt leaves no output and no marker behind) and a shard is never counted twice.
Markers and plan keys do not depend on the executor, so a job started on one executor resumes
on the other.

Without ``address`` a local Ray cluster of ``workers`` CPUs is started for the job and shut
down after it; with ``address`` (``ray://host:10001``, ``host:6379`` or ``auto``) the job is
submitted to that running cluster, and ``workers <= 0`` means all its CPUs. When Ray is
already initialised in this process (a notebook, a test), that session is used and left up.
Worker processes must import the same ``vgdata`` (install it on every node) and see the
catalog and source folders at the same paths (a shared file system).

Ray is an optional extra: it is imported here only, when a job asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from vgdata.errors import UsageError

MAX_RETRIES = 3
"""Times Ray re-runs a task whose worker process died."""

RAY_MISSING = "--executor ray needs the ray extra: pip install 'vgdata[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    """Body of every Ray task: one call, in a Ray worker process."""
    import warnings

    from vgdata.errors import one_line_warning

    warnings.showwarning = one_line_warning
    return fn(*args)


def ray_map(
    fn: Callable[..., Any], calls: Sequence[tuple], *, workers: int, address: str | None = None
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*calls[i])`` as Ray tasks; yield ``(i, result)`` in completion order.

    At most ``2 * workers`` tasks are in flight (bounding the driver's memory for large jobs).
    The first exception a call raises is raised here (as its own type, not wrapped), after the
    tasks in flight have finished; Ctrl-C cancels the tasks in flight.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, **quiet)
        started = True
    try:
        if workers <= 0:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_call)
        fn_ref = ray.put(fn)
        yield from _drive(ray, task, fn_ref, calls, 2 * workers)
    finally:
        if started:
            ray.shutdown()


def _drive(ray: Any, task: Any, fn_ref: Any, calls: Sequence[tuple], window: int) -> Iterator[tuple[int, Any]]:
    queue = list(reversed(list(enumerate(calls))))
    running: dict[Any, int] = {}
    error: BaseException | None = None
    try:
        while queue or running:
            while error is None and queue and len(running) < window:
                i, args = queue.pop()
                running[task.remote(fn_ref, args)] = i
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                i = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    error = error or _cause(e)
                    continue
                if error is None:
                    yield i, result
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    if error is not None:
        raise error


def _cause(e: Exception) -> BaseException:
    """The exception the task itself raised (a VgdataError stays one line), else Ray's."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else e
