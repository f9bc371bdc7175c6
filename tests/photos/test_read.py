"""read_photo on well-formed photos: every field read from real EXIF written by Pillow."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from PIL import ExifTags, Image

from s3tr.errors import S3trError
from s3tr.photos import PhotoInfo, PhotoRejected, phash_distance, read_photo


def test_good_photo_fields(kit, good_photo):
    info = read_photo(good_photo)
    lon, lat = kit.offset_position(0, -60)
    assert isinstance(info, PhotoInfo)
    assert (info.width, info.height) == (640, 480)
    assert info.sha256 == hashlib.sha256(good_photo).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{16}", info.phash)
    assert info.size_bytes == len(good_photo)
    assert info.has_exif
    # EXIF stores rationals: the round trip keeps well under a millimetre.
    assert info.lat == pytest.approx(lat, abs=1e-8)
    assert info.lon == pytest.approx(lon, abs=1e-8)
    assert info.altitude == pytest.approx(118.0)
    assert info.gps_accuracy_m == pytest.approx(4.0)
    assert info.heading_deg == pytest.approx(10.0)
    assert info.heading_ref == "T"
    assert info.captured_at == datetime(2024, 6, 12, 12, 3, tzinfo=UTC)
    assert info.captured_at.utcoffset() == timedelta(hours=2)
    assert info.captured_at_source == "exif_offset"
    assert (info.camera_make, info.camera_model, info.software) == ("Fairphone", "FP5", "s3tr-tests")
    assert info.gps_issue is None
    gps = info.device_declared["gps"]
    assert gps["map_datum"] == "WGS-84"
    assert gps["processing_method"] == "GPS"
    assert info.device_declared["jpeg"]["progressive"] is False


def test_photo_info_is_json_ready_and_frozen(good_photo):
    import json

    info = read_photo(good_photo)
    text = json.dumps(info.as_dict())
    assert '"captured_at": "2024-06-12T14:03:00+02:00"' in text
    with pytest.raises(AttributeError):
        info.lat = 0.0  # type: ignore[misc]


def test_no_exif_gives_none_fields(kit):
    info = read_photo(kit.make_jpeg(exif=None))
    assert not info.has_exif
    assert info.lat is None and info.lon is None and info.captured_at is None
    assert info.heading_deg is None and info.camera_make is None
    assert re.fullmatch(r"[0-9a-f]{16}", info.phash)


def test_southern_western_hemispheres_are_negative(kit):
    info = read_photo(kit.make_jpeg(lon=-4.4861, lat=-21.1151))
    assert info.lat == pytest.approx(-21.1151, abs=1e-8)
    assert info.lon == pytest.approx(-4.4861, abs=1e-8)


def test_gps_time_is_used_when_offset_missing(kit):
    data = kit.make_jpeg(offset=None, gps_time=("2024:06:12", (12.0, 3.0, 30.0)))
    info = read_photo(data)
    assert info.captured_at == datetime(2024, 6, 12, 12, 3, 30, tzinfo=UTC)
    assert info.captured_at_source == "gps_utc"
    # The naive camera clock (14:03:00) against GPS UTC (12:03:30) says the phone was at UTC+2.
    assert info.device_declared["inferred_utc_offset_min"] == 120


def test_naive_local_time_is_flagged(kit):
    info = read_photo(kit.make_jpeg(offset=None))
    assert info.captured_at_source == "assumed_local"
    assert info.captured_at == datetime(2024, 6, 12, 14, 3, tzinfo=ZoneInfo("Europe/Paris"))
    other = read_photo(kit.make_jpeg(offset=None), local_tz="Indian/Reunion")
    assert other.captured_at == datetime(2024, 6, 12, 14, 3, tzinfo=timezone(timedelta(hours=4)))


def test_offset_and_gps_time_give_clock_gap(kit):
    data = kit.make_jpeg(gps_time=("2024:06:12", (11.0, 3.0, 0.0)))
    info = read_photo(data)
    assert info.captured_at_source == "exif_offset"
    assert info.device_declared["clock_gap_s"] == pytest.approx(3600.0)


@pytest.mark.parametrize(("lat", "lon", "issue"), [(0.0, 0.0, "null_island")])
def test_null_island_is_not_a_position(kit, lat, lon, issue):
    info = read_photo(kit.make_jpeg(lat=lat, lon=lon))
    assert info.lat is None and info.lon is None
    assert info.gps_issue == issue


def test_out_of_range_latitude_is_refused_as_position(kit):
    exif = kit.make_exif(lat=None, lon=None)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (95.0, 0.0, 0.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (0.0, 20.0, 0.0)
    info = read_photo(kit.make_jpeg(exif=exif))
    assert info.lat is None
    assert info.gps_issue == "out_of_range"
    assert info.device_declared["gps_declared_lat"] == pytest.approx(95.0)


def test_magnetic_heading_ref_and_wrapped_360(kit):
    info = read_photo(kit.make_jpeg(heading=360.0, heading_ref="M"))
    assert info.heading_deg == 0.0
    assert info.heading_ref == "M"


def test_progressive_jpeg_reads(kit):
    data = kit.make_jpeg(progressive=True)
    info = read_photo(data)
    assert info.device_declared["jpeg"]["progressive"] is True
    assert info.device_declared["jpeg"]["scans"] > 1
    baseline = read_photo(kit.make_jpeg())
    assert phash_distance(info.phash, baseline.phash) <= 2
    assert info.lat == baseline.lat


def test_trailing_data_after_eoi_is_accepted(kit, good_photo):
    # Motion photos append a video after the JPEG's end marker.
    info = read_photo(good_photo + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    assert info.device_declared["trailing_bytes"] == 5012
    assert info.lat is not None


def test_orientation_is_applied_to_the_perceptual_hash(kit):
    img = kit.field_image(3)
    rotated = img.transpose(Image.Transpose.ROTATE_90)
    exif = kit.make_exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 CW to display": the stored pixels are turned

    def encode(im, ex=None):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92, **({"exif": ex} if ex is not None else {}))
        return buf.getvalue()

    upright = read_photo(encode(img))
    stored_rotated = read_photo(encode(rotated, exif))
    assert stored_rotated.device_declared["orientation"] == 6
    assert phash_distance(upright.phash, stored_rotated.phash) <= 6


def test_rejected_is_an_s3tr_value_error():
    with pytest.raises(S3trError) as caught:
        read_photo(b"")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, PhotoRejected)
    assert caught.value.code == "empty"


def test_rounded_sixty_seconds_are_read(kit):
    # Writers that round 59.99999 s to a rational store (1, 53, 60/1): that is 1.9 degrees.
    exif = kit.make_exif(lat=None, lon=None)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: (46.0, 34.0, 60.0), 3: "E", 4: (1.0, 53.0, 60.0)})
    info = read_photo(kit.make_jpeg(exif=exif))
    assert info.lat == pytest.approx(46 + 35 / 60)
    assert info.lon == pytest.approx(1.9)
