"""The Dask client of a run: a given scheduler, or a LocalCluster started for the run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from s3tr.errors import S3trError

__all__ = ["ClusterError", "dask_client"]

log = logging.getLogger(__name__)


class ClusterError(S3trError, RuntimeError):
    """The Dask scheduler cannot be reached or the local cluster cannot start."""


@contextmanager
def dask_client(
    scheduler: str | None, *, workers: int, memory_limit: str = "4GB", processes: bool | None = None
) -> Iterator[Client]:
    """A Dask client for the run; the cluster (if started here) is closed on exit.

    Parameters
    ----------
    scheduler
        Address of an existing scheduler (``tcp://host:8786``); None starts a LocalCluster.
    workers
        Local worker count. One worker runs in a thread of the run process (no process spawn, so
        the small demo stays fast); it is the same Dask code path: tasks go through the scheduler,
        results come back as futures. More workers are separate processes, one thread each (the
        reduction is single-threaded numba; GDAL reads release the GIL in their own threads).
    processes
        Force worker processes (True) or threads (False); default: processes when ``workers > 1``.
        Memory limit of each local worker process; the nanny restarts a worker above it and the
        scheduler retries its task elsewhere.
    """
    cluster = None
    # The scheduler and in-process worker log every connection at INFO: noise in a run's log.
    dlog = logging.getLogger("distributed")
    level = dlog.level
    dlog.setLevel(max(level, logging.WARNING))
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            procs = workers > 1 if processes is None else processes
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=procs,
                memory_limit=memory_limit if procs else None,
                dashboard_address=":0",  # a free port: several runs may share a machine
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        dlog.setLevel(level)
        raise ClusterError(f"cannot reach the Dask scheduler {scheduler or '(local)'}: {exc}") from exc
    log.info("dask client %s (dashboard: %s)", client.scheduler.address, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        dlog.setLevel(level)
