"""api stage: the farmer (mobile) and instructor HTTP API over the review database.

:func:`~s3tr.api.app.create_app` builds the FastAPI app (engine created at startup, never at
import); :mod:`s3tr.api.commands` holds the ``s3tr accounts`` commands and :func:`serve`.
"""

from __future__ import annotations

from s3tr.api.app import create_app
from s3tr.api.deps import ApiSettings

__all__ = ["ApiSettings", "create_app"]
