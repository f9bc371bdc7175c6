"""Loading declared parcels: formats, the output contract, repairs, rejects and file-level errors."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import LineString, Point, Polygon, box

from s3tr.errors import ParcelFileError
from s3tr.parcels import (
    department_from_commune,
    department_from_pacage,
    load_parcels,
    write_rejects,
)
from s3tr.parcels.load import OUTPUT_COLUMNS, REJECT_COLUMNS

# A corner of the Vienne (86) in Lambert-93, where the demo season lives.
X0, Y0 = 497_000.0, 6_610_000.0


def _square(i: int, size: float = 100.0) -> Polygon:
    x = X0 + i * 200.0
    return box(x, Y0, x + size, Y0 + size)


def _frame(n: int = 4, **columns: object) -> gpd.GeoDataFrame:
    data = {
        "id_parcel": [f"P{i}" for i in range(n)],
        "code_cultu": ["bth", "PPH ", "mis", "ptr"][:n] + ["BTH"] * max(0, n - 4),
    }
    data.update(columns)
    return gpd.GeoDataFrame(data, geometry=[_square(i) for i in range(n)], crs="EPSG:2154")


def _write(frame: gpd.GeoDataFrame, path: Path, **kwargs: object) -> Path:
    frame.to_file(path, **kwargs)
    return path


# --- the real RPG sample ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rpg_gpkg(realdata: Path) -> Path:
    return realdata / "rpg_sample" / "PARCELLES_GRAPHIQUES.gpkg"


@pytest.mark.integration
def test_real_rpg_sample_loads_with_the_contracted_columns(rpg_gpkg: Path) -> None:
    raw = gpd.read_file(rpg_gpkg)
    result = load_parcels(rpg_gpkg, campaign=2022)
    p = result.parcels

    assert len(p) == len(raw) == 100
    assert result.rejects.empty
    assert list(p.columns) == list(OUTPUT_COLUMNS)
    assert p.crs.to_epsg() == 2154
    assert p["id_parcel"].is_unique
    assert list(p["id_parcel"]) == [s.strip() for s in raw["id_parcel"]]
    assert pd.api.types.is_string_dtype(p["id_parcel"]) and pd.api.types.is_string_dtype(p["code_cultu"])
    assert (p["code_cultu"] == p["code_cultu"].str.upper()).all()
    assert p["code_group"].dtype == "Int64"
    assert list(p["code_group"]) == [int(v) for v in raw["code_group"]]
    assert p["surf_parc"].dtype == np.float64
    np.testing.assert_allclose(p["surf_parc"], raw["surf_parc"].astype(float))
    assert p["campaign"].dtype == "Int64" and (p["campaign"] == 2022).all()
    # The sample has neither PACAGE nor commune code: department is unknown (NA), never invented.
    assert p["pacage"].isna().all()
    assert p["department"].isna().all()
    assert p.geom_type.isin(["Polygon", "MultiPolygon"]).all() and p.is_valid.all()


@pytest.mark.integration
def test_real_rpg_geojson_in_wgs84_keeps_its_crs(realdata: Path) -> None:
    path = realdata / "rpg_sample" / "parcelles_graphiques_2022_sample100_wgs84.geojson"
    result = load_parcels(path)
    assert result.parcels.crs.to_epsg() == 4326
    assert len(result.parcels) == 100 and result.rejects.empty
    # No campaign column and none given: NA, not a made-up year.
    assert result.parcels["campaign"].isna().all()


@pytest.mark.integration
def test_surface_computed_from_geometry_matches_the_declared_one(rpg_gpkg: Path, tmp_path: Path) -> None:
    raw = gpd.read_file(rpg_gpkg)
    # Same parcels in lon/lat without surf_parc: the area must come from an equal-area computation.
    path = _write(raw.drop(columns="surf_parc").to_crs("EPSG:4326"), tmp_path / "nosurf.gpkg")
    p = load_parcels(path).parcels
    # Independent check: geodesic area on the GRS80 ellipsoid (pyproj.Geod), to 0.01 %.
    geod = Geod(ellps="GRS80")
    geodesic_ha = [abs(geod.geometry_area_perimeter(g)[0]) / 1e4 for g in p.geometry]
    np.testing.assert_allclose(p["surf_parc"], geodesic_ha, rtol=1e-4)
    # The declared RPG area is the Lambert-93 plane area rounded to 0.01 ha; Lambert-93's scale error reaches
    # about 0.1 % in length, so 0.2 % in area, across mainland France.
    np.testing.assert_allclose(p["surf_parc"], raw["surf_parc"].astype(float), rtol=3e-3, atol=0.006)


@pytest.mark.integration
def test_upper_case_column_names_are_matched(rpg_gpkg: Path, tmp_path: Path) -> None:
    raw = gpd.read_file(rpg_gpkg)
    upper = raw.rename(columns={c: c.upper() for c in raw.columns if c != "geometry"})
    path = _write(upper, tmp_path / "upper.shp")
    result = load_parcels(path, campaign=2022)
    assert len(result.parcels) == 100
    assert list(result.parcels.columns) == list(OUTPUT_COLUMNS)
    assert list(result.parcels["code_cultu"]) == list(raw["code_cultu"])


# --- formats and column normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet", ".shp", ".geojson"])
def test_every_supported_format_gives_the_same_parcels(tmp_path: Path, suffix: str) -> None:
    frame = _frame(code_group=["1", "18", "2", "19"], surf_parc=[1.0, 1.0, 1.0, 1.0])
    path = tmp_path / f"parcels{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    p = load_parcels(path, campaign=2025).parcels
    assert list(p["id_parcel"]) == ["P0", "P1", "P2", "P3"]
    assert list(p["code_cultu"]) == ["BTH", "PPH", "MIS", "PTR"]
    assert list(p["code_group"]) == [1, 18, 2, 19]
    assert p.crs.to_epsg() == 2154


def test_numeric_pacage_is_zero_padded_and_gives_the_department(tmp_path: Path) -> None:
    frame = _frame(pacage=[86001234, 86001234, 2001234, 971001234])
    path = _write(frame, tmp_path / "p.gpkg")
    p = load_parcels(path).parcels
    assert list(p["pacage"]) == ["086001234", "086001234", "002001234", "971001234"]
    assert list(p["department"]) == ["86", "86", "02", "971"]


def test_commune_code_wins_over_pacage_and_is_kept(tmp_path: Path) -> None:
    frame = _frame(
        PACAGE=["086000001", "086000002", "086000003", "086000004"],
        INSEE_COM=["79191", "2A004", "97209", None],
    )
    p = load_parcels(_write(frame, tmp_path / "p.gpkg")).parcels
    assert list(p.columns) == [*OUTPUT_COLUMNS[:-1], "commune", "geometry"]
    assert list(p["department"]) == ["79", "2A", "972", "86"]  # the last has no commune: from its PACAGE
    assert p["commune"].iloc[1] == "2A004"


def test_id_parcel_read_as_numbers_and_padded_strings(tmp_path: Path) -> None:
    frame = _frame()
    frame["id_parcel"] = [19.0, 20.0, 21.0, 22.0]
    p = load_parcels(_write(frame, tmp_path / "p.gpkg")).parcels
    assert list(p["id_parcel"]) == ["19", "20", "21", "22"]

    frame["id_parcel"] = ["  a1 ", "a2", "a3\t", "a4"]
    p = load_parcels(_write(frame, tmp_path / "q.gpkg")).parcels
    assert list(p["id_parcel"]) == ["a1", "a2", "a3", "a4"]


def test_campaign_column_wins_and_fills_from_the_argument(tmp_path: Path) -> None:
    frame = _frame(campaign=[2024, None, 2024, 2024])
    p = load_parcels(_write(frame, tmp_path / "p.gpkg"), campaign=2025).parcels
    assert list(p["campaign"]) == [2024, 2025, 2024, 2024]


# --- geometry repairs and rejects -------------------------------------------------------------------------


def test_bow_tie_is_repaired_and_an_unrepairable_polygon_rejected(tmp_path: Path, caplog) -> None:
    frame = _frame()
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])
    collapsed = Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 100, Y0 + 100), (X0, Y0)])
    assert not bow_tie.is_valid and not collapsed.is_valid
    frame.loc[1, "geometry"] = bow_tie
    frame.loc[2, "geometry"] = collapsed
    with caplog.at_level(logging.WARNING, logger="s3tr.parcels.load"):
        result = load_parcels(_write(frame, tmp_path / "p.gpkg"))

    p = result.parcels.set_index("id_parcel")
    assert list(p.index) == ["P0", "P1", "P3"]
    repaired = p.loc["P1", "geometry"]
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon"
    assert repaired.area == pytest.approx(5000.0)  # the two triangles of the bow tie
    assert list(result.repairs["id_parcel"]) == ["P1"]

    assert list(result.rejects.columns) == list(REJECT_COLUMNS)
    row = result.rejects.iloc[0]
    assert (row["record"], row["id_parcel"]) == (3, "P2")
    assert "make_valid" in row["reason"] and "Self-intersection" in row["reason"]
    assert row["source"] == str(tmp_path / "p.gpkg")
    assert "record 3 (id_parcel P2) rejected" in caplog.text


def test_empty_null_and_non_polygon_geometries_are_rejected_with_reasons(tmp_path: Path) -> None:
    frame = _frame(6)
    frame.loc[1, "geometry"] = Point(X0, Y0)
    frame.loc[2, "geometry"] = LineString([(X0, Y0), (X0 + 10, Y0)])
    frame.loc[3, "geometry"] = None
    frame.loc[4, "geometry"] = Polygon()
    path = tmp_path / "p.gpkg"
    frame.to_file(path, geometry_type="Unknown")
    result = load_parcels(path)
    assert list(result.parcels["id_parcel"]) == ["P0", "P5"]
    reasons = dict(zip(result.rejects["id_parcel"], result.rejects["reason"], strict=True))
    assert reasons["P1"] == "not a polygon: Point"
    assert reasons["P2"] == "not a polygon: LineString"
    assert reasons["P3"] in {"no geometry", "empty geometry"}
    assert reasons["P4"] in {"no geometry", "empty geometry"}
    assert len(result.parcels) + len(result.rejects) == len(frame)


def test_duplicate_id_keeps_the_first_and_names_its_record(tmp_path: Path) -> None:
    frame = _frame(5)
    frame["id_parcel"] = ["A", "B", "A", "C", "A"]
    result = load_parcels(_write(frame, tmp_path / "p.gpkg"))
    p = result.parcels
    assert list(p["id_parcel"]) == ["A", "B", "C"]
    assert p.geometry.iloc[0].equals(_square(0))  # the first "A" was kept
    assert list(result.rejects["record"]) == [3, 5]
    for reason in result.rejects["reason"]:
        assert "duplicate id_parcel 'A'" in reason and "record 1" in reason


def test_missing_id_or_crop_code_is_rejected(tmp_path: Path) -> None:
    frame = _frame()
    frame["id_parcel"] = ["P0", None, "  ", "P3"]
    frame["code_cultu"] = ["BTH", "BTH", "BTH", None]
    result = load_parcels(_write(frame, tmp_path / "p.gpkg"))
    assert list(result.parcels["id_parcel"]) == ["P0"]
    assert list(result.rejects["reason"]) == ["missing id_parcel", "missing id_parcel", "missing code_cultu"]


def test_write_rejects_round_trips(tmp_path: Path) -> None:
    frame = _frame()
    frame["id_parcel"] = ["A", "A", "B", "C"]
    result = load_parcels(_write(frame, tmp_path / "p.gpkg"))
    out = write_rejects(result.rejects, tmp_path / "report" / "rejects.csv")
    back = pd.read_csv(out)
    assert list(back.columns) == list(REJECT_COLUMNS)
    assert back.loc[0, "record"] == 2 and back.loc[0, "id_parcel"] == "A"


# --- file-level errors ------------------------------------------------------------------------------------


def test_truncated_geopackage_names_the_file(tmp_path: Path) -> None:
    path = _write(_frame(200), tmp_path / "parcels.gpkg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ParcelFileError, match=r"parcels\.gpkg") as err:
        load_parcels(path)
    assert "cannot read" in str(err.value)


def test_missing_file_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(ParcelFileError, match="not found"):
        load_parcels(tmp_path / "nope.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not a geopackage")
    with pytest.raises(ParcelFileError, match=r"junk\.gpkg"):
        load_parcels(junk)


def test_missing_required_column_lists_the_columns_found(tmp_path: Path) -> None:
    frame = _frame().rename(columns={"code_cultu": "culture"})
    with pytest.raises(ParcelFileError) as err:
        load_parcels(_write(frame, tmp_path / "p.gpkg"))
    message = str(err.value)
    assert "code_cultu" in message and "'culture'" in message and "'id_parcel'" in message
    assert "p.gpkg" in message


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_missing_crs_says_how_to_fix(tmp_path: Path) -> None:
    frame = _frame().set_crs(None, allow_override=True)
    # (GeoJSON implies WGS84, so a shapefile without .prj it is.)
    shp = _write(frame, tmp_path / "p.shp")
    shp.with_suffix(".prj").unlink(missing_ok=True)
    with pytest.raises(ParcelFileError, match=r"no CRS.*EPSG:2154"):
        load_parcels(shp)


def test_lambert93_coordinates_labelled_as_degrees_and_vice_versa(tmp_path: Path) -> None:
    as_degrees = _frame().set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(ParcelFileError, match="not degrees"):
        load_parcels(_write(as_degrees, tmp_path / "a.gpkg"))

    degrees = _frame().to_crs("EPSG:4326").set_crs("EPSG:2154", allow_override=True)
    with pytest.raises(ParcelFileError, match="look like degrees"):
        load_parcels(_write(degrees, tmp_path / "b.gpkg"))

    # UTM 31N coordinates of the Vienne labelled Lambert-93 land in the Sahara.
    utm_as_l93 = _frame().to_crs("EPSG:32631").set_crs("EPSG:2154", allow_override=True)
    with pytest.raises(ParcelFileError, match="outside the area of use of its declared CRS EPSG:2154"):
        load_parcels(_write(utm_as_l93, tmp_path / "c.gpkg"))


def test_empty_layer_is_an_error(tmp_path: Path) -> None:
    path = _write(_frame().iloc[:0], tmp_path / "empty.gpkg")
    with pytest.raises(ParcelFileError, match=r"no parcels in .*empty\.gpkg"):
        load_parcels(path)


def test_multi_layer_file_needs_a_layer(tmp_path: Path) -> None:
    path = tmp_path / "multi.gpkg"
    _frame().to_file(path, layer="a")
    _frame(2).to_file(path, layer="b")
    with pytest.raises(ParcelFileError, match=r"several layers.*layer="):
        load_parcels(path)
    assert len(load_parcels(path, layer="b").parcels) == 2


# --- departments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commune", "department"),
    [
        ("86194", "86"),
        ("01053", "01"),
        (1053, "01"),
        ("2A004", "2A"),
        ("2b033", "2B"),
        ("97105", "971"),
        ("97411", "974"),
        ("97611", "976"),
        ("20004", None),  # pre-1976 Corsican code: 2A or 2B is unknown
        ("99100", None),  # abroad
        ("8619", "08"),  # four digits: a code that lost its leading zero (08 Ardennes)
        (None, None),
    ],
)
def test_department_from_commune(commune: object, department: str | None) -> None:
    result = department_from_commune(pd.Series([commune], dtype=object)).iloc[0]
    assert (pd.isna(result) and department is None) or result == department


@pytest.mark.parametrize(
    ("pacage", "department"),
    [
        ("086123456", "86"),
        ("001123456", "01"),
        ("095123456", "95"),
        ("02A123456", "2A"),
        ("02B123456", "2B"),
        ("971123456", "971"),
        ("974123456", "974"),
        ("976123456", "976"),
        ("020123456", None),  # Corsica before the split
        ("000123456", None),
        ("096123456", None),
        ("123456789", None),
        (None, None),
    ],
)
def test_department_from_pacage(pacage: str | None, department: str | None) -> None:
    result = department_from_pacage(pd.Series([pacage], dtype=object)).iloc[0]
    assert (pd.isna(result) and department is None) or result == department


def test_malformed_pacage_becomes_na_and_is_logged(tmp_path: Path, caplog) -> None:
    frame = _frame(pacage=["086000001", "86-0001", "0860000011", "02A000001"])
    with caplog.at_level(logging.WARNING, logger="s3tr.parcels.load"):
        p = load_parcels(_write(frame, tmp_path / "p.gpkg")).parcels
    assert p["pacage"].isna().tolist() == [False, True, True, False]
    assert list(p["department"].fillna("NA")) == ["86", "NA", "NA", "2A"]
    assert "2 PACAGE value(s)" in caplog.text


def test_geometry_collection_keeps_its_polygons(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[0, "geometry"] = shapely.GeometryCollection([_square(0), LineString([(X0, Y0), (X0 - 50, Y0)])])
    path = tmp_path / "p.gpkg"
    frame.to_file(path, geometry_type="Unknown")
    result = load_parcels(path)
    assert result.parcels.geometry.iloc[0].equals(_square(0))
    assert "GeometryCollection" in result.repairs["repair"].iloc[0]
