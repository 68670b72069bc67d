"""``vgtrain embed --executor ray``: the shards of :func:`vgtrain.embed.plan` computed by a pool of Ray actors.

The plan, the shard files, their keys and ``_meta.json`` are those of the local executor
(:func:`vgtrain.embed.run_embed` decides which shards are left and writes ``_meta.json``), so a run
started locally resumes on Ray and vice versa. Each actor loads the model once (in its constructor)
and then runs :func:`vgtrain.embed.embed_shard` for one shard after another, which writes the shard
atomically, exactly as the local executor does. Actors ask for ``num_gpus=1`` when the descriptors
are computed on CUDA (``--device cuda``, or ``auto`` on a cluster with GPUs), else ``num_cpus=1``;
there are as many actors as the cluster has GPUs (CPUs), at most one per shard left. An actor whose
process dies is restarted and its shard retried (:data:`MAX_RETRIES` times).

Without ``address`` a local Ray cluster is started for the run and shut down after it; with
``address`` (``ray://host:10001``, ``host:6379`` or ``auto``) the run goes to that cluster, whose
nodes must have this ``vgtrain`` installed and see the manifest's images and ``--out`` at the same
paths (a shared file system). When Ray is already initialised in this process (a notebook, a
test), that session is used and left up. vgtrain's own module: it never imports vgdata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from vgtrain.errors import VgtrainError

MAX_RETRIES = 2
"""Times Ray restarts a dead actor and re-runs its shard."""

RAY_MISSING = "--executor ray needs the ray extra: pip install 'vgdata[ray]'"


class RayMissingError(VgtrainError):
    """``--executor ray`` without ray installed (exit code 2, like a usage error)."""

    exit_code = 2


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`RayMissingError` naming the extra."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(RAY_MISSING) from None
    return ray


class _EmbedActor:
    """One Ray actor: the model loaded once on ``device`` by ``load(weights, device)`` (a per-process cache),
    then one shard per :meth:`embed` call, written by ``shard(manifest, rows, weights, settings)``."""

    def __init__(self, load: Callable[[Any, str], Any], shard: Callable[..., str], weights: Any, device: str) -> None:
        load(weights, device)  # loaded now, once; ``shard`` finds it in the process cache
        self.shard, self.weights = shard, weights

    def embed(self, manifest: str, rows: Any, settings: Any) -> int:
        """Compute and write one shard; return its index in the plan."""
        self.shard(manifest, rows, self.weights, settings)
        return rows.index


def ray_device(ray: Any, device: str) -> str:
    """``cuda`` or ``cpu`` for the actors: ``auto`` is cuda when the cluster has a GPU."""
    if device == "auto":
        return "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
    if device.startswith("cuda") and ray.cluster_resources().get("GPU", 0) < 1:
        raise VgtrainError(f"--device {device}: the Ray cluster has no GPU; use --device cpu (or auto)")
    return "cuda" if device.startswith("cuda") else device


def ray_embed(
    manifest: str,
    shards: Sequence[Any],
    weights: Any,
    settings: Any,
    *,
    load: Callable[[Any, str], Any],
    shard: Callable[..., str],
    device: str,
    address: str | None = None,
    done: Callable[[int], None] | None = None,
) -> str:
    """Write every shard of ``shards`` on a Ray actor pool; ``done(index)`` as each one is written.

    ``shards``, ``weights``, ``settings``: :class:`vgtrain.embed.ShardRows`, ``WeightsSpec``,
    ``EmbedSettings``; ``load`` and ``shard``: :func:`vgtrain.embed._model` and ``embed_shard`` (passed
    in, not imported: this module must not import :mod:`vgtrain.embed`, which imports it).

    ``device`` is the ``--device`` option (auto, cpu, cuda), resolved on the cluster; the device the
    actors used is returned. The first exception a shard raises is raised here, as its own type.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(include_dashboard=False, **quiet)
        started = True
    try:
        dev = ray_device(ray, device)
        if not shards:
            return dev
        from ray.util import ActorPool

        res = ray.cluster_resources()
        need = {"num_gpus": 1} if dev == "cuda" else {"num_cpus": 1}
        n = max(1, min(len(shards), int(res.get("GPU" if dev == "cuda" else "CPU", 1))))
        actor = ray.remote(**need, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)(_EmbedActor)
        actors = [actor.remote(load, shard, weights, dev) for _ in range(n)]
        pool = ActorPool(actors)
        shard_settings = replace(settings, device=dev, out=os.path.abspath(settings.out))  # any worker's cwd
        todo = [replace(s, paths=[os.path.abspath(p) for p in s.paths]) for s in shards]
        try:
            for index in pool.map_unordered(lambda a, s: a.embed.remote(manifest, s, shard_settings), todo):
                if done is not None:
                    done(index)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, BaseException) else e) from None
        finally:
            for a in actors:
                ray.kill(a)
        return dev
    finally:
        if started:
            ray.shutdown()
