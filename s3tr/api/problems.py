"""Errors as ``application/problem+json`` (RFC 9457) for every 4xx and 5xx answer.

Routes raise :class:`ApiProblem` (or let a known :mod:`s3tr` error through); the handlers
installed by :func:`install_problem_handlers` turn every failure — validation errors, unknown
routes, wrong methods, domain errors and unexpected exceptions — into a problem document with
``type, title, status, detail, instance``. A 5xx never leaks a traceback: it is logged and the
client gets a short message with the request path.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from s3tr.errors import S3trError
from s3tr.review.cases import CaseConflictError, CaseNotFoundError, CaseTransitionError
from s3tr.review.requests import DuplicatePhotoError, PhotoRequestError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApiProblem",
    "Problem",
    "install_problem_handlers",
    "problem_responses",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://s3tr.invalid/problems/"
"""Base of the problem ``type`` URIs (identifiers; each names the kind of failure)."""

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    500: "Internal server error",
    503: "Service unavailable",
}
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    428: "precondition-required",
    500: "internal-error",
    503: "unavailable",
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="URI identifying the kind of problem.", examples=[PROBLEM_BASE + "not-found"]
    )
    title: str = Field(description="Short summary of the kind of problem.", examples=["Not found"])
    status: int = Field(description="HTTP status code.", ge=400, le=599, examples=[404])
    detail: str = Field(description="What went wrong for this request, and how to fix it.")
    instance: str = Field(description="The request path this problem occurred on.")
    code: str | None = Field(None, description="Stable machine code of the problem, when there is one.")
    detail_fr: str | None = Field(None, description="The detail in French, when available.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Validation errors: location, message and type of each invalid field."
    )


class ApiProblem(Exception):  # noqa: N818 (it *is* the problem document, not an "Error")
    """An HTTP failure to answer as a problem document.

    Parameters
    ----------
    status
        HTTP status code (4xx/5xx).
    detail
        Clear message for the client: what went wrong and how to fix it.
    code
        Stable machine code (becomes the last part of ``type``); default from the status.
    headers
        Extra response headers (``WWW-Authenticate`` for 401).
    extra
        Extra members of the problem document (e.g. ``detail_fr``).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _SLUGS.get(status, "error")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response for ``request``."""
    slug = code or _SLUGS.get(status, "error")
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": slug,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.detail, code=exc.code, title=exc.title, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(exc.errors())
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem_response(
            request, 422, f"invalid request: {where}", code="invalid-input", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        return problem_response(request, exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(CaseNotFoundError)
    async def _case_missing(request: Request, exc: CaseNotFoundError) -> JSONResponse:
        return problem_response(request, 404, str(exc))

    @app.exception_handler(CaseConflictError)
    async def _conflict(request: Request, exc: CaseConflictError) -> JSONResponse:
        return problem_response(request, 409, str(exc), code="version-conflict")

    @app.exception_handler(CaseTransitionError)
    async def _transition(request: Request, exc: CaseTransitionError) -> JSONResponse:
        return problem_response(request, 409, str(exc), code="invalid-transition")

    @app.exception_handler(PhotoRequestError)
    async def _request_closed(request: Request, exc: PhotoRequestError) -> JSONResponse:
        return problem_response(request, 409, str(exc), code="photo-request-closed")

    @app.exception_handler(DuplicatePhotoError)
    async def _duplicate(request: Request, exc: DuplicatePhotoError) -> JSONResponse:
        return problem_response(request, 409, str(exc), code="duplicate-photo")

    @app.exception_handler(S3trError)
    async def _s3tr(request: Request, exc: S3trError) -> JSONResponse:
        logger.exception("unexpected s3tr error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, f"the server could not complete the request ({type(exc).__name__})"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "the server could not complete the request; it has been logged")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem answers with these statuses."""
    descriptions = {
        400: "Malformed request (e.g. missing Idempotency-Key).",
        401: "Missing, malformed, expired or revoked bearer token.",
        403: "The token's role may not use this endpoint.",
        404: "No such resource, or not yours to see.",
        409: "Conflict: the resource changed meanwhile, or the action is not allowed in its state.",
        412: "If-Match does not match the current version.",
        413: "Upload larger than the limit.",
        415: "Wrong content type.",
        422: "Invalid input (fields, coordinates, photo content).",
        500: "Unexpected server error.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        entry: dict[str, Any] = {
            "description": descriptions.get(s, _TITLES.get(s, "Error")),
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if s == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": 'The authentication scheme: Bearer realm="s3tr", error="invalid_token".',
                    "schema": {"type": "string"},
                }
            }
        out[s] = entry
    return out
