"""The steps after the review queue is updated: image chips for the cases, then notifications.

:func:`s3tr.nightly.pipeline.run_pipeline` stays free of these dependencies and calls whatever
``post_steps`` its caller gives; ``s3tr nightly`` and ``s3tr demo`` give :func:`default_post_steps`.
A failing step is recorded as a failure of the run (a partial run, exit code 3) and never stops the
other steps: the queue is already committed, and a rerun cuts the missing chips and sends what is
still due (both steps are idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from s3tr.nightly.config import RunConfig
from s3tr.nightly.pipeline import Failure, PostStep, RunResult

__all__ = ["chips_step", "default_post_steps", "notify_step"]

log = logging.getLogger(__name__)


def _guarded(name: str, fn: Callable[[RunResult, Engine], None]) -> PostStep:
    def step(result: RunResult, engine: Engine) -> None:
        try:
            fn(result, engine)
        except Exception as exc:  # a post step never loses the committed queue or the other steps
            log.exception("post step %s failed", name)
            result.failures.append(Failure(name, "post-review step", f"{type(exc).__name__}: {exc}"))

    step.__name__ = f"{name}_step"
    return step


def chips_step(config: RunConfig, *, scheduler: str | None = None) -> PostStep:
    """Cut the image chips of the parcels with an active case (for the instructors' console).

    With a ``scheduler`` (the run's Dask cluster) each acquisition is cut by a task there, as the
    extraction is: the first night of a national season opens about a million cases. Without one,
    threads of the run process cut them (a run's LocalCluster is closed by then, and starting one
    costs more than a usual night's few new chips).
    """
    from contextlib import nullcontext

    from s3tr.decide.rules import load_ruleset
    from s3tr.imagery.local import LocalStacSource
    from s3tr.review.chips import write_case_chips

    def run(result: RunResult, engine: Engine) -> None:
        parcels = result.parcels
        communes = (
            {str(k): str(v) for k, v in zip(parcels["id_parcel"], parcels["commune"], strict=True) if v}
            if "commune" in parcels.columns
            else {}
        )
        if scheduler:
            from s3tr.nightly.cluster import dask_client

            cluster = dask_client(scheduler, workers=config.workers)
        else:
            cluster = nullcontext(None)
        with cluster as client:
            done = write_case_chips(
                Path(result.workdir),
                LocalStacSource(config.catalog),
                db_url=engine.url.render_as_string(hide_password=False),
                communes=communes,
                ruleset=load_ruleset(config.campaign, config.region),
                client=client,
            )
        # A parcel without a clear date to show is not a failure of the run: the console draws its outline.
        log.info(
            "chips: %d parcels, %d written, %d kept, %d without a chip",
            done.parcels,
            done.written,
            done.kept,
            len(done.problems),
        )

    return _guarded("chips", run)


def notify_step() -> PostStep:
    """Deliver the notifications the run made due (flag changes, reminders, digests)."""
    from s3tr.notify.worker import deliver_pending

    def run(result: RunResult, engine: Engine) -> None:
        summary = deliver_pending(engine)
        log.info("notifications: %s", summary.as_dict())

    return _guarded("notify", run)


def default_post_steps(
    config: RunConfig, *, notify: bool = True, scheduler: str | None = None
) -> list[PostStep]:
    """Chips (cut on the Dask cluster at ``scheduler`` if one is given), then notifications if ``notify``."""
    return [chips_step(config, scheduler=scheduler), *([notify_step()] if notify else [])]
