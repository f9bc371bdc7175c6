"""Read an uploaded photo defensively: type, size, pixels, EXIF position, heading and time.

A farmer's photo arrives from a phone over a poor network, and anyone holding a token can
send any bytes. So nothing here trusts the file:

* the type is sniffed from the magic bytes, and only JPEG is accepted;
* the byte size and the declared pixel count are checked *before* any decoding (the
  latter against our own limit and, as a second net, Pillow's ``MAX_IMAGE_PIXELS``);
* the JPEG marker structure is walked by bounded code (segment and scan counts capped),
  which proves the file ends with its EOI marker (a cut upload is refused, not half-read);
* Pillow decodes a *cleaned* copy holding only the segments needed for pixels (frame,
  tables, scans, Adobe colour marker), so no metadata parser of Pillow's ever sees the
  untrusted APP segments;
* the EXIF block (at most 64 KiB, one APP1 segment) is walked first by a bounded,
  time-boxed walker: IFD cycles, enormous entry counts or entry tables running past the
  block refuse the photo; single entries with absurd counts or offsets are neutralised
  in a private copy. Only then does Pillow's :class:`PIL.Image.Exif` decode the values.

Everything is a pure function of the bytes: no database, no web code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import struct
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from PIL import ExifTags, Image
from scipy.fft import dctn

from s3tr.errors import S3trError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "PhotoInfo",
    "PhotoRejected",
    "decimal_to_dms",
    "dms_to_decimal",
    "phash_distance",
    "read_photo",
    "sniff_type",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 15_000_000
DEFAULT_MAX_PIXELS = 40_000_000

# Bounds of the structure walkers. Real phone photos have a few dozen segments, at most
# ~12 scans (progressive), 5 IFDs of under 100 entries; these leave a wide margin.
_MAX_JPEG_SEGMENTS = 2_000
_MAX_JPEG_SCANS = 150
_MAX_IFD_ENTRIES = 1_000
_MAX_TOTAL_IFD_ENTRIES = 4_000
_MAX_IFDS = 6
# CPU budget of the metadata walk (not of pixel decoding, which the pixel limit bounds). Thread
# CPU time, not wall time: under a loaded thread pool, waiting for the GIL must not count.
_PARSE_BUDGET_S = 1.0

# Pixels decoded for the perceptual hash: libjpeg's DCT scaling decodes at 1/8 size at best,
# so asking for 64 x 64 keeps decoding cheap even for 40 Mpx photos.
_PHASH_GRID = 32
_PHASH_BITS_SIDE = 8

# A marker inside entropy-coded data: 0xFF then a byte that is not stuffing (00), a restart
# marker (D0-D7) or fill (FF). One FF only: "\xff+" here backtracks quadratically on long
# runs of FF (40 kB took 5 s); the match then starts at the last fill byte, which is right.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILL = re.compile(rb"\xff+")

# EXIF / TIFF field types -> size in bytes of one value (TIFF 6.0 and EXIF 2.32).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# Which pointer tags lead to which sub-IFD, per IFD kind; nothing else is followed (MakerNote never).
_SUB_IFDS: dict[str, dict[int, str]] = {
    "ifd0": {int(ExifTags.IFD.Exif): "exif", int(ExifTags.IFD.GPSInfo): "gps"},
    "exif": {int(ExifTags.IFD.Interop): "interop"},
}

_ORIENTATION_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Tags read (numbers from EXIF 2.32; names kept in device_declared).
_T_MAKE, _T_MODEL, _T_SOFTWARE, _T_ORIENTATION, _T_DATETIME = 271, 272, 305, 274, 306
_T_DTO, _T_DTD, _T_OFFSET, _T_OFFSET_DTO, _T_OFFSET_DTD = 36867, 36868, 36880, 36881, 36882
_T_SUBSEC_DTO, _T_EXIF_VERSION = 37521, 36864
_T_LENS_MAKE, _T_LENS_MODEL, _T_BODY_SERIAL, _T_UNIQUE_ID = 42035, 42036, 42033, 42016

_GPS_DECLARED = {
    0: "version_id",
    8: "satellites",
    9: "status",
    10: "measure_mode",
    11: "dop",
    12: "speed_ref",
    13: "speed",
    14: "track_ref",
    15: "track",
    18: "map_datum",
    23: "dest_bearing_ref",
    24: "dest_bearing",
    27: "processing_method",
    28: "area_information",
    30: "differential",
}

Kind = Literal["jpeg", "png", "heic", "avif", "gif", "webp", "tiff", "bmp", "pdf"]
_TYPE_NAMES = {
    "png": "a PNG image",
    "heic": "a HEIC/HEIF photo (the iPhone default)",
    "avif": "an AVIF image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "tiff": "a TIFF image",
    "bmp": "a BMP image",
    "pdf": "a PDF document",
}
_TYPE_NAMES_FR = {
    "png": "une image PNG",
    "heic": "une photo HEIC/HEIF (format par défaut des iPhone)",
    "avif": "une image AVIF",
    "gif": "une image GIF",
    "webp": "une image WebP",
    "tiff": "une image TIFF",
    "bmp": "une image BMP",
    "pdf": "un document PDF",
}


class PhotoRejected(S3trError, ValueError):  # noqa: N818 (name fixed by the API contract)
    """An uploaded photo cannot be accepted at all (wrong type, too big, corrupt, hostile).

    Attributes
    ----------
    code : str
        Stable machine code: ``empty``, ``too_large``, ``unsupported_type``, ``too_many_pixels``,
        ``truncated``, ``malformed``, ``exif_malformed``, ``too_slow``.
    message_en, message_fr : str
        Plain-language explanation for the farmer, saying what to do.
    details : dict
        Context (sizes, limits, byte offsets), JSON-serialisable.
    """

    def __init__(self, code: str, message_en: str, message_fr: str, **details: Any) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_fr = message_fr
        self.details = details


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    """What a photo declares and what its pixels look like.

    Coordinates are WGS84 decimal degrees (EPSG:4326, latitude positive north, longitude
    positive east). Every EXIF-derived field is ``None`` when the photo does not declare it or
    declares something impossible (see ``gps_issue`` and ``device_declared``).

    Attributes
    ----------
    width, height : int
        Stored pixel size (before any EXIF orientation is applied).
    sha256 : str
        Hex SHA-256 of the uploaded bytes.
    phash : str
        64-bit DCT perceptual hash of the pixels (orientation applied), 16 hex digits.
    size_bytes : int
        Size of the upload.
    has_exif : bool
        Whether an EXIF block was found and read.
    lat, lon : float or None
        Position (degrees); never (0, 0) and always within range.
    altitude : float or None
        Metres above sea level (negative below).
    gps_accuracy_m : float or None
        Declared horizontal positioning error (GPSHPositioningError), metres.
    heading_deg : float or None
        Camera direction (GPSImgDirection), degrees clockwise from north in [0, 360).
    heading_ref : str or None
        ``"T"`` (true north) or ``"M"`` (magnetic north) as declared.
    captured_at : datetime or None
        Time of capture, timezone-aware.
    captured_at_source : str or None
        ``"exif_offset"`` (DateTimeOriginal with OffsetTimeOriginal), ``"gps_utc"`` (GPS date and
        time stamps) or ``"assumed_local"`` (a naive DateTimeOriginal read in ``local_tz``: flagged,
        the device did not say which time zone it used).
    camera_make, camera_model, software : str or None
        As declared.
    gps_issue : str or None
        Why GPS tags present were not usable: ``out_of_range``, ``null_island``, ``malformed``.
    device_declared : dict
        Everything else the device declares that stronger checks may use later (GNSS details,
        raw times, lens, serial, XMP presence, JPEG structure); JSON-serialisable.
    """

    width: int
    height: int
    sha256: str
    phash: str
    size_bytes: int
    has_exif: bool
    lat: float | None = None
    lon: float | None = None
    altitude: float | None = None
    gps_accuracy_m: float | None = None
    heading_deg: float | None = None
    heading_ref: str | None = None
    captured_at: datetime | None = None
    captured_at_source: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    software: str | None = None
    gps_issue: str | None = None
    device_declared: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def has_position(self) -> bool:
        """Whether a usable latitude and longitude were read."""
        return self.lat is not None and self.lon is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``captured_at`` as ISO 8601 text)."""
        out = asdict(self)
        if self.captured_at is not None:
            out["captured_at"] = self.captured_at.isoformat()
        return out


# --------------------------------------------------------------------------- coordinates


def dms_to_decimal(degrees: float, minutes: float = 0.0, seconds: float = 0.0, ref: str = "N") -> float:
    """Degrees, minutes, seconds and hemisphere letter -> signed decimal degrees.

    Parameters
    ----------
    degrees, minutes, seconds : float
        Non-negative; minutes and seconds at most 60 (60 comes from rounding writers;
        decimal minutes are allowed, as some devices write ``(46, 34.85, 0)``).
    ref : str
        ``N``/``S`` for a latitude, ``E``/``W`` for a longitude.

    Returns
    -------
    float
        Decimal degrees, negative for ``S`` and ``W``.

    Raises
    ------
    ValueError
        On a negative or non-finite part, minutes or seconds above 60, or an unknown ref.
    """
    parts = (float(degrees), float(minutes), float(seconds))
    if not all(math.isfinite(p) and p >= 0 for p in parts):
        raise ValueError(f"DMS parts must be finite and non-negative, got {parts}")
    # Exactly 60 is tolerated: writers that round 59.9999... to a rational store 60/1.
    if parts[1] > 60 or parts[2] > 60:
        raise ValueError(f"minutes and seconds must be at most 60, got {parts}")
    ref = ref.strip().upper()
    if ref not in {"N", "S", "E", "W"}:
        raise ValueError(f"hemisphere ref must be N, S, E or W, got {ref!r}")
    value = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
    return -value if ref in {"S", "W"} else value


def decimal_to_dms(value: float, *, axis: Literal["lat", "lon"]) -> tuple[int, int, float, str]:
    """Signed decimal degrees -> (degrees, minutes, seconds, ref) as EXIF stores them.

    Parameters
    ----------
    value : float
        Decimal degrees; within [-90, 90] for ``axis="lat"``, [-180, 180] for ``"lon"``.
    axis : {"lat", "lon"}
        Which hemisphere letters to use.

    Returns
    -------
    tuple
        Whole degrees, whole minutes (0..59), seconds in [0, 60) and ``N``/``S``/``E``/``W``.
    """
    limit = 90.0 if axis == "lat" else 180.0
    if not math.isfinite(value) or abs(value) > limit:
        raise ValueError(f"{axis} {value!r} is outside [-{limit:g}, {limit:g}]")
    ref = ("N" if value >= 0 else "S") if axis == "lat" else ("E" if value >= 0 else "W")
    a = abs(value)
    deg = int(a)
    rem = (a - deg) * 60.0
    minutes = int(rem)
    seconds = (rem - minutes) * 60.0
    # Rounding can push seconds (or minutes) to exactly 60: carry so the parts stay canonical.
    if seconds >= 60.0:
        seconds, minutes = 0.0, minutes + 1
    if minutes >= 60:
        minutes, deg = 0, deg + 1
    return deg, minutes, seconds, ref


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two 16-hex-digit perceptual hashes (0..64)."""
    if len(a) != 16 or len(b) != 16:
        raise ValueError(f"perceptual hashes are 16 hex digits, got {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --------------------------------------------------------------------------- type sniffing


def sniff_type(data: bytes) -> Kind | None:
    """Recognise an image or document type from its first bytes (``None`` if unknown)."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in {b"avif", b"avis"}:
            return "avif"
        if brand in {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"}:
            return "heic"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith(b"%PDF"):
        return "pdf"
    return None


# --------------------------------------------------------------------------- JPEG structure


@dataclass(slots=True)
class _JpegLayout:
    width: int = 0
    height: int = 0
    components: int = 0
    precision: int = 0
    sof_marker: int = 0
    scans: int = 0
    segments: int = 0
    exif: bytes | None = None
    xmp_bytes: int = 0
    trailing_bytes: int = 0
    clean: bytes = b""


def _malformed(what_en: str, what_fr: str, **details: Any) -> PhotoRejected:
    return PhotoRejected(
        "malformed",
        f"The file is not a valid JPEG photo ({what_en}). Send the original photo from the camera again.",
        f"Le fichier n'est pas une photo JPEG valide ({what_fr}). Renvoyez la photo d'origine.",
        **details,
    )


def _truncated(offset: int) -> PhotoRejected:
    return PhotoRejected(
        "truncated",
        "The photo file is incomplete (it was cut off, probably during the upload). Send it again.",
        "Le fichier de la photo est incomplet (coupé, sans doute pendant l'envoi). Renvoyez-le.",
        offset=offset,
    )


def _too_slow() -> PhotoRejected:
    return PhotoRejected(
        "too_slow",
        "The photo's structure is too complex to be checked. Send the original photo from the camera.",
        "La structure de la photo est trop complexe pour être vérifiée. Envoyez la photo d'origine.",
    )


def _walk_jpeg(data: bytes, *, max_pixels: int, deadline: float) -> _JpegLayout:
    """Walk the JPEG markers up to EOI; collect the frame, the EXIF block and a cleaned stream."""
    n = len(data)
    out = _JpegLayout()
    kept: list[bytes] = [b"\xff\xd8"]
    pos = 2
    while True:
        if time.thread_time() > deadline:
            raise _too_slow()
        if pos >= n:
            raise _truncated(pos)
        if data[pos] != 0xFF:
            raise _malformed(f"no marker at byte {pos}", f"pas de marqueur à l'octet {pos}", offset=pos)
        fill = _FILL.match(data, pos)
        assert fill is not None  # data[pos] is 0xFF, so the match cannot fail
        pos = fill.end()
        if pos >= n:
            raise _truncated(pos)
        marker = data[pos]
        start = pos - 1
        pos += 1
        out.segments += 1
        if out.segments > _MAX_JPEG_SEGMENTS:
            raise _malformed("too many segments", "trop de segments", limit=_MAX_JPEG_SEGMENTS)
        if marker == 0xD9:  # EOI
            if out.scans == 0:
                raise _malformed("it ends before any image data", "il se termine avant l'image")
            out.trailing_bytes = n - pos
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            continue
        if marker in {0x00, 0xD8}:
            raise _malformed(f"unexpected marker 0x{marker:02X}", f"marqueur inattendu 0x{marker:02X}")
        if pos + 2 > n:
            raise _truncated(pos)
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise _malformed("a segment with a bad length", "un segment de longueur invalide", offset=pos)
        end = pos + length
        if end > n:
            raise _truncated(pos)
        payload = data[pos + 2 : end]
        keep = True
        if 0xC0 <= marker <= 0xCF and marker not in {0xC4, 0xC8, 0xCC}:  # SOFn
            if out.sof_marker:
                raise _malformed("several image frames", "plusieurs images dans le fichier")
            _read_frame(out, marker, payload, max_pixels=max_pixels)
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            if out.exif is None:  # the first EXIF block is the one cameras write
                out.exif = bytes(payload[6:])
            keep = False
        elif marker == 0xE1 and payload.startswith(b"http://ns.adobe.com/xap/1.0/"):
            out.xmp_bytes += len(payload)
            keep = False
        elif marker == 0xEE:  # Adobe APP14 tells the decoder the colour transform: keep it
            keep = payload.startswith(b"Adobe")
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:  # other APPn and comments: metadata only
            keep = False
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            if not out.sof_marker:
                raise _malformed("image data before the frame header", "données avant l'en-tête")
            out.scans += 1
            if out.scans > _MAX_JPEG_SCANS:
                raise _malformed("too many scans", "trop de passes", limit=_MAX_JPEG_SCANS)
            found = _NEXT_MARKER.search(data, end)
            if found is None:
                raise _truncated(end)
            kept.append(data[start : found.start()])
            pos = found.start()
            continue
        if keep:
            kept.append(data[start:end])
        pos = end
    if not out.sof_marker:
        raise _malformed("no image frame header", "pas d'en-tête d'image")
    kept.append(b"\xff\xd9")
    out.clean = b"".join(kept)
    return out


def _read_frame(out: _JpegLayout, marker: int, payload: bytes, *, max_pixels: int) -> None:
    if len(payload) < 6:
        raise _malformed("a short frame header", "en-tête d'image trop court")
    precision, height, width, ncomp = struct.unpack_from(">BHHB", payload, 0)
    if len(payload) != 6 + 3 * ncomp or ncomp not in {1, 3, 4}:
        raise _malformed("a bad frame header", "en-tête d'image invalide", components=ncomp)
    if width == 0 or height == 0:
        raise _malformed("zero width or height", "largeur ou hauteur nulle", width=width, height=height)
    pixels = width * height
    # Our own decompression-bomb check, before any decoder allocates anything.
    if pixels > max_pixels:
        raise PhotoRejected(
            "too_many_pixels",
            f"The photo declares {width} x {height} pixels ({pixels / 1e6:.0f} Mpx); at most "
            f"{max_pixels / 1e6:.0f} Mpx are accepted. Send a photo from a phone camera at its normal size.",
            f"La photo annonce {width} x {height} pixels ({pixels / 1e6:.0f} Mpx) ; au plus "
            f"{max_pixels / 1e6:.0f} Mpx sont acceptés. Envoyez une photo prise au format normal "
            "du téléphone.",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )
    out.width, out.height, out.components, out.precision, out.sof_marker = (
        width,
        height,
        ncomp,
        precision,
        marker,
    )


# --------------------------------------------------------------------------- EXIF structure


def _exif_malformed(what: str, **details: Any) -> PhotoRejected:
    return PhotoRejected(
        "exif_malformed",
        f"The photo's metadata (EXIF) is damaged or hostile ({what}). Send the original photo from "
        "the camera, without editing it.",
        "Les métadonnées (EXIF) de la photo sont endommagées ou suspectes. Envoyez la photo "
        "d'origine, sans la retoucher.",
        problem=what,
        **details,
    )


def _sanitize_exif(tiff: bytes, *, deadline: float) -> tuple[bytes, int]:
    """Walk the IFDs that will be read; refuse hostile structures, neutralise bad entries.

    Returns the (possibly patched) TIFF block and the number of entries neutralised. An entry is
    neutralised by setting its type to 0, which Pillow skips as an unknown type.
    """
    n = len(tiff)
    if n < 8:
        raise _exif_malformed("block too short", size=n)
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        raise _exif_malformed("no TIFF header")
    buf = bytearray(tiff)
    (ifd0,) = struct.unpack_from(order + "L", buf, 4)
    if not 8 <= ifd0 <= n - 2:
        raise _exif_malformed("first directory outside the block", offset=ifd0)

    visited: set[int] = set()
    pending: list[tuple[int, str]] = [(ifd0, "ifd0")]
    total = 0
    neutralised = 0

    def neutralise(entry: int) -> None:
        nonlocal neutralised
        struct.pack_into(order + "H", buf, entry + 2, 0)
        neutralised += 1

    while pending:
        offset, kind = pending.pop()
        if offset in visited:
            raise _exif_malformed("a directory refers back to itself", offset=offset)
        if len(visited) >= _MAX_IFDS:
            raise _exif_malformed("too many directories", limit=_MAX_IFDS)
        visited.add(offset)
        (count,) = struct.unpack_from(order + "H", buf, offset)
        if count > _MAX_IFD_ENTRIES:
            raise _exif_malformed("enormous entry count", count=count, limit=_MAX_IFD_ENTRIES)
        table_end = offset + 2 + 12 * count
        if table_end > n:
            raise _exif_malformed("entry table runs past the block", count=count, offset=offset)
        total += count
        if total > _MAX_TOTAL_IFD_ENTRIES:
            raise _exif_malformed("too many entries", limit=_MAX_TOTAL_IFD_ENTRIES)
        children = _SUB_IFDS.get(kind, {})
        for i in range(count):
            if i % 64 == 0 and time.thread_time() > deadline:
                raise _too_slow()
            entry = offset + 2 + 12 * i
            tag, typ, cnt = struct.unpack_from(order + "HHL", buf, entry)
            unit = _TYPE_SIZES.get(typ)
            if unit is None:
                continue  # unknown types are skipped by the decoder too
            nbytes = unit * cnt
            (value_offset,) = struct.unpack_from(order + "L", buf, entry + 8)
            if nbytes > 4 and value_offset + nbytes > n:
                neutralise(entry)  # absurd count or offset: the value is not in the block
                continue
            child = children.get(tag)
            if child is None:
                continue
            if typ not in {4, 13} or cnt != 1 or not 8 <= value_offset <= n - 2:
                neutralise(entry)  # a broken pointer: read nothing there
                continue
            if value_offset in visited or value_offset == offset:
                raise _exif_malformed("a directory refers back to itself", offset=value_offset)
            pending.append((value_offset, child))
        if kind == "ifd0" and table_end + 4 <= n:
            # IFD1 (the thumbnail) is never read; a next-pointer back into a read directory is a trap.
            (nxt,) = struct.unpack_from(order + "L", buf, table_end)
            if nxt and (nxt in visited or nxt == ifd0):
                raise _exif_malformed("a directory refers back to itself", offset=nxt)
    return bytes(buf), neutralised


# --------------------------------------------------------------------------- EXIF values


def _text(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        # UNDEFINED text fields (GPSProcessingMethod, UserComment) start with an 8-byte charset code.
        if value[:8] in {b"ASCII\x00\x00\x00", b"UNICODE\x00", b"JIS\x00\x00\x00\x00\x00", b"\x00" * 8}:
            charset, value = value[:8], value[8:]
            text = value.decode("utf-16" if charset.startswith(b"UNICODE") else "latin-1", "replace")
        else:
            text = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    else:
        return None
    text = text.replace("\x00", " ").strip()
    return text[:limit] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple):
        if len(value) != 1:
            return None
        value = value[0]
    if isinstance(value, bytes):
        return float(value[0]) if len(value) == 1 else None
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, tuple):
        value = (value,)
    out = [_number(v) for v in value[:8]]
    return None if any(v is None for v in out) else [float(v) for v in out if v is not None]


def _jsonable(value: Any) -> Any:
    """Turn an EXIF value into something a JSON column stores."""
    if isinstance(value, bytes):
        text = _text(value)
        if text is not None and text.isprintable():
            return text
        return value[:64].hex()
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, tuple):
        items = [_jsonable(v) for v in value[:16]]
        return items[0] if len(items) == 1 else items
    if isinstance(value, int):
        return value
    return _number(value)


def _dms_value(value: Any) -> float | None:
    parts = _numbers(value)
    if not parts or len(parts) > 3:
        return None
    parts += [0.0] * (3 - len(parts))
    try:
        return dms_to_decimal(parts[0], parts[1], parts[2], "N")
    except ValueError:
        return None


def _parse_datetime(text: str | None) -> datetime | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` (blank or zero dates mean unknown)."""
    if not text:
        return None
    text = text.strip()[:19]
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _parse_offset(text: str | None) -> timezone | None:
    """EXIF ``+HH:MM`` / ``-HH:MM`` offset."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", text)
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if m.group(1) == "-" else delta)


def _gps_datetime(gps: dict[int, Any]) -> datetime | None:
    date_text = _text(gps.get(29))
    hms = _numbers(gps.get(7))
    if not date_text or not hms or len(hms) != 3:
        return None
    try:
        day = datetime.strptime(date_text.strip()[:10], "%Y:%m:%d")
    except ValueError:
        return None
    h, m, s = hms
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return None
    return day.replace(tzinfo=UTC) + timedelta(hours=h, minutes=m, seconds=s)


@dataclass(slots=True)
class _ExifFields:
    lat: float | None = None
    lon: float | None = None
    altitude: float | None = None
    gps_accuracy_m: float | None = None
    heading_deg: float | None = None
    heading_ref: str | None = None
    captured_at: datetime | None = None
    captured_at_source: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    software: str | None = None
    gps_issue: str | None = None
    orientation: int = 1
    declared: dict[str, Any] = field(default_factory=dict)


def _safe_ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # decoding untrusted metadata: any failure means "no such directory"
        logger.debug("EXIF directory 0x%04X unreadable", tag, exc_info=True)
        return {}


def _safe_get(mapping: Any, tag: int) -> Any:
    try:
        return mapping.get(tag)
    except Exception:  # decoding untrusted metadata: any failure means "not declared"
        logger.debug("EXIF tag 0x%04X unreadable", tag, exc_info=True)
        return None


def _read_exif_fields(tiff: bytes, *, local_tz: str) -> _ExifFields:
    exif = Image.Exif()
    exif.load(tiff)
    f = _ExifFields()
    d = f.declared
    f.camera_make = _text(_safe_get(exif, _T_MAKE), 100)
    f.camera_model = _text(_safe_get(exif, _T_MODEL), 100)
    f.software = _text(_safe_get(exif, _T_SOFTWARE), 100)
    orientation = _number(_safe_get(exif, _T_ORIENTATION))
    if orientation is not None and int(orientation) in _ORIENTATION_OPS:
        f.orientation = int(orientation)
    d["orientation"] = f.orientation

    ex = _safe_ifd(exif, int(ExifTags.IFD.Exif))
    gps = _safe_ifd(exif, int(ExifTags.IFD.GPSInfo))

    for key, mapping, tag in (
        ("exif_version", ex, _T_EXIF_VERSION),
        ("datetime_original", ex, _T_DTO),
        ("offset_time_original", ex, _T_OFFSET_DTO),
        ("subsec_time_original", ex, _T_SUBSEC_DTO),
        ("datetime_digitized", ex, _T_DTD),
        ("offset_time_digitized", ex, _T_OFFSET_DTD),
        ("datetime_modified", exif, _T_DATETIME),
        ("offset_time", ex, _T_OFFSET),
        ("lens_make", ex, _T_LENS_MAKE),
        ("lens_model", ex, _T_LENS_MODEL),
        ("body_serial_number", ex, _T_BODY_SERIAL),
        ("image_unique_id", ex, _T_UNIQUE_ID),
    ):
        value = _safe_get(mapping, tag)
        if value is not None:
            d[key] = _jsonable(value)

    _read_gps(f, gps)
    _read_time(f, ex, gps, local_tz=local_tz)
    return f


def _read_gps(f: _ExifFields, gps: dict[int, Any]) -> None:
    d = f.declared
    declared_gps = {name: _jsonable(gps[tag]) for tag, name in _GPS_DECLARED.items() if tag in gps}
    if declared_gps:
        d["gps"] = declared_gps

    if 2 in gps or 4 in gps:
        lat, lon = _dms_value(gps.get(2)), _dms_value(gps.get(4))
        lat_ref = (_text(gps.get(1)) or "").upper()[:1]
        lon_ref = (_text(gps.get(3)) or "").upper()[:1]
        if lat_ref not in {"N", "S"} or lon_ref not in {"E", "W"}:
            # Without the hemisphere letter the sign is unknown; north/east is the usual omission.
            d["gps_ref_missing"] = True
        if lat is None or lon is None:
            f.gps_issue = "malformed"
        else:
            lat = -lat if lat_ref == "S" else lat
            lon = -lon if lon_ref == "W" else lon
            d["gps_declared_lat"], d["gps_declared_lon"] = lat, lon
            if abs(lat) > 90 or abs(lon) > 180:
                f.gps_issue = "out_of_range"
            elif lat == 0 and lon == 0:
                f.gps_issue = "null_island"  # the default a device writes when it has no fix
            else:
                f.lat, f.lon = lat, lon

    altitude = _number(gps.get(6))
    if altitude is not None:
        below = _number(gps.get(5)) == 1
        f.altitude = -altitude if below else altitude

    accuracy = _number(gps.get(31))
    if accuracy is not None and accuracy >= 0:
        f.gps_accuracy_m = accuracy

    heading = _number(gps.get(17))
    if heading is not None:
        if 0 <= heading <= 360:
            f.heading_deg = heading % 360.0
            ref = (_text(gps.get(16)) or "").upper()[:1]
            f.heading_ref = ref if ref in {"T", "M"} else None
        else:
            d["heading_out_of_range"] = heading


def _read_time(f: _ExifFields, ex: dict[int, Any], gps: dict[int, Any], *, local_tz: str) -> None:
    d = f.declared
    local = _parse_datetime(_text(ex.get(_T_DTO)))
    if local is not None:
        subsec = _text(ex.get(_T_SUBSEC_DTO))
        if subsec and subsec.isdigit():
            local = local.replace(microsecond=int((subsec + "000000")[:6]))
    offset = _parse_offset(_text(ex.get(_T_OFFSET_DTO)))
    gps_time = _gps_datetime(gps)
    if gps_time is not None:
        d["gps_time_utc"] = gps_time.isoformat()
    if local is not None and offset is not None:
        f.captured_at, f.captured_at_source = local.replace(tzinfo=offset), "exif_offset"
    elif gps_time is not None:
        f.captured_at, f.captured_at_source = gps_time, "gps_utc"
        if local is not None:
            # The naive camera clock against GPS UTC gives the device's offset, to the quarter hour.
            gap = (local - gps_time.replace(tzinfo=None)).total_seconds()
            d["inferred_utc_offset_min"] = round(gap / 900.0) * 15
    elif local is not None:
        f.captured_at, f.captured_at_source = local.replace(tzinfo=ZoneInfo(local_tz)), "assumed_local"
        d["assumed_time_zone"] = local_tz
    if f.captured_at is not None and gps_time is not None and f.captured_at_source == "exif_offset":
        # A large gap between the camera clock and GPS time hints at a set-back clock.
        d["clock_gap_s"] = round((f.captured_at - gps_time).total_seconds(), 3)


# --------------------------------------------------------------------------- pixels


def _phash(gray: Image.Image) -> str:
    """64-bit DCT perceptual hash: 32 x 32 grey levels, 2-D DCT-II, 8 x 8 lowest AC frequencies."""
    small = gray.resize((_PHASH_GRID, _PHASH_GRID), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    coeffs = dctn(pixels, type=2, norm="ortho")
    # Skip row and column 0 (the mean and pure 1-D gradients): they carry brightness and
    # exposure, which re-encoding and re-scaling change, not the picture's layout.
    block = coeffs[1 : 1 + _PHASH_BITS_SIDE, 1 : 1 + _PHASH_BITS_SIDE].ravel()
    bits = block > np.median(block)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def _decode_for_hash(layout: _JpegLayout, orientation: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(layout.clean), formats=["JPEG"]) as im:
            if im.size != (layout.width, layout.height):
                raise _malformed("inconsistent frame size", "taille d'image incohérente")
            # DCT scaling: libjpeg decodes at up to 1/8 size, straight to grey levels.
            im.draft("L", (2 * _PHASH_GRID, 2 * _PHASH_GRID))
            im.load()
            gray = im.convert("L")
    except PhotoRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoRejected(
            "too_many_pixels",
            "The photo has too many pixels to be decoded safely. Send a photo at the phone's normal size.",
            "La photo a trop de pixels pour être décodée sans risque. Envoyez-la au format normal "
            "du téléphone.",
            reason=str(exc),
        ) from exc
    except Exception as exc:  # the decoder on untrusted bytes: any failure is a corrupt photo
        raise _malformed(
            f"the image data cannot be decoded: {exc}", "les données de l'image sont illisibles"
        ) from exc
    op = _ORIENTATION_OPS.get(orientation)
    return gray.transpose(op) if op is not None else gray


# --------------------------------------------------------------------------- entry point


def read_photo(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    local_tz: str = "Europe/Paris",
) -> PhotoInfo:
    """Read an uploaded photo: check type and limits, decode, hash, and parse its EXIF.

    Parameters
    ----------
    data : bytes
        The uploaded file, as received.
    max_bytes : int
        Largest accepted upload, bytes.
    max_pixels : int
        Largest accepted width x height declared by the JPEG frame, checked before decoding.
    local_tz : str
        IANA time zone in which a DateTimeOriginal without offset (and without GPS time) is
        read; the result is then flagged ``captured_at_source="assumed_local"``.

    Returns
    -------
    PhotoInfo
        Always returned for a decodable JPEG; without EXIF, the EXIF fields are ``None``.

    Raises
    ------
    PhotoRejected
        Empty, too large, not a JPEG (PNG, HEIC...), too many pixels, truncated or malformed,
        or with hostile EXIF structure (``code`` says which; messages in English and French).
    """
    started = time.thread_time()
    deadline = started + _PARSE_BUDGET_S
    data = bytes(data)
    size = len(data)
    if size == 0:
        raise PhotoRejected(
            "empty", "The file is empty. Send the photo again.", "Le fichier est vide. Renvoyez la photo."
        )
    if size > max_bytes:
        raise PhotoRejected(
            "too_large",
            f"The file is {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB are accepted. "
            "Send the photo at the phone's normal size.",
            f"Le fichier fait {size / 1e6:.1f} Mo ; au plus {max_bytes / 1e6:.0f} Mo sont acceptés. "
            "Envoyez la photo au format normal du téléphone.",
            size_bytes=size,
            max_bytes=max_bytes,
        )
    kind = sniff_type(data)
    if kind != "jpeg":
        what_en = _TYPE_NAMES.get(kind or "", "not an image we recognise")
        what_fr = _TYPE_NAMES_FR.get(kind or "", "un fichier non reconnu")
        hint_en = (
            " On an iPhone, choose Settings > Camera > Formats > Most Compatible." if kind == "heic" else ""
        )
        hint_fr = (
            " Sur iPhone : Réglages > Appareil photo > Formats > Le plus compatible."
            if kind == "heic"
            else ""
        )
        raise PhotoRejected(
            "unsupported_type",
            f"This file is {what_en}. Only JPEG photos (.jpg) taken with the camera are accepted.{hint_en}",
            f"Ce fichier est {what_fr}. Seules les photos JPEG (.jpg) prises avec l'appareil photo sont "
            f"acceptées.{hint_fr}",
            detected_type=kind,
            accepted=["image/jpeg"],
        )

    layout = _walk_jpeg(data, max_pixels=max_pixels, deadline=deadline)

    fields = _ExifFields()
    has_exif = False
    if layout.exif is not None and not layout.exif.strip(b"\x00"):
        fields.declared["exif_empty"] = True  # an app stripped the block but left its header
    elif layout.exif is not None:
        tiff, neutralised = _sanitize_exif(layout.exif, deadline=deadline)
        try:
            fields = _read_exif_fields(tiff, local_tz=local_tz)
            has_exif = True
        except PhotoRejected:
            raise
        except Exception as exc:  # Pillow on metadata we already bounded: any failure is a damaged block
            raise _exif_malformed(f"unreadable: {exc}") from exc
        if neutralised:
            fields.declared["exif_entries_ignored"] = neutralised
        if time.thread_time() > deadline:
            raise _too_slow()

    gray = _decode_for_hash(layout, fields.orientation)
    declared = fields.declared
    declared["jpeg"] = {
        "progressive": layout.sof_marker == 0xC2,
        "scans": layout.scans,
        "components": layout.components,
        "precision": layout.precision,
    }
    if layout.xmp_bytes:
        declared["xmp_bytes"] = layout.xmp_bytes
    if layout.trailing_bytes:
        declared["trailing_bytes"] = layout.trailing_bytes  # e.g. a motion photo's video
    info = PhotoInfo(
        width=layout.width,
        height=layout.height,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=_phash(gray),
        size_bytes=size,
        has_exif=has_exif,
        lat=fields.lat,
        lon=fields.lon,
        altitude=fields.altitude,
        gps_accuracy_m=fields.gps_accuracy_m,
        heading_deg=fields.heading_deg,
        heading_ref=fields.heading_ref,
        captured_at=fields.captured_at,
        captured_at_source=fields.captured_at_source,
        camera_make=fields.camera_make,
        camera_model=fields.camera_model,
        software=fields.software,
        gps_issue=fields.gps_issue,
        device_declared=declared,
    )
    logger.debug(
        "photo read: %dx%d, %d bytes, exif=%s, gps=%s, %.1f ms CPU",
        info.width,
        info.height,
        size,
        has_exif,
        info.has_position,
        (time.thread_time() - started) * 1000,
    )
    return info
