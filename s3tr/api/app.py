"""The FastAPI application factory of the farmer and instructor API.

Nothing connects at import time: :func:`create_app` builds the app, and its lifespan creates
the database engine (and disposes of it at shutdown).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from s3tr.api.deps import ApiSettings, wait_for_token_touches
from s3tr.api.problems import Problem, install_problem_handlers
from s3tr.api.routes_console import router as console_router
from s3tr.api.routes_farmer import router as farmer_router
from s3tr.api.routes_instructor import router as instructor_router
from s3tr.api.routes_notifications import router as notifications_router
from s3tr.review.database import make_engine

__all__ = ["app_from_env", "create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
The s3tr API used by the farmers' mobile app and by the DDT instructors' tools.

* Authentication: `Authorization: Bearer <token>` (tokens from `s3tr accounts add-farmer` /
  `add-instructor`). A farmer sees only the data of their PACAGE, an instructor only their
  department's; anything else answers 404.
* Errors are `application/problem+json` documents (RFC 9457).
* Coordinates are WGS84 degrees (GeoJSON order: longitude, latitude); headings are degrees
  clockwise from north. Messages are in French unless `Accept-Language` prefers English.
"""


def create_app(
    *,
    db_url: str,
    workdir: Path | None = None,
    settings: ApiSettings | None = None,
    crop_model: object | None = None,
) -> FastAPI:
    """Build the API application.

    Parameters
    ----------
    db_url
        SQLAlchemy URL of the review database (at the head migration).
    workdir
        The run directory: series stores for evidence and re-scoring (``series/``) and the
        photo store (``photos/``). Without it, uploads answer 503 and corrections are not
        re-scored.
    settings
        Limits and photo-check tolerances (default :class:`ApiSettings`).
    crop_model
        The crop-group model used when re-scoring a corrected parcel (as in the nightly run).

    Returns
    -------
    FastAPI
        The application; its engine is created when the app starts (lifespan).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(db_url)
        app.state.engine = engine
        app.state.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        logger.info("API started on %s", engine.url.render_as_string(hide_password=True))
        # the long-lived objects of the start-up (modules, the crop model) leave the garbage
        # collector's generations: full collections then stay short instead of adding tens of
        # milliseconds to whichever request triggers them (a latency tail)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            wait_for_token_touches()
            engine.dispose()

    app = FastAPI(
        title="s3tr API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={},
    )
    app.state.settings = settings or ApiSettings()
    app.state.workdir = None if workdir is None else Path(workdir)
    app.state.crop_model = crop_model
    install_problem_handlers(app)
    app.include_router(farmer_router)
    app.include_router(instructor_router)
    app.include_router(console_router)
    app.include_router(notifications_router)
    # make sure the Problem schema is in the components even before any route refers to it
    app.openapi_schema = None
    _ = Problem
    return app


def app_from_env() -> FastAPI:
    """The app configured by ``S3TR_API_DB_URL`` and ``S3TR_API_WORKDIR`` (uvicorn ``--factory``).

    Used by :func:`s3tr.api.commands.serve` to run several worker processes, which uvicorn
    can only start from an import string.
    """
    import os

    from s3tr.nightly.pipeline import load_crop_model

    url = os.environ.get("S3TR_API_DB_URL")
    if not url:
        raise RuntimeError("S3TR_API_DB_URL is not set: start the API with `s3tr serve`")
    workdir = os.environ.get("S3TR_API_WORKDIR")
    return create_app(db_url=url, workdir=Path(workdir) if workdir else None, crop_model=load_crop_model())
