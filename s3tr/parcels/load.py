"""Load a declared-parcels file (RPG) into a validated GeoDataFrame, with a rejects report.

The RPG (*Registre Parcellaire Graphique*) comes as GeoPackage, Shapefile, GeoJSON or GeoParquet, in
Lambert-93 (EPSG:2154) for mainland France and in a local CRS overseas. Editions differ in the case of their
column names (``ID_PARCEL`` vs ``id_parcel``) and in which optional fields they carry, so columns are matched
case-insensitively and normalised to the contract of ``docs/architecture.md``:

========== ============================= =====================================================
column     dtype                         meaning
========== ============================= =====================================================
id_parcel  str (unique, stripped)        parcel identifier
code_cultu str (upper case)              declared crop code (3 letters, e.g. ``BTH``)
code_group Int64                         crop group 1..28, NA when unknown
surf_parc  float64, hectares             declared area; computed from the geometry when missing
pacage     str (9 digits) or missing     farm identifier
campaign   Int64                         declaration year
department str or missing                 ``"86"``, ``"2A"``, ``"971"``
commune    str (5 chars), only if given  INSEE commune code
geometry   Polygon / MultiPolygon        in the file's CRS
========== ============================= =====================================================

Text columns use pandas' default string dtype (``str``; missing values are NaN, so comparisons give plain
booleans); integer columns use the nullable ``Int64`` (missing = ``pd.NA``).

A record that cannot be kept (no id, no crop code, no or non-polygonal geometry, invalid geometry that
``make_valid`` cannot turn into a polygon, duplicate id) is never dropped silently: it is logged and listed in
:attr:`ParcelLoadResult.rejects` with its record number and the reason. Problems with the whole file
(unreadable, no CRS, coordinates that contradict the declared CRS, missing required column, no features) raise
:class:`~s3tr.errors.ParcelFileError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from s3tr.errors import ParcelFileError

__all__ = [
    "OUTPUT_COLUMNS",
    "REJECT_COLUMNS",
    "ParcelLoadResult",
    "department_from_commune",
    "department_from_pacage",
    "load_parcels",
    "write_rejects",
]

logger = logging.getLogger(__name__)

#: Columns of :attr:`ParcelLoadResult.parcels`, in order (``commune`` is inserted before ``geometry``
#: only when the file has a commune code).
OUTPUT_COLUMNS = (
    "id_parcel",
    "code_cultu",
    "code_group",
    "surf_parc",
    "pacage",
    "campaign",
    "department",
    "geometry",
)
#: Columns of :attr:`ParcelLoadResult.rejects` (and of the CSV written by :func:`write_rejects`).
REJECT_COLUMNS = ("source", "record", "id_parcel", "reason")
#: Columns listed in :attr:`ParcelLoadResult.repairs`.
REPAIR_COLUMNS = ("source", "record", "id_parcel", "repair")

# Names a column may carry in the RPG editions and their derivatives, lower case, in order of preference.
_ALIASES: dict[str, tuple[str, ...]] = {
    "id_parcel": ("id_parcel",),
    "code_cultu": ("code_cultu",),
    "code_group": ("code_group",),
    "surf_parc": ("surf_parc",),
    "pacage": ("pacage",),
    "campaign": ("campaign", "campagne"),
    "commune": ("insee_com", "code_insee", "commune"),
}
_REQUIRED = ("id_parcel", "code_cultu")

# Layer names tried, case-insensitively, when a multi-layer file is given without ``layer``.
_DEFAULT_LAYERS = ("parcelles_graphiques", "parcelles")

_PARQUET_SUFFIXES = {".parquet", ".geoparquet", ".pq"}
_POLYGONAL = {"Polygon", "MultiPolygon"}

# Text columns come out in pandas' default string dtype (``str``, missing = NaN, comparisons give plain
# booleans) so that consumers can filter on them directly; pandas < 2.3 lacks it and gets ``string``.
try:
    STR_DTYPE: pd.api.extensions.ExtensionDtype = pd.StringDtype(na_value=np.nan)
except TypeError:  # pragma: no cover - pandas < 2.3
    STR_DTYPE = pd.StringDtype()

# Mainland departments 01..95 without the pre-1976 "20" (Corsica is 2A / 2B).
_METRO_DEPARTMENT = r"(0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5])"
_PACAGE_RE = re.compile(r"^(\d{9}|02[AB]\d{6})$")


@dataclass
class ParcelLoadResult:
    """What :func:`load_parcels` returns.

    Attributes
    ----------
    parcels
        One row per kept parcel; columns :data:`OUTPUT_COLUMNS` (plus ``commune`` when the file has a
        commune code); CRS of the file; ``RangeIndex``.
    rejects
        One row per record not kept: ``source`` (file path, str), ``record`` (1-based position of the feature
        in the layer, int64), ``id_parcel`` (str or NA), ``reason`` (str, human readable).
    source
        The file that was read.
    repairs
        Records kept after a geometry repair: ``source, record, id_parcel, repair``.
    """

    parcels: gpd.GeoDataFrame
    rejects: pd.DataFrame
    source: str
    repairs: pd.DataFrame = field(default_factory=lambda: _empty_table(REPAIR_COLUMNS))

    def summary(self) -> str:
        """One line for logs and run reports."""
        return (
            f"{self.source}: {len(self.parcels)} parcels kept, {len(self.rejects)} rejected, "
            f"{len(self.repairs)} geometries repaired"
        )


def load_parcels(
    path: str | Path, *, campaign: int | None = None, layer: str | None = None
) -> ParcelLoadResult:
    """Read and validate a declared-parcels file.

    Parameters
    ----------
    path
        GeoPackage (``.gpkg``), GeoParquet (``.parquet``), Shapefile (``.shp`` or a ``.zip``) or GeoJSON
        (``.geojson``/``.json``); anything else GDAL reads is tried too.
    campaign
        Declaration year used when the file has no ``campaign`` column (and for the records where it is
        empty). When the file's column disagrees with it, the file wins and a warning is logged.
    layer
        Layer to read from a multi-layer file. Default: the only layer, else ``parcelles_graphiques``.

    Returns
    -------
    ParcelLoadResult
        ``.parcels`` in the file's CRS with the columns of :data:`OUTPUT_COLUMNS`; ``.rejects`` listing every
        record that was not kept and why.

    Raises
    ------
    ParcelFileError
        The file is missing, unreadable or corrupt, has no features, no CRS, coordinates that do not fit its
        CRS, or lacks the ``id_parcel`` or ``code_cultu`` column.
    """
    path = Path(path)
    source = str(path)
    raw = _read(path, layer=layer)
    if len(raw) == 0:
        raise ParcelFileError(f"no parcels in {source}: the layer has no features")
    _check_crs(raw, source)

    columns = _match_columns(raw.columns, source)
    rejects: list[tuple[int, object, str]] = []
    repairs: list[tuple[int, object, str]] = []
    n = len(raw)
    record = np.arange(1, n + 1)
    keep = np.ones(n, dtype=bool)

    def reject(mask: np.ndarray, ids: pd.Series, reason_of: object) -> None:
        for i in np.flatnonzero(mask & keep):
            reason = reason_of(i) if callable(reason_of) else str(reason_of)
            rejects.append((int(record[i]), ids.iloc[i], reason))
        keep[mask] = False

    ids = _clean_id(raw[columns["id_parcel"]])
    reject(ids.isna().to_numpy(), ids, "missing id_parcel")

    code_cultu = _clean_str(raw[columns["code_cultu"]]).str.upper()
    reject(code_cultu.isna().to_numpy(), ids, "missing code_cultu")

    # Duplicates are looked for before the geometry checks: the first declaration of an id is the one kept,
    # even when its geometry turns out to be unusable (then both records are rejected, each with its reason).
    with_id = ids.where(keep)
    dup = (with_id.notna() & with_id.duplicated(keep="first")).to_numpy()
    firsts = ~dup & with_id.notna().to_numpy()
    first_record = dict(zip(with_id[firsts], record[firsts], strict=True))
    reject(
        dup,
        ids,
        lambda i: (
            f"duplicate id_parcel {ids.iloc[i]!r}: already declared by record {first_record[ids.iloc[i]]}"
        ),
    )

    geometry = _check_geometries(raw.geometry.array, keep, ids, record, rejects, repairs)

    parcels = _build_frame(raw, columns, ids, code_cultu, geometry, keep, campaign, source)

    rejects_df = _table(source, rejects, REJECT_COLUMNS)
    repairs_df = _table(source, repairs, REPAIR_COLUMNS)
    for rec, pid, reason in rejects:
        logger.warning("%s: record %d (id_parcel %s) rejected: %s", source, rec, pid, reason)
    for rec, pid, what in repairs:
        logger.info("%s: record %d (id_parcel %s) geometry repaired: %s", source, rec, pid, what)
    result = ParcelLoadResult(parcels=parcels, rejects=rejects_df, source=source, repairs=repairs_df)
    if len(parcels) == 0:
        logger.error("%s: every record was rejected (%d); see the rejects report", source, n)
    else:
        logger.info("%s", result.summary())
    return result


def write_rejects(rejects: pd.DataFrame, path: str | Path) -> Path:
    """Write a rejects table as UTF-8 CSV (columns :data:`REJECT_COLUMNS`, header included).

    Parent directories are created. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = [c for c in REJECT_COLUMNS if c not in rejects.columns]
    if missing:
        raise ValueError(f"rejects table lacks columns {missing}; expected {list(REJECT_COLUMNS)}")
    rejects.loc[:, list(REJECT_COLUMNS)].to_csv(path, index=False, encoding="utf-8")
    return path


# --- departments ------------------------------------------------------------------------------------------


def department_from_commune(commune: pd.Series) -> pd.Series:
    """Department code of INSEE commune codes.

    ``"86194"`` -> ``"86"``, ``"2A004"`` -> ``"2A"``, ``"97105"`` -> ``"971"`` (overseas: three characters).
    Numeric codes that lost their leading zero (``1053``) are zero-padded to five characters first. Codes that
    do not look like a current INSEE code (wrong length, ``"20…"`` from before Corsica's split) give NA.

    Parameters
    ----------
    commune
        Commune codes (str or integer), NA allowed.

    Returns
    -------
    pandas.Series
        pandas' default string dtype, NaN where unknown; same index.
    """
    code = _clean_id(commune).str.upper().str.zfill(5)
    metro = code.str.fullmatch(_METRO_DEPARTMENT + r"\d{3}", na=False)
    overseas = code.str.fullmatch(r"97[1-8]\d\d", na=False)
    dep = code.str.slice(0, 2).where(metro, code.str.slice(0, 3).where(overseas))
    return dep.where(metro | overseas, pd.NA).astype(STR_DTYPE)


def department_from_pacage(pacage: pd.Series) -> pd.Series:
    """Department code from the first three characters of 9-character PACAGE numbers.

    ``"086…"`` -> ``"86"``, ``"02A…"``/``"02B…"`` -> ``"2A"``/``"2B"``, ``"971…"`` -> ``"971"``. A prefix
    ``"020"`` (Corsica before its split: cannot tell 2A from 2B), ``"000"`` or any other prefix gives NA.

    Parameters
    ----------
    pacage
        Normalised PACAGE numbers (str, NA allowed), as in :attr:`ParcelLoadResult.parcels`.

    Returns
    -------
    pandas.Series
        pandas' default string dtype, NaN where unknown; same index.
    """
    p = pacage.astype("string").str.upper()
    prefix = p.str.slice(0, 3)
    metro = prefix.str.fullmatch(r"0" + _METRO_DEPARTMENT, na=False)
    overseas = prefix.str.fullmatch(r"97[1-8]", na=False)
    dep = prefix.str.slice(1, 3).where(metro, prefix.where(overseas))
    return dep.where(metro | overseas, pd.NA).astype(STR_DTYPE)


# --- reading ----------------------------------------------------------------------------------------------


def _read(path: Path, *, layer: str | None) -> gpd.GeoDataFrame:
    source = str(path)
    if not path.exists():
        raise ParcelFileError(f"parcels file {source} not found; check the path")
    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            if layer is not None:
                logger.warning("%s: GeoParquet has a single table; layer %r ignored", source, layer)
            frame = gpd.read_parquet(path)
        else:
            import pyogrio

            if layer is None:
                layer = _pick_layer(pyogrio.list_layers(path), source)
            frame = pyogrio.read_dataframe(path, layer=layer)
        frame = frame.reset_index(drop=True)
    except ParcelFileError:
        raise
    except Exception as exc:  # any GDAL/Arrow failure means the file is unusable as a whole
        raise ParcelFileError(
            f"cannot read parcels file {source} (corrupt, truncated or not a vector format?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise ParcelFileError(f"parcels file {source} has no geometry column; columns: {list(frame.columns)}")
    return frame


def _pick_layer(layers: np.ndarray, source: str) -> str | None:
    names = [str(row[0]) for row in layers]
    if len(names) <= 1:
        return names[0] if names else None
    by_lower = {n.lower(): n for n in names}
    for candidate in _DEFAULT_LAYERS:
        if candidate in by_lower:
            return by_lower[candidate]
    raise ParcelFileError(f"parcels file {source} has several layers {names}; say which one with layer=...")


def _check_crs(frame: gpd.GeoDataFrame, source: str) -> None:
    """Refuse a file without a CRS, or whose coordinates contradict its declared CRS."""
    if frame.crs is None:
        raise ParcelFileError(
            f"parcels file {source} has no CRS; set it (the RPG of mainland France is Lambert-93, "
            "EPSG:2154), e.g. with `ogr2ogr -a_srs EPSG:2154` or GeoDataFrame.set_crs"
        )
    crs: CRS = frame.crs
    geoms = frame.geometry.array
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return  # nothing to judge by; every record will be rejected for its geometry
    minx, miny, maxx, maxy = shapely.total_bounds(geoms[present])
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        raise ParcelFileError(f"parcels file {source} has non-finite coordinates")
    looks_like_degrees = minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90
    name = crs.to_string()
    if crs.is_geographic:
        if not looks_like_degrees:
            raise ParcelFileError(
                f"parcels file {source} declares the geographic CRS {name} but its coordinates "
                f"({minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}) are not degrees; declare the right CRS "
                "(the RPG of mainland France is Lambert-93, EPSG:2154)"
            )
        return
    if looks_like_degrees:
        raise ParcelFileError(
            f"parcels file {source} declares the projected CRS {name} but its coordinates "
            f"({minx:.4f}, {miny:.4f}, {maxx:.4f}, {maxy:.4f}) look like degrees; declare EPSG:4326 instead"
        )
    aou = crs.area_of_use
    if aou is None:
        return
    # The declared CRS should place the parcels inside (or near) its area of use: UTM coordinates labelled
    # Lambert-93, for instance, land in Africa. (A swap between two UTM zones cannot be seen this way.)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        [minx, maxx, minx, maxx], [miny, miny, maxy, maxy]
    )
    lon, lat = np.asarray(lon), np.asarray(lat)
    margin = 2.0  # degrees; covers parcels just across a UTM zone edge
    inside = (
        np.isfinite(lon).all()
        and np.isfinite(lat).all()
        and lon.min() >= aou.west - margin
        and lon.max() <= aou.east + margin
        and lat.min() >= aou.south - margin
        and lat.max() <= aou.north + margin
    )
    if not inside:
        raise ParcelFileError(
            f"parcels file {source}: coordinates ({minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}) fall "
            f"outside the area of use of its declared CRS {name} ({aou.name}); the CRS is probably wrong — "
            "set the right one (the RPG of mainland France is Lambert-93, EPSG:2154)"
        )


def _match_columns(found: pd.Index, source: str) -> dict[str, str]:
    """Map contract names to the file's column names, case-insensitively."""
    lower: dict[str, str] = {}
    for col in found:
        key = str(col).strip().lower()
        if key in lower:
            logger.warning(
                "%s: columns %r and %r differ only by case; using %r", source, lower[key], col, col
            )
            continue
        lower[key] = str(col)
    matched: dict[str, str] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lower:
                matched[name] = lower[alias]
                break
    missing = [name for name in _REQUIRED if name not in matched]
    if missing:
        listed = [str(c) for c in found if str(c) != getattr(found, "geometry_name", None)]
        raise ParcelFileError(
            f"parcels file {source} lacks the required column(s) {', '.join(missing)} "
            f"(matched case-insensitively); columns found: {listed}; rename the column or convert the file"
        )
    return matched


# --- cleaning ---------------------------------------------------------------------------------------------


def _clean_str(values: pd.Series) -> pd.Series:
    """Strip strings, turn empty strings into NA; ``string`` dtype."""
    s = values.astype("string").str.strip()
    return s.mask(s == "", pd.NA)


def _clean_id(values: pd.Series) -> pd.Series:
    """Identifier-like column to ``string``: integral floats lose their ``.0``, text is stripped."""
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.astype("float64")
        integral = floats.notna() & np.isfinite(floats) & (floats == np.round(floats))
        if integral.sum() == floats.notna().sum():
            return _clean_str(floats.astype("Int64"))
    return _clean_str(values)


def _to_int64(values: pd.Series, what: str, source: str) -> pd.Series:
    """Numbers or numeric strings to ``Int64``; anything else NA, logged."""
    num = pd.to_numeric(_clean_str(values), errors="coerce")
    bad = num.isna() & values.notna() & _clean_str(values).notna()
    frac = num.notna() & (num != np.round(num))
    if frac.any():
        bad |= frac
        num = num.mask(frac)
    if bad.any():
        sample = list(values[bad].astype(str).unique()[:5])
        logger.warning(
            "%s: %d non-integer %s value(s) set to NA, e.g. %s", source, int(bad.sum()), what, sample
        )
    return num.astype("Float64").astype("Int64")


def _normalise_pacage(values: pd.Series, source: str) -> pd.Series:
    s = _clean_id(values).str.upper()
    # PACAGE numbers start with a zero-padded department ("086…"); stored as numbers they lose the zero.
    digits = s.str.fullmatch(r"\d{1,9}", na=False)
    s = s.where(~digits, s.str.zfill(9))
    ok = s.str.fullmatch(_PACAGE_RE.pattern, na=False)
    bad = s.notna() & ~ok
    if bad.any():
        logger.warning(
            "%s: %d PACAGE value(s) are not 9-digit numbers and were set to NA, e.g. %s",
            source,
            int(bad.sum()),
            list(s[bad].unique()[:5]),
        )
    return s.where(ok, pd.NA).astype("string")


def _check_geometries(
    geoms: gpd.array.GeometryArray,
    keep: np.ndarray,
    ids: pd.Series,
    record: np.ndarray,
    rejects: list[tuple[int, object, str]],
    repairs: list[tuple[int, object, str]],
) -> np.ndarray:
    """Return the (repaired) geometries as an object array; rejects update ``keep`` in place."""
    out = np.asarray(geoms, dtype=object).copy()

    def reject(i: int, reason: str) -> None:
        rejects.append((int(record[i]), ids.iloc[i], reason))
        keep[i] = False

    missing = shapely.is_missing(out)
    empty = np.zeros(len(out), dtype=bool)
    empty[~missing] = shapely.is_empty(out[~missing])
    for i in np.flatnonzero(keep & missing):
        reject(i, "no geometry")
    for i in np.flatnonzero(keep & empty):
        reject(i, "empty geometry")

    type_id = shapely.get_type_id(out)
    polygonal = np.isin(type_id, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    for i in np.flatnonzero(keep & ~polygonal):
        if type_id[i] == shapely.GeometryType.GEOMETRYCOLLECTION:
            poly = _polygonal_part(out[i])
            if poly is None:
                reject(i, "not a polygon: GeometryCollection without polygon parts")
            else:
                out[i] = poly
                repairs.append(
                    (int(record[i]), ids.iloc[i], "kept the polygon parts of a GeometryCollection")
                )
        else:
            reject(i, f"not a polygon: {out[i].geom_type}")

    idx = np.flatnonzero(keep)
    invalid = idx[~shapely.is_valid(out[idx])]
    for i in invalid:
        why = shapely.is_valid_reason(out[i])
        fixed = _polygonal_part(shapely.make_valid(out[i]))
        if fixed is None:
            reject(i, f"invalid geometry ({why}) that make_valid cannot turn into a polygon")
        else:
            before, after = shapely.area(out[i]), fixed.area
            out[i] = fixed
            repairs.append(
                (int(record[i]), ids.iloc[i], f"{why}; make_valid: area {before:.6g} -> {after:.6g}")
            )
    return out


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygons of ``geom`` as a Polygon/MultiPolygon, or None when it has no area."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in _POLYGONAL:
        return geom if geom.area > 0 else None
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL and not p.is_empty]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    if not polys:
        return None
    merged = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    if not merged.is_valid:  # touching parts from a collection; union them into one valid shape
        merged = shapely.union_all(polys)
    return merged if merged.area > 0 else None


def _build_frame(
    raw: gpd.GeoDataFrame,
    columns: dict[str, str],
    ids: pd.Series,
    code_cultu: pd.Series,
    geometry: np.ndarray,
    keep: np.ndarray,
    campaign: int | None,
    source: str,
) -> gpd.GeoDataFrame:
    sub = raw.loc[keep]
    n = len(sub)
    geom = gpd.GeoSeries(geometry[keep], crs=raw.crs, index=sub.index)

    def col(name: str) -> pd.Series | None:
        return sub[columns[name]] if name in columns else None

    code_group = col("code_group")
    code_group = (
        _to_int64(code_group, "code_group", source)
        if code_group is not None
        else pd.Series(pd.NA, index=sub.index, dtype="Int64")
    )

    surf = col("surf_parc")
    surf = (
        pd.to_numeric(surf, errors="coerce").astype("float64")
        if surf is not None
        else pd.Series(np.nan, index=sub.index, dtype="float64")
    )
    no_surf = surf.isna().to_numpy()
    if no_surf.any():
        surf[no_surf] = _area_ha(geom[no_surf])
        logger.info("%s: surf_parc computed from the geometry for %d parcel(s)", source, int(no_surf.sum()))

    pacage = col("pacage")
    pacage = (
        _normalise_pacage(pacage, source)
        if pacage is not None
        else pd.Series(pd.NA, index=sub.index, dtype="string")
    )

    camp = col("campaign")
    if camp is None:
        camp = pd.Series(campaign, index=sub.index, dtype="Int64")
    else:
        camp = _to_int64(camp, "campaign", source)
        if campaign is not None:
            differs = camp.notna() & (camp != campaign)
            if differs.any():
                logger.warning(
                    "%s: %d record(s) have a campaign other than %d (%s); the file's value is kept",
                    source,
                    int(differs.sum()),
                    campaign,
                    sorted(camp[differs].unique().tolist())[:5],
                )
            camp = camp.fillna(campaign)

    department = department_from_pacage(pacage)
    commune = col("commune")
    if commune is not None:
        commune = _clean_id(commune).str.upper()
        commune = commune.where(~commune.str.fullmatch(r"\d{1,4}", na=False), commune.str.zfill(5))
        department = department_from_commune(commune).fillna(department)

    data = {
        "id_parcel": ids[keep].astype("string").to_numpy(),
        "code_cultu": code_cultu[keep].astype("string").to_numpy(),
        "code_group": code_group.to_numpy(dtype=object),
        "surf_parc": surf.to_numpy(dtype="float64"),
        "pacage": pacage.to_numpy(dtype=object),
        "campaign": camp.to_numpy(dtype=object),
        "department": department.to_numpy(dtype=object),
    }
    frame = pd.DataFrame(data, index=pd.RangeIndex(n))
    frame = frame.astype(
        {
            "id_parcel": STR_DTYPE,
            "code_cultu": STR_DTYPE,
            "code_group": "Int64",
            "pacage": STR_DTYPE,
            "campaign": "Int64",
            "department": STR_DTYPE,
        }
    )
    if commune is not None:
        frame["commune"] = pd.array(commune.to_numpy(dtype=object), dtype="string").astype(STR_DTYPE)
    return gpd.GeoDataFrame(frame, geometry=geom.to_numpy(), crs=raw.crs)


def _area_ha(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area in hectares, computed in an equal-area projection (Lambert azimuthal) centred on the data."""
    if len(geoms) == 0:
        return np.zeros(0)
    lonlat = geoms.to_crs("EPSG:4326")
    minx, miny, maxx, maxy = lonlat.total_bounds
    laea = CRS.from_proj4(
        f"+proj=laea +lat_0={(miny + maxy) / 2:.6f} +lon_0={(minx + maxx) / 2:.6f} +ellps=GRS80 +units=m"
    )
    return lonlat.to_crs(laea).area.to_numpy() / 10_000.0


def _table(source: str, rows: list[tuple[int, object, str]], columns: tuple[str, ...]) -> pd.DataFrame:
    if not rows:
        return _empty_table(columns)
    rows = sorted(rows, key=lambda r: r[0])
    frame = pd.DataFrame(rows, columns=list(columns[1:]))
    frame.insert(0, columns[0], source)
    return frame.astype(
        {columns[0]: STR_DTYPE, "record": "int64", "id_parcel": STR_DTYPE, columns[3]: STR_DTYPE}
    )


def _empty_table(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            columns[0]: pd.Series(dtype=STR_DTYPE),
            "record": pd.Series(dtype="int64"),
            "id_parcel": pd.Series(dtype=STR_DTYPE),
            columns[3]: pd.Series(dtype=STR_DTYPE),
        }
    )
