"""Receiving a photo upload: bounded streaming, multipart parsing, atomic storage.

The body is read chunk by chunk and refused (413) as soon as it exceeds the limit, before
anything is parsed or written. The photo file is written under
``<workdir>/photos/<sha256[:2]>/<sha256>.jpg`` through a temporary file in the same folder,
flushed and renamed, so a crash never leaves a half-written photo under its final name; the
caller removes the file again when the database row cannot be committed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from s3tr.api.problems import ApiProblem

__all__ = ["ReceivedUpload", "read_upload", "remove_stored", "store_photo"]

# multipart framing around the file (boundaries, part headers, a small "view" field)
_OVERHEAD = 64 * 1024
_JPEG_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg"}


class ReceivedUpload:
    """The parsed upload: the file bytes, its declared content type and the other fields."""

    def __init__(self, data: bytes, content_type: str, fields: dict[str, str]) -> None:
        self.data = data
        self.content_type = content_type
        self.fields = fields


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiProblem(400, "invalid Content-Length header") from None
        if size > limit:
            raise ApiProblem(
                413, f"the upload is {size} bytes; the limit is {limit - _OVERHEAD} bytes per photo"
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiProblem(413, f"the upload exceeds the limit of {limit - _OVERHEAD} bytes per photo")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: Request, *, max_bytes: int) -> ReceivedUpload:
    """Read a ``multipart/form-data`` upload with one JPEG in the field ``file``.

    Raises
    ------
    ApiProblem
        415 when the request is not multipart or the file is not declared as a JPEG, 413 when
        too large (counted while streaming), 422 when the ``file`` field is missing.
    """
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiProblem(
            415,
            "send the photo as multipart/form-data with the JPEG in the field 'file' "
            f"(got {ctype or 'no content type'})",
        )
    body = await _bounded_body(request, max_bytes + _OVERHEAD)

    async def replay() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=10, max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiProblem(422, f"malformed multipart body: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiProblem(422, "the multipart body has no file in the field 'file'", code="missing-file")
        data = await upload.read()
        if len(data) > max_bytes:
            raise ApiProblem(413, f"the photo is {len(data)} bytes; the limit is {max_bytes} bytes")
        file_type = (upload.content_type or "").split(";")[0].strip().lower()
        if file_type and file_type not in _JPEG_TYPES and file_type != "application/octet-stream":
            raise ApiProblem(415, f"the photo must be a JPEG (image/jpeg), got {file_type}", code="not-jpeg")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return ReceivedUpload(data, file_type, fields)
    finally:
        await form.close()


def photo_path(root: Path, sha256: str) -> Path:
    """Where a photo with this SHA-256 is stored under ``root`` (``<workdir>/photos``)."""
    return root / sha256[:2] / f"{sha256}.jpg"


def store_photo(root: Path, sha256: str, data: bytes) -> tuple[Path, bool]:
    """Write the photo atomically; returns its path and whether this call created it."""
    final = photo_path(root, sha256)
    if final.exists():
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final, True


def remove_stored(path: Path) -> None:
    """Remove a photo file written by this request (its database row was not committed)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
