"""Helpers of the API tests: users, JPEG photos with EXIF GPS, scoped lookups."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import Engine, select

from s3tr.api.views import outline_wgs84
from s3tr.photos import decimal_to_dms
from s3tr.review.models import Case, Declaration
from s3tr.review.users import create_user, issue_token

NOW = datetime(2025, 6, 20, 10, 0, tzinfo=UTC)
"""Where the app's clock starts: inside the 2025 correction window (16 May - 20 September)."""

PACAGE_A = "086705789"
PACAGE_B = "086028122"


class MovableClock:
    """The app's clock: starts at :data:`NOW`; tests move it forward."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@dataclass
class Env:
    """A running app on a private copy of the demo workdir, with its users' tokens."""

    client: TestClient
    engine: Engine
    workdir: Path
    tokens: dict[str, str]
    user_ids: dict[str, int]
    clock: MovableClock

    def h(self, who: str, **extra: str) -> dict[str, str]:
        """Headers with ``who``'s bearer token (plus ``extra``)."""
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}


def make_users(engine: Engine) -> tuple[dict[str, str], dict[str, int]]:
    """Two farmers (A, B), two instructors of 86 and one of 79, each with a token."""
    specs: dict[str, dict[str, Any]] = {
        "farmer_a": {"role": "farmer", "pacage": PACAGE_A},
        "farmer_b": {"role": "farmer", "pacage": PACAGE_B},
        "instr_86": {"role": "instructor", "department": "86"},
        "instr_86b": {"role": "instructor", "department": "86"},
        "instr_79": {"role": "instructor", "department": "79"},
    }
    tokens, ids = {}, {}
    for name, spec in specs.items():
        ids[name] = create_user(engine, name, **spec)
        tokens[name] = issue_token(engine, ids[name])
    return tokens, ids


def first_case(engine: Engine, pacage: str, *, state: str = "open") -> Case:
    """The lowest-id case of a PACAGE in a state (its parcel has a stored outline)."""
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        case = s.scalars(
            select(Case).where(Case.pacage == pacage, Case.state == state).order_by(Case.case_id)
        ).first()
        assert case is not None, f"no {state} case for {pacage}"
        s.expunge(case)
        return case


def parcel_outline(engine: Engine, id_parcel: str) -> Any:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        decl = s.scalars(
            select(Declaration).where(Declaration.id_parcel == id_parcel).order_by(Declaration.version.desc())
        ).first()
        return outline_wgs84(decl)


def field_picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A seeded, smooth colour picture (different seeds give perceptually different images)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)


def jpeg_with_gps(
    *,
    lon: float | None,
    lat: float | None,
    taken: datetime | None,
    heading: float | None = None,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    quality: int = 88,
) -> bytes:
    """A real JPEG with phone-like EXIF: capture time with offset, GPS position and heading."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    exif[ExifTags.Base.Model] = "T1"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub[ExifTags.Base.DateTimeOriginal] = taken.astimezone(UTC).strftime("%Y:%m:%d %H:%M:%S")
        sub[ExifTags.Base.OffsetTimeOriginal] = "+00:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    if lon is not None and lat is not None:
        for axis, value, ref_tag, val_tag in (
            ("lat", lat, ExifTags.GPS.GPSLatitudeRef, ExifTags.GPS.GPSLatitude),
            ("lon", lon, ExifTags.GPS.GPSLongitudeRef, ExifTags.GPS.GPSLongitude),
        ):
            d, m, s, ref = decimal_to_dms(value, axis=axis)  # type: ignore[arg-type]
            gps[ref_tag] = ref
            gps[val_tag] = (float(d), float(m), s)
        gps[ExifTags.GPS.GPSHPositioningError] = 3.0
    if heading is not None:
        gps[ExifTags.GPS.GPSImgDirectionRef] = "T"
        gps[ExifTags.GPS.GPSImgDirection] = float(heading)
    buf = io.BytesIO()
    field_picture(seed, size).save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def photo_files(workdir: Path) -> list[Path]:
    root = workdir / "photos"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
