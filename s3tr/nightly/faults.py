"""Fault injection for the crash tests: ``S3TR_FAULT`` kills the process at a named point.

The nightly run calls :func:`fault_point` at well-defined places. When ``S3TR_FAULT`` names the
point, the current process is killed with ``SIGKILL`` (no cleanup, no ``finally``: the harshest
crash there is). Points:

* ``after:plan``, ``after:markers``, ``after:sync``, ``after:state``, ``after:outputs``
  (stage boundaries of the run process);
* ``after:extract:N`` - after the N-th item was written to its store and recorded done;
* ``in:extract:N`` - after the N-th item was written to its store but *before* it is recorded
  done (the window a rerun must reconcile);
* ``task:N`` - inside the N-th task of the run (``N`` counts from 1 in plan order) or
  ``task:ITEM_ID``: kills the process running the task (the run process when tasks run in
  threads of it, a Dask worker otherwise), after the imagery was read.

``S3TR_FAULT_ONCE=/path/file`` makes the fault fire once only: the file is created just before
the kill and its existence disarms the fault (how the worker-kill test lets Dask's retry succeed).
Without ``S3TR_FAULT`` the calls cost one dictionary lookup.

:func:`run_cli_in_child` runs ``s3tr`` in a child process forked from a fork server that has
already imported the package (a crash test then costs the run, not the interpreter start-up).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["fault_point", "run_cli_in_child"]

_PRELOAD = ["s3tr.cli", "s3tr.nightly.pipeline", "s3tr.nightly.tasks", "distributed"]


def fault_point(*parts: object) -> None:
    """Kill this process with SIGKILL when ``S3TR_FAULT`` equals ``":".join(parts)``."""
    spec = os.environ.get("S3TR_FAULT")
    if not spec or spec != ":".join(str(p) for p in parts):
        return
    once = os.environ.get("S3TR_FAULT_ONCE")
    if once:
        marker = Path(once)
        try:
            # O_EXCL: of two racing processes only one fires.
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _cli_child(args: list[str], env: dict[str, str]) -> None:
    os.environ.update(env)
    from s3tr.cli import app

    app(args, prog_name="s3tr")  # standalone: exits with the command's exit code


def run_cli_in_child(args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300) -> int:
    """Run ``s3tr ARGS`` in a child process with extra environment ``env``; return its exit code.

    A child killed by a signal returns minus the signal number (``-9`` for SIGKILL).
    """
    # forkserver: children are forked from a clean single-threaded server (fork from a
    # multi-threaded test process is unsafe with GDAL and numba), with the package preloaded.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    proc = ctx.Process(target=_cli_child, args=(list(args), dict(env or {})))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise TimeoutError(f"s3tr {' '.join(args)} did not finish in {timeout} s")
    return int(proc.exitcode)
