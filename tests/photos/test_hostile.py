"""Hostile and broken uploads: refused with a clear PhotoRejected, or read safely — never a hang or crash."""

from __future__ import annotations

import io
import struct
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from s3tr.photos import PhotoInfo, PhotoRejected, read_photo


def finishes(fn: Callable[[], Any], guard_s: float = 20.0) -> Any:
    """Run ``fn`` in a daemon thread: a hang fails the test instead of freezing the suite.

    The guard is a liveness net, far above the milliseconds these take (figures in the report).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(guard_s)
    assert not thread.is_alive(), "read_photo hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


def rejected(data: bytes, **kwargs: Any) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as caught:
        finishes(lambda: read_photo(data, **kwargs))
    err = caught.value
    assert err.message_en and err.message_fr and err.code
    return err


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 segment right after SOI."""
    assert len(payload) + 2 <= 0xFFFF
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def plain(kit) -> bytes:
    return kit.make_jpeg(exif=None, size=(64, 48))


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.5, 0.9, 0.999])
def test_truncated_jpeg_is_refused(good_photo, fraction):
    cut = good_photo[: int(len(good_photo) * fraction)]
    err = rejected(cut)
    assert err.code in {"truncated", "malformed"}
    if fraction > 0.1:  # cut inside the image data: the classic interrupted upload
        assert err.code == "truncated"
        assert "incomplete" in str(err) and "incomplet" in err.message_fr


def test_cut_just_before_the_end_marker(good_photo):
    assert good_photo.endswith(b"\xff\xd9")
    assert rejected(good_photo[:-1]).code == "truncated"
    assert rejected(good_photo[:-2]).code == "truncated"


def test_random_bytes_behind_a_jpeg_header():
    rng = np.random.default_rng(1)
    data = b"\xff\xd8\xff" + rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    assert rejected(data).code in {"malformed", "truncated"}


def test_png_and_heic_are_refused_saying_what_is_accepted(kit):
    buf = io.BytesIO()
    kit.field_image(0, (64, 48)).save(buf, "PNG")
    err = rejected(buf.getvalue())
    assert err.code == "unsupported_type"
    assert err.details["detected_type"] == "png"
    assert "PNG" in str(err) and "JPEG" in str(err) and "JPEG" in err.message_fr
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(1000)
    err = rejected(heic)
    assert err.details["detected_type"] == "heic"
    assert "iPhone" in str(err) and "iPhone" in err.message_fr
    assert rejected(b"%PDF-1.7\n" + bytes(100)).details["detected_type"] == "pdf"
    assert rejected(b"just some text").details["detected_type"] is None


def test_oversized_file_is_refused_before_decoding(good_photo):
    err = rejected(good_photo, max_bytes=1000)
    assert err.code == "too_large"
    assert err.details == {"size_bytes": len(good_photo), "max_bytes": 1000}
    huge = b"\xff\xd8\xff" + bytes(15_000_000)
    assert rejected(huge).code == "too_large"


def _set_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]


def test_decompression_bomb_is_refused_from_the_header(plain):
    bomb = _set_frame_size(plain, 60_000, 60_000)  # 3.6 Gpx declared in a 1 kB file
    err = rejected(bomb)
    assert err.code == "too_many_pixels"
    assert (err.details["width"], err.details["height"]) == (60_000, 60_000)
    # Our limit is a parameter: a real 640 x 480 photo is refused below 0.3 Mpx.
    assert rejected(plain, max_pixels=1000).code == "too_many_pixels"


def test_frame_size_lying_smaller_than_the_data(plain):
    # The header says 8 x 8; the scan holds 64 x 48 worth of data. Safe either way.
    liar = _set_frame_size(plain, 8, 8)
    try:
        info = finishes(lambda: read_photo(liar))
    except PhotoRejected:
        return
    assert (info.width, info.height) == (8, 8)


def test_too_many_segments_is_refused(plain):
    comments = b"".join(b"\xff\xfe\x00\x03x" for _ in range(3000))
    assert rejected(plain[:2] + comments + plain[2:]).code == "malformed"


# --------------------------------------------------------------------------- EXIF bombs


def _ifd(entries: list[tuple[int, int, int, int]], next_offset: int = 0, order: str = ">") -> bytes:
    out = struct.pack(order + "H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack(order + "HHLL", tag, typ, count, value)
    return out + struct.pack(order + "L", next_offset)


def _tiff(body: bytes) -> bytes:
    return b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + body


def test_exif_enormous_entry_count(plain):
    # 65535 entries declared, 2 present: the table would run far past the 64 kB segment.
    body = struct.pack(">H", 0xFFFF) + bytes(24)
    err = rejected(with_app1(plain, _tiff(body)))
    assert err.code == "exif_malformed"
    assert "EXIF" in str(err)


def test_exif_entry_count_above_limit_inside_the_block(plain):
    entries = [(0x9000 + i, 3, 1, 0) for i in range(5000)]  # 60 kB of entries: fits, but absurd
    err = rejected(with_app1(plain, _tiff(_ifd(entries))))
    assert err.code == "exif_malformed"
    assert err.details["count"] == 5000


def test_exif_directory_pointing_to_itself(plain):
    self_exif = _ifd([(0x8769, 4, 1, 8)])  # ExifOffset -> IFD0 itself
    assert rejected(with_app1(plain, _tiff(self_exif))).code == "exif_malformed"
    self_next = _ifd([(0x010F, 2, 4, 0x41424300)], next_offset=8)  # IFD0 -> next is IFD0
    assert rejected(with_app1(plain, _tiff(self_next))).code == "exif_malformed"


def test_exif_mutual_pointers(plain):
    # IFD0 (at 8, 1 entry, 18 bytes) -> Exif IFD at 26 whose Interop pointer goes back to 26.
    ifd0 = _ifd([(0x8769, 4, 1, 26)])
    exif_ifd = _ifd([(0xA005, 4, 1, 26)])
    assert rejected(with_app1(plain, _tiff(ifd0 + exif_ifd))).code == "exif_malformed"


def test_exif_absurd_counts_and_bad_pointers_are_neutralised(plain):
    entries = [
        (0x010F, 2, 0x7FFFFFFF, 26),  # Make: 2 GB of text "at" offset 26
        (0x0110, 4, 0x40000000, 8),  # Model as 4 G longs
        (0x8825, 4, 1, 0x00FFFFFF),  # GPS IFD far outside the block
        (0x0131, 2, 4, 0x41424300),  # Software "ABC" inline: fine
    ]
    data = with_app1(plain, _tiff(_ifd(entries)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = finishes(lambda: read_photo(data))
    # The bad entries were neutralised before Pillow's decoder saw them: it had nothing to warn about.
    assert [str(w.message) for w in caught] == []
    assert isinstance(info, PhotoInfo)
    assert info.has_exif
    assert info.camera_make is None and info.camera_model is None and info.lat is None
    assert info.software == "ABC"
    assert info.device_declared["exif_entries_ignored"] == 3


def test_garbage_exif_header(plain):
    assert rejected(with_app1(plain, b"Exif\x00\x00XX\x00*" + bytes(30))).code == "exif_malformed"
    # An emptied block (header only) is simply no EXIF.
    info = finishes(lambda: read_photo(with_app1(plain, b"Exif\x00\x00")))
    assert not info.has_exif
    assert info.device_declared["exif_empty"] is True


# --------------------------------------------------------------------------- fuzzing


def _outcome(data: bytes) -> str:
    try:
        finishes(lambda: read_photo(data))
    except PhotoRejected as err:
        return err.code
    return "ok"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.floats(0.05, 1.0)),
)
def test_fuzzed_jpeg_never_crashes(kit, flips, keep):
    data = bytearray(kit.make_jpeg(size=(48, 32), heading=10.0))
    for where, value in flips:
        data[3 + int(where * (len(data) - 3))] = value  # keep the magic so the JPEG path runs
    if keep is not None:
        data = data[: max(3, int(len(data) * keep))]
    assert _outcome(bytes(data)) in {
        "ok",
        "truncated",
        "malformed",
        "exif_malformed",
        "too_many_pixels",
    }


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600), st.sampled_from([b"MM\x00*", b"II*\x00"]))
def test_fuzzed_exif_block_never_crashes(kit, body, header):
    plain = kit.make_jpeg(exif=None, size=(32, 24))
    order = ">" if header == b"MM\x00*" else "<"
    payload = b"Exif\x00\x00" + header + struct.pack(order + "L", 8) + body
    assert _outcome(with_app1(plain, payload)) in {"ok", "exif_malformed"}


def test_real_image_with_pixels_limit_default_is_read(kit):
    # A 6 Mpx photo, like a phone's, passes the default limits and decodes at 1/8 scale.
    img = Image.new("RGB", (3000, 2000), (90, 140, 60))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, exif=kit.make_exif())
    info = finishes(lambda: read_photo(buf.getvalue()))
    assert (info.width, info.height) == (3000, 2000)


def _scan_start(jpeg: bytes) -> int:
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]


@pytest.mark.parametrize("ending", [b"", b"\xff\xd9", b"\x00\xff\xd9"])
def test_long_runs_of_ff_in_the_image_data(plain, ending):
    # A naive "\xff+" marker search backtracks quadratically on runs of 0xFF (40 kB took 5 s).
    data = plain[: _scan_start(plain)] + b"\xff" * 2_000_000 + ending
    try:
        info = finishes(lambda: read_photo(data))
    except PhotoRejected as err:
        assert err.code in {"truncated", "malformed"}
    else:
        assert (info.width, info.height) == (64, 48)


def test_metadata_walk_is_time_boxed(monkeypatch, good_photo):
    # The CPU budget is what stops a structure the limits did not foresee; with none left, refuse.
    import s3tr.photos.exif as exif_module

    monkeypatch.setattr(exif_module, "_PARSE_BUDGET_S", -1.0)
    assert rejected(good_photo).code == "too_slow"
