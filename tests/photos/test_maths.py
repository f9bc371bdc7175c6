"""Properties of the coordinate and bearing maths (hypothesis)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import Point

from s3tr.photos import (
    angular_difference_deg,
    check_photo,
    decimal_to_dms,
    dms_to_decimal,
    grid_bearing_deg,
    phash_distance,
    read_photo,
)

GEOD = Geod(ellps="WGS84")
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@given(st.floats(-90, 90), st.sampled_from(["lat", "lon"]))
def test_decimal_dms_round_trip(value, axis):
    d, m, s, ref = decimal_to_dms(value, axis=axis)
    assert isinstance(d, int) and isinstance(m, int)
    assert 0 <= m < 60 and 0 <= s < 60
    assert ref in ({"N", "S"} if axis == "lat" else {"E", "W"})
    assert dms_to_decimal(d, m, s, ref) == pytest.approx(value, abs=1e-9)


@given(st.integers(0, 179), st.integers(0, 59), st.floats(0, 60, exclude_max=True), st.sampled_from("EW"))
def test_dms_decimal_round_trip(d, m, s, ref):
    value = dms_to_decimal(d, m, s, ref)
    assert (value < 0) == (ref == "W" and (d, m, s) != (0, 0, 0.0))
    d2, m2, s2, ref2 = decimal_to_dms(value, axis="lon")
    assert dms_to_decimal(d2, m2, s2, ref2) == pytest.approx(value, abs=1e-9)
    # Same angle, maybe written differently at a carry (59.9999999 s -> next minute).
    assert abs((d2 * 3600 + m2 * 60 + s2) - (d * 3600 + m * 60 + s)) < 1e-5


@pytest.mark.parametrize(
    "bad", [(-1, 0, 0, "N"), (1, 60.5, 0, "N"), (1, 0, 61, "N"), (1, 0, 0, "X"), (float("nan"), 0, 0, "N")]
)
def test_dms_rejects_bad_parts(bad):
    with pytest.raises(ValueError):
        dms_to_decimal(*bad)


@settings(FIXTURE_OK, max_examples=40)
@given(
    st.floats(-89.9, 89.9).filter(lambda v: abs(v) > 1e-3),
    st.floats(-179.9, 179.9).filter(lambda v: abs(v) > 1e-3),
)
def test_position_survives_real_exif(kit, lat, lon):
    # Written with Pillow's EXIF rationals into a real JPEG, read back: within a millimetre.
    info = read_photo(kit.make_jpeg(size=(16, 16), lat=lat, lon=lon))
    assert info.lat == pytest.approx(lat, abs=1e-8)
    assert info.lon == pytest.approx(lon, abs=1e-8)


@given(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.floats(-720, 720))
def test_angular_difference_properties(a, b, turn):
    diff = angular_difference_deg(a, b)
    assert 0 <= diff <= 180
    assert diff == pytest.approx(angular_difference_deg(b, a), abs=1e-9)
    assert diff == pytest.approx(angular_difference_deg(a + turn, b + turn), abs=1e-6)
    assert angular_difference_deg(a, a + 360.0) == pytest.approx(0.0, abs=1e-6)


@given(st.floats(0, 360, exclude_max=True), st.floats(1e-3, 1e5))
def test_grid_bearing_inverts_heading(heading, r):
    rad = math.radians(heading)
    bearing = grid_bearing_deg(r * math.sin(rad), r * math.cos(rad))
    assert 0 <= bearing < 360
    assert angular_difference_deg(bearing, heading) < 1e-6


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_phash_distance_is_popcount_of_xor(a, b):
    ha, hb = f"{a:016x}", f"{b:016x}"
    assert phash_distance(ha, hb) == bin(a ^ b).count("1")
    assert phash_distance(ha, ha) == 0


@pytest.fixture(scope="module")
def base_info(kit):
    return read_photo(kit.make_jpeg(size=(16, 16), heading=0.0))


@settings(FIXTURE_OK, max_examples=60)
@given(st.floats(0, 360, exclude_max=True), st.floats(200, 450), st.floats(-30, 30))
def test_heading_towards_the_parcel_passes_and_away_fails(kit, base_info, azimuth, distance, aim_error):
    # Stand `distance` metres from the parcel centre, in direction `azimuth` (ellipsoid),
    # then aim back at the centre (give or take `aim_error`) or exactly away from it.
    c = kit.parcel.centroid
    lon, lat, back = GEOD.fwd(c.x, c.y, azimuth, distance)
    towards = (back + aim_error) % 360.0
    away = (back + 180.0) % 360.0
    assume(not kit.parcel.contains(Point(lon, lat)))

    def heading_passed(heading: float) -> bool | None:
        info = dataclasses.replace(base_info, lat=lat, lon=lon, heading_deg=heading)
        results = check_photo(
            info,
            parcel_geometry_wgs84=kit.parcel,
            requested_at=kit.requested_at,
            deadline=kit.deadline,
            now=kit.now,
            heading_required=True,
            heading_tolerance_deg=45.0,
        )
        heading_result = next(r for r in results if r.name == "heading")
        assert angular_difference_deg(heading_result.details["bearing_to_centroid_deg"], back) < 0.5
        return heading_result.passed

    assert heading_passed(towards) is True
    assert heading_passed(away) is False
