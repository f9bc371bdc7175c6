"""check_photo against a parcel near Poitiers: each named check passes and fails for the right reason."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from pyproj import Geod
from shapely.geometry import mapping

from s3tr.errors import ParcelGeometryError
from s3tr.photos import CHECK_NAMES, CheckResult, PhotoCheckInputError, check_photo, read_photo


def run(kit, data: bytes, **overrides) -> dict[str, CheckResult]:
    args = {
        "parcel_geometry_wgs84": kit.parcel,
        "requested_at": kit.requested_at,
        "deadline": kit.deadline,
        "now": kit.now,
    }
    args.update(overrides)
    results = check_photo(read_photo(data), **args)
    assert [r.name for r in results] == list(CHECK_NAMES)
    return {r.name: r for r in results}


def photo_at(kit, dx: float, dy: float, **exif_args) -> bytes:
    lon, lat = kit.offset_position(dx, dy)
    return kit.make_jpeg(lon=lon, lat=lat, **exif_args)


def test_good_photo_passes_every_check(kit, good_photo):
    results = run(kit, good_photo, heading_required=True)
    assert {name: r.passed for name, r in results.items()} == dict.fromkeys(CHECK_NAMES, True)
    for r in results.values():
        assert r.message_fr and r.message_en and r.message_fr != r.message_en
    assert results["position"].details["inside_parcel"] is True
    assert results["heading"].details["ray_hits_parcel"] is True


def test_results_are_json_ready(kit, good_photo):
    import json

    results = check_photo(
        read_photo(good_photo),
        parcel_geometry_wgs84=mapping(kit.parcel),  # GeoJSON accepted as well
        requested_at=kit.requested_at,
        deadline=kit.deadline,
        now=kit.now,
    )
    assert json.loads(json.dumps([r.as_dict() for r in results]))[2]["name"] == "position"


def test_outside_the_parcel_fails_position(kit):
    # 135 m south of the south edge (which is 75 m from the centre).
    results = run(kit, photo_at(kit, 0, -210))
    pos = results["position"]
    assert pos.passed is False
    assert pos.details["distance_to_parcel_m"] == pytest.approx(135.0, abs=0.5)
    assert "135 m" in pos.message_fr and "135 m" in pos.message_en
    assert results["coordinates_plausible"].passed is True  # far, but not a misreading


def test_buffer_and_target_point(kit):
    # 15 m outside the east edge: inside the 20 m buffer.
    assert run(kit, photo_at(kit, 115, 0))["position"].passed is True
    assert run(kit, photo_at(kit, 115, 0), position_buffer_m=10.0)["position"].passed is False
    # 80 m outside the parcel but 30 m from the requested spot: accepted.
    target = kit.offset_position(180, 30)
    near = run(kit, photo_at(kit, 180, 0), target_point=target)["position"]
    assert near.passed is True
    assert near.details["distance_to_target_m"] == pytest.approx(30.0, abs=0.5)
    assert run(kit, photo_at(kit, 180, 0))["position"].passed is False


def test_swapped_lat_lon_is_detected(kit):
    lon, lat = kit.offset_position(10, 10)
    results = run(kit, kit.make_jpeg(lon=lat, lat=lon))
    assert results["position"].passed is False
    plausible = results["coordinates_plausible"]
    assert plausible.passed is False
    assert plausible.details["problem"] == "swapped"
    assert "inversées" in plausible.message_fr and "swapped" in plausible.message_en


def test_wrong_longitude_sign_is_detected(kit):
    lon, lat = kit.offset_position(10, 10)
    results = run(kit, kit.make_jpeg(lon=-lon, lat=lat))
    assert results["coordinates_plausible"].passed is False
    assert results["coordinates_plausible"].details["problem"] == "longitude_sign"


def test_null_island_fails_gps_and_plausibility(kit):
    results = run(kit, kit.make_jpeg(lon=0.0, lat=0.0))
    assert results["gps_present"].passed is False
    assert results["position"].passed is None
    assert results["coordinates_plausible"].passed is False


LATER = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("taken", "offset", "now", "problem"),
    [
        ("2024:06:09 18:00:00", "+02:00", None, "before_request"),
        ("2024:06:21 08:00:00", "+02:00", LATER, "after_deadline"),
        ("2024:06:13 14:00:00", "+02:00", None, "future"),  # now is 12:00 Paris time
        ("2024:06:13 12:00:00", "-05:00", None, "future"),  # 17:00 UTC: the offset counts
    ],
)
def test_capture_time_window(kit, taken, offset, now, problem):
    result = run(kit, kit.make_jpeg(taken=taken, offset=offset), now=now or kit.now)["capture_time"]
    assert result.passed is False
    assert result.details["problems"][0] == problem


def test_capture_time_edges(kit):
    # Two minutes ahead of "now" is phone clock drift, not a future photo.
    ahead = run(kit, kit.make_jpeg(taken="2024:06:13 12:02:00", offset="+02:00"))["capture_time"]
    assert ahead.passed is True
    # A date deadline lasts to the end of that day in Paris.
    late_evening = kit.make_jpeg(taken="2024:06:20 23:30:00", offset="+02:00")
    assert run(kit, late_evening, deadline=date(2024, 6, 20), now=LATER)["capture_time"].passed is True
    assert run(kit, late_evening, deadline=date(2024, 6, 19), now=LATER)["capture_time"].passed is False


def test_assumed_local_time_is_said_in_the_message(kit):
    result = run(kit, kit.make_jpeg(offset=None))["capture_time"]
    assert result.passed is True
    assert result.details["source"] == "assumed_local"
    assert "fuseau horaire" in result.message_fr


def test_heading_towards_passes_and_away_fails(kit):
    # 150 m south of the parcel centre (75 m outside): the parcel is to the north.
    towards = run(kit, photo_at(kit, 0, -150, heading=5.0), position_buffer_m=100.0)["heading"]
    assert towards.passed is True
    # Our offsets are UTM-grid metres; true north here (2.7 degrees west of the zone's central
    # meridian) is turned ~2 degrees from grid north. The check must agree with the ellipsoid.
    lon, lat = kit.offset_position(0, -150)
    true_bearing = Geod(ellps="WGS84").inv(lon, lat, kit.parcel.centroid.x, kit.parcel.centroid.y)[0] % 360
    assert towards.details["bearing_to_centroid_deg"] == pytest.approx(true_bearing, abs=0.2)
    assert abs(towards.details["grid_convergence_deg"]) > 1.5
    away = run(kit, photo_at(kit, 0, -150, heading=185.0), position_buffer_m=100.0)["heading"]
    assert away.passed is False
    assert "nord" in away.message_fr and "north" in away.message_en
    # From here the parcel spans bearings -53..53 degrees (its south corners); the view cone is +-60.
    glancing = run(kit, photo_at(kit, 0, -150, heading=105.0), position_buffer_m=100.0)["heading"]
    assert glancing.passed is True
    assert glancing.details["ray_hits_parcel"] is False
    aside = run(kit, photo_at(kit, 0, -150, heading=120.0), position_buffer_m=100.0)["heading"]
    assert aside.passed is False


def test_heading_expected_direction(kit):
    data = photo_at(kit, 0, -150, heading=20.0)
    assert run(kit, data, expected_heading_deg=0.0)["heading"].passed is True
    wrong = run(kit, data, expected_heading_deg=270.0)["heading"]
    assert wrong.passed is False
    assert wrong.details["off_expected_deg"] == pytest.approx(110.0)


def test_heading_missing_required_or_not(kit):
    data = photo_at(kit, 0, 0)
    assert run(kit, data)["heading"].passed is None
    required = run(kit, data, heading_required=True)["heading"]
    assert required.passed is False
    assert "boussole" in required.message_fr


def test_duplicates_exact_and_reencoded(kit, good_photo):
    from PIL import Image

    first = read_photo(good_photo)
    known = [(first.sha256, first.phash)]
    exact = run(kit, good_photo, known_hashes=known)["not_duplicate"]
    assert exact.passed is False and exact.details["exact_duplicate"] is True

    # Re-encoded smaller, at lower quality, with the same EXIF: new bytes, same picture.
    img = Image.open(io.BytesIO(good_photo))
    buf = io.BytesIO()
    img.resize((480, 360), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=60, exif=img.getexif())
    copy = buf.getvalue()
    assert read_photo(copy).sha256 != first.sha256
    reused = run(kit, copy, known_hashes=known)["not_duplicate"]
    assert reused.passed is False
    assert reused.details["exact_duplicate"] is False
    assert reused.details["closest_phash_distance"] <= 6

    other = run(kit, kit.make_jpeg(seed=7), known_hashes=known)["not_duplicate"]
    assert other.passed is True
    assert other.details["closest_phash_distance"] > 6


def test_no_exif_fails_exif_present_and_leaves_others_unknown(kit):
    results = run(kit, kit.make_jpeg(exif=None), heading_required=True)
    assert results["exif_present"].passed is False
    for name in ("gps_present", "position", "capture_time", "heading", "coordinates_plausible"):
        assert results[name].passed is None, name
    # The pixels are there: duplicates are still caught without EXIF.
    assert results["not_duplicate"].passed is True


def test_missing_gps_fails_gps_present(kit):
    results = run(kit, kit.make_jpeg(lon=None, lat=None, heading=10.0))
    assert results["gps_present"].passed is False
    assert results["position"].passed is None
    assert results["heading"].passed is None


def test_bad_inputs_are_refused(kit, good_photo):
    info = read_photo(good_photo)
    base = {"requested_at": kit.requested_at, "deadline": kit.deadline, "now": kit.now}
    with pytest.raises(PhotoCheckInputError):
        check_photo(info, parcel_geometry_wgs84=kit.parcel, **{**base, "now": datetime(2024, 6, 13)})
    with pytest.raises(PhotoCheckInputError):
        check_photo(info, parcel_geometry_wgs84=kit.parcel, target_point=(200.0, 46.0), **base)
    with pytest.raises(PhotoCheckInputError):
        check_photo(
            info, parcel_geometry_wgs84=kit.parcel, **{**base, "deadline": datetime(2024, 1, 1, tzinfo=UTC)}
        )
    projected = {
        "type": "Polygon",
        "coordinates": [[(500000, 5160000), (500200, 5160000), (500200, 5160150)]],
    }
    with pytest.raises(ParcelGeometryError, match="WGS84"):
        check_photo(info, parcel_geometry_wgs84=projected, **base)


def test_multipolygon_and_self_intersecting_parcels(kit):
    from shapely.geometry import MultiPolygon, Polygon

    # The parcel plus a far-away second piece 1 km east: a photo on the second piece is inside.
    east = [kit.offset_position(dx, dy) for dx, dy in [(900, -50), (1100, -50), (1100, 50), (900, 50)]]
    multi = MultiPolygon([kit.parcel, Polygon(east)])
    assert run(kit, photo_at(kit, 1000, 0), parcel_geometry_wgs84=multi)["position"].passed is True
    assert run(kit, photo_at(kit, 1000, 0))["position"].passed is False
    # A bow-tie outline (self-intersecting) is repaired, not refused.
    a, b, c, d = (kit.offset_position(x, y) for x, y in [(-100, -75), (100, 75), (100, -75), (-100, 75)])
    bowtie = Polygon([a, b, c, d])
    assert not bowtie.is_valid
    assert run(kit, photo_at(kit, 60, 0), parcel_geometry_wgs84=bowtie)["position"].passed is True
