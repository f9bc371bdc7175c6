"""Read endpoints of the instructor console: image chips, communes and colleagues.

Authorised exactly like the instructor routes: an instructor token, and 404 for anything outside
the instructor's department. The chips are written by the pipeline
(:func:`s3tr.review.chips.write_case_chips`); these routes only serve the files and their index.
The console's own page and assets (``/console``) are mounted from :mod:`s3tr.console`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy import select

from s3tr.api.deps import CurrentInstructor, SessionDep
from s3tr.api.problems import ApiProblem, problem_responses
from s3tr.api.views import case_in_department
from s3tr.console import router as console_pages
from s3tr.review.models import Case, Declaration, User

__all__ = ["router"]

_api = APIRouter(prefix="/api/v1", tags=["console"])
_CaseId = Annotated[int, PathParam(ge=1, le=2**62, description="The case id.")]
# s3tr.review.chips (rasters, zarr) is imported on first use: the API's workers start faster.
_CHIP_NAME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}_[A-Za-z0-9]{1,16}_[a-z]{1,16}\.png$")


def _case(session: Any, case_id: int, user: Any) -> Case:
    case = case_in_department(session, case_id, user.department)
    if case is None:
        raise ApiProblem(404, f"no case {case_id} in your department")
    return case


@_api.get("/cases/{case_id}/chips", responses=problem_responses(401, 403, 404, 422))
def case_chips(
    case_id: _CaseId, request: Request, user: CurrentInstructor, session: SessionDep
) -> dict[str, Any]:
    """The chip index of a case's parcel (dates, kinds, georeferencing); ``chips`` is empty when none."""
    from s3tr.review.chips import read_chip_index

    case = _case(session, case_id, user)
    workdir: Path | None = request.app.state.workdir
    index = read_chip_index(workdir, case.id_parcel) if workdir is not None else None
    if index is None:
        return {
            "id_parcel": case.id_parcel,
            "campaign": case.campaign,
            "commune": None,
            "cases": [],
            "chips": [],
        }
    return index


@_api.get(
    "/cases/{case_id}/chips/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "The chip image."},
        **problem_responses(401, 403, 404, 422),
    },
)
def chip_file(
    case_id: _CaseId,
    name: Annotated[str, PathParam(max_length=64, description="A file name from the chip index.")],
    request: Request,
    user: CurrentInstructor,
    session: SessionDep,
) -> FileResponse:
    """One chip image (PNG) of a case's parcel."""
    from s3tr.review.chips import parcel_chips_dir, read_chip_index

    case = _case(session, case_id, user)
    workdir: Path | None = request.app.state.workdir
    index = read_chip_index(workdir, case.id_parcel) if workdir is not None else None
    # only names listed in the index are served: no path is ever built from free input
    listed = {c.get("file") for c in (index or {}).get("chips", [])}
    if not _CHIP_NAME.match(name) or name not in listed or workdir is None:
        raise ApiProblem(404, f"no chip {name!r} for case {case_id}")
    path = parcel_chips_dir(workdir, case.id_parcel) / name
    if not path.is_file():
        raise ApiProblem(404, f"the chip file {name} is missing")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@_api.get("/console/communes", responses=problem_responses(401, 403, 422))
def communes(user: CurrentInstructor, session: SessionDep) -> dict[str, str]:
    """``id_parcel -> commune`` (INSEE code) of my department's cases, when the parcels file gave one."""
    # A join, not the per-case subquery: every version of a declaration carries the current commune.
    same_parcel = (Declaration.campaign == Case.campaign) & (Declaration.id_parcel == Case.id_parcel)
    rows = session.execute(
        select(Case.id_parcel, Declaration.commune)
        .join(Declaration, same_parcel)
        .where(Case.department == user.department, Declaration.commune.is_not(None))
        .distinct()
    ).all()
    return {str(p): str(c) for p, c in rows if c}


@_api.get("/console/instructors", responses=problem_responses(401, 403, 422))
def instructors(user: CurrentInstructor, session: SessionDep) -> list[dict[str, Any]]:
    """The active instructors of my department (to assign a case)."""
    rows = session.scalars(
        select(User)
        .where(User.role == "instructor", User.active.is_(True), User.department == user.department)
        .order_by(User.username)
    ).all()
    return [{"user_id": u.id, "username": u.username, "display_name": u.display_name} for u in rows]


#: The console's API routes and its pages, included by the app factory in one line.
router = APIRouter()
router.include_router(_api)
router.include_router(console_pages)
