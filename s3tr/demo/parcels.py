"""The field layout of the demo area: blocks, parcels, farms, hedges and woods.

The landscape is built the way a bocage-and-plain area looks from above:

1. **Blocks** (*îlots*): a Voronoi tessellation of random seeds over the area, each cell shrunk
   inward by 3–7 m so that roads, tracks and hedges run between blocks. A few blocks are woods or
   hamlets instead of farmland. A meandering river 20–30 m wide with wooded banks (like the Clain at
   Poitiers) and a few ponds cut through; the parcels near it are the valley's meadows.
2. **Parcels**: each farm block is split into 1–6 parcels, either by a Voronoi of jittered seeds
   (irregular fields) or by parallel cuts across its long axis (strips: long, narrow fields), and
   each parcel is shrunk by 1–2.5 m (furrows and tracks between neighbours). Parcels over 30 ha are
   cut in two; a few deliberately tiny parcels (0.05–0.25 ha) are carved from field corners, as the
   register really holds some — Sentinel-2 cannot monitor them.
3. **Farms**: farmsteads are random points; each block belongs to the nearest farmstead (a farm's
   land is contiguous-ish, as in reality). A farm is ``livestock`` (more grassland) or ``arable``.

Everything here works in the UTM CRS of the imagery (metres); the GeoPackage is reprojected to
Lambert-93 (EPSG:2154) only when written, as the real RPG is.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Polygon, box

__all__ = ["Layout", "make_layout"]

logger = logging.getLogger(__name__)

MAX_PARCEL_HA = 30.0
MIN_PARCEL_HA = 0.3
# Mean number of parcels per farm block; with the Voronoi block sizes it gives ~4-5 ha parcels.
PARCELS_PER_BLOCK = 2.8
# Parcels whose centre lies this close to the river are in the valley (meadows).
VALLEY_M = 400.0


@dataclass
class Layout:
    """The demo landscape, in the imagery CRS.

    Attributes
    ----------
    parcels
        Declared parcels: ``label`` (int, 1..n, the raster label), ``farm`` (int), ``tiny`` (bool),
        ``valley`` (bool, near the river), ``geometry`` (Polygon, metres, CRS ``crs``). Sorted by
        ``label``.
    other
        Non-declared land drawn on the rasters: ``cover`` (``riparian``, ``water``, ``wood``,
        ``hamlet``, ``grass``) and ``geometry``, in drawing order.
    farms
        One row per farm: ``farm`` (int), ``pacage`` (9-digit str), ``livestock`` (bool).
    bounds
        ``(minx, miny, maxx, maxy)`` of the area, metres in ``crs``.
    crs
        CRS of all geometries (the UTM zone of the imagery).
    """

    parcels: gpd.GeoDataFrame
    other: gpd.GeoDataFrame
    farms: gpd.GeoDataFrame
    bounds: tuple[float, float, float, float]
    crs: str


def _river(rng: np.random.Generator, bounds: tuple[float, float, float, float]) -> LineString:
    """A meandering river crossing the area from west to east (a correlated random walk)."""
    minx, miny, maxx, maxy = bounds
    h = maxy - miny
    x, y = minx - 100.0, miny + rng.uniform(0.3, 0.7) * h
    heading = rng.normal(0.0, 0.2)
    pts = [(x, y)]
    while x < maxx + 100.0:
        # Heading drifts but is pulled back towards east, so the river meanders across the area.
        heading = float(np.clip(0.85 * heading + rng.normal(0.0, 0.15), -1.0, 1.0))
        x, y = (
            x + 40.0 * np.cos(heading),
            float(np.clip(y + 40.0 * np.sin(heading), miny + 0.1 * h, maxy - 0.1 * h)),
        )
        pts.append((x, y))
    return LineString(pts).simplify(2.0)


def _ponds(
    rng: np.random.Generator, bounds: tuple[float, float, float, float], river: LineString
) -> list[Polygon]:
    """One pond per ~30 km², near the river, irregular, 0.3-2.5 ha."""
    area_km2 = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / 1e6
    out = []
    for _ in range(int(rng.poisson(area_km2 / 30.0))):
        centre = river.interpolate(rng.uniform(0.1, 0.9), normalized=True)
        offset = rng.uniform(80.0, 250.0) * rng.choice([-1.0, 1.0], size=2)
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        radius = rng.uniform(30.0, 90.0) * (1 + 0.25 * np.sin(3 * angles + rng.uniform(0, 6)))
        out.append(
            Polygon(
                np.column_stack(
                    [
                        centre.x + offset[0] + radius * np.cos(angles),
                        centre.y + offset[1] + radius * np.sin(angles),
                    ]
                )
            )
        )
    return out


def _voronoi_cells(points: np.ndarray, clip: Polygon) -> list[Polygon]:
    """Voronoi cells of ``points`` clipped to ``clip``, in the order of ``points``."""
    if len(points) == 1:
        return [clip]
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=clip, ordered=True)
    out = []
    for cell in shapely.get_parts(cells):
        piece = shapely.intersection(cell, clip)
        out.append(piece)
    return out


def _largest_polygon(geom: shapely.Geometry) -> Polygon | None:
    """The largest polygon part of ``geom`` (shrinking may split a cell), or None if empty."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and not p.is_empty]
    if not parts:
        return None
    return max(parts, key=lambda p: p.area)


def _long_axis_angle(poly: Polygon) -> float:
    """Angle (radians) of the long side of the minimum rotated rectangle of ``poly``."""
    rect = shapely.minimum_rotated_rectangle(poly)
    xy = np.asarray(rect.exterior.coords)[:4]
    edges = np.diff(np.vstack([xy, xy[:1]]), axis=0)
    longest = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
    return float(np.arctan2(longest[1], longest[0]))


def _strips(block: Polygon, k: int, rng: np.random.Generator) -> list[Polygon]:
    """Cut ``block`` into ``k`` strips across its long axis, of unequal widths."""
    angle = _long_axis_angle(block)
    # Cut lines are perpendicular to the long axis, so strips are long and narrow only when the
    # block is elongated the other way; alternate at random to get both shapes.
    if rng.random() < 0.5:
        angle += np.pi / 2
    ux, uy = np.cos(angle), np.sin(angle)
    xy = np.asarray(block.exterior.coords)
    proj = xy[:, 0] * ux + xy[:, 1] * uy
    lo, hi = proj.min(), proj.max()
    widths = rng.dirichlet(np.full(k, 4.0))
    cuts = lo + (hi - lo) * np.cumsum(widths)[:-1]
    edges = np.concatenate([[lo - 1.0], cuts, [hi + 1.0]])
    # A big rectangle along the cut direction, positioned by its projection range.
    vx, vy = -uy, ux
    cproj = xy[:, 0] * vx + xy[:, 1] * vy
    c0, c1 = cproj.min() - 1.0, cproj.max() + 1.0
    out = []
    for a, b in itertools.pairwise(edges):
        corners = [
            (a * ux + c0 * vx, a * uy + c0 * vy),
            (b * ux + c0 * vx, b * uy + c0 * vy),
            (b * ux + c1 * vx, b * uy + c1 * vy),
            (a * ux + c1 * vx, a * uy + c1 * vy),
        ]
        out.append(shapely.intersection(block, Polygon(corners)))
    return out


def _split_in_two(poly: Polygon) -> list[Polygon]:
    """Cut ``poly`` through its centroid, across its long axis."""
    angle = _long_axis_angle(poly) + np.pi / 2
    c = poly.centroid
    ux, uy = np.cos(angle), np.sin(angle)
    big = 1e5
    line_a = (c.x - ux * big, c.y - uy * big)
    line_b = (c.x + ux * big, c.y + uy * big)
    nx, ny = -uy, ux
    side1 = Polygon(
        [
            line_a,
            line_b,
            (line_b[0] + nx * big, line_b[1] + ny * big),
            (line_a[0] + nx * big, line_a[1] + ny * big),
        ]
    )
    halves = [poly.intersection(side1).buffer(-1.0), poly.difference(side1).buffer(-1.0)]
    return [h for h in (_largest_polygon(x) for x in halves) if h is not None]


def _carve_tiny(poly: Polygon, rng: np.random.Generator) -> tuple[Polygon, Polygon] | None:
    """Carve a tiny parcel (0.05–0.25 ha) from a corner of ``poly``; returns (rest, tiny)."""
    coords = np.asarray(poly.exterior.coords)[:-1]
    corner = coords[rng.integers(len(coords))]
    side = float(np.sqrt(rng.uniform(500.0, 2500.0)))
    piece = _largest_polygon(
        poly.intersection(box(corner[0] - side, corner[1] - side, corner[0] + side, corner[1] + side))
    )
    if piece is None or not (400.0 <= piece.area <= 2600.0):
        return None
    rest = _largest_polygon(poly.difference(piece.buffer(2.0)))
    if rest is None:
        return None
    return rest, piece


def make_layout(
    rng: np.random.Generator,
    *,
    bounds: tuple[float, float, float, float],
    n_parcels: int,
    crs: str,
    oversample: float = 1.2,
) -> Layout:
    """Lay out blocks, parcels, farms and non-farm land over ``bounds``.

    Parameters
    ----------
    rng
        The generator's random state (the layout consumes it deterministically).
    bounds
        ``(minx, miny, maxx, maxy)`` of the area, metres in ``crs``.
    n_parcels
        Target number of declared parcels; the result has this many unless the area is too small
        to hold them at realistic sizes (then fewer, logged).
    crs
        The projected CRS of ``bounds`` (the imagery's UTM zone).
    oversample
        Blocks drawn per expected block; the surplus parcels are left undeclared.
    """
    area = box(*bounds)
    ha = area.area / 1e4
    # Enough blocks for the target count, with slack (woods, drops) trimmed at the end; blocks are
    # never smaller on average than ~3 parcels of 1.5 ha so that tiny test areas stay realistic.
    n_blocks = max(4, round(n_parcels / PARCELS_PER_BLOCK * oversample))
    n_blocks = min(n_blocks, max(4, int(ha / 4.5)))
    seeds = np.column_stack(
        [rng.uniform(bounds[0], bounds[2], n_blocks), rng.uniform(bounds[1], bounds[3], n_blocks)]
    )
    blocks = _voronoi_cells(seeds, area)
    # A river (with its wooded banks) and a few ponds cut through the blocks.
    river = _river(rng, bounds)
    water = shapely.union_all(
        [river.buffer(rng.uniform(10.0, 15.0), cap_style="flat"), *_ponds(rng, bounds, river)]
    )
    corridor = water.buffer(rng.uniform(12.0, 20.0))
    # Hedges and roads between blocks: each block shrinks by 3-7 m.
    shrink = rng.uniform(3.0, 7.0, n_blocks)
    blocks = [
        _largest_polygon(shapely.buffer(shapely.difference(b, corridor), -s, join_style="mitre"))
        for b, s in zip(blocks, shrink, strict=True)
    ]

    cover = np.where(rng.random(n_blocks) < 0.05, "wood", "farm").astype(object)
    cover[rng.random(n_blocks) < 0.015] = "hamlet"

    n_farms = int(np.clip(round(n_parcels / 20), 3, 120))
    farm_xy = np.column_stack(
        [rng.uniform(bounds[0], bounds[2], n_farms), rng.uniform(bounds[1], bounds[3], n_farms)]
    )
    livestock = rng.random(n_farms) < 0.3

    parcels: list[Polygon] = []
    farm_of: list[int] = []
    other: list[tuple[str, Polygon]] = [
        ("riparian", shapely.intersection(corridor.difference(water), area)),
        ("water", shapely.intersection(water, area)),
    ]
    lam = max(PARCELS_PER_BLOCK - 1.0, 0.5)
    for i, block in enumerate(blocks):
        if block is None or block.area < 3000.0:
            continue
        if cover[i] != "farm":
            other.append((str(cover[i]), block))
            continue
        c = block.centroid
        # Nearest farmstead, with a random stretch so that farm territories interleave a little.
        d = np.hypot(farm_xy[:, 0] - c.x, farm_xy[:, 1] - c.y) * rng.uniform(0.7, 1.3, n_farms)
        farm = int(np.argmin(d))
        k = int(min(1 + rng.poisson(lam), 7, max(1, block.area / 1e4 / 0.8)))
        if k == 1:
            pieces = [block]
        elif rng.random() < 0.35:
            pieces = _strips(block, k, rng)
        else:
            minx, miny, maxx, maxy = block.bounds
            pts: list[list[float]] = []
            while len(pts) < k:
                cand = rng.uniform((minx, miny), (maxx, maxy), size=(4 * k, 2))
                inside = shapely.contains_xy(block, cand[:, 0], cand[:, 1])
                pts.extend(cand[inside][: k - len(pts)].tolist())
            pieces = _voronoi_cells(np.asarray(pts), block)
        for piece in pieces:
            p = _largest_polygon(shapely.buffer(piece, -rng.uniform(1.0, 2.5), join_style="mitre"))
            if p is None:
                continue
            todo = [p]
            while todo:
                q = todo.pop()
                if q.area / 1e4 > MAX_PARCEL_HA:
                    todo.extend(_split_in_two(q))
                elif q.area / 1e4 >= MIN_PARCEL_HA:
                    parcels.append(q)
                    farm_of.append(farm)

    # Trim to the target: the surplus is simply not declared this year (it stays grass on the
    # rasters, like the many small non-declared plots of a real landscape).
    order = rng.permutation(len(parcels))
    keep = np.sort(order[: max(0, n_parcels - max(1, round(n_parcels * 0.004)))])
    dropped = np.sort(order[len(keep) :])
    for j in dropped:
        other.append(("grass", parcels[j]))
    kept = [parcels[j] for j in keep]
    farms = [farm_of[j] for j in keep]
    tiny = [False] * len(kept)

    # A few deliberately tiny parcels carved from corners of big fields.
    n_tiny = max(1, round(n_parcels * 0.004))
    big = [j for j, p in enumerate(kept) if p.area > 3e4]
    for j in rng.permutation(big)[: 3 * n_tiny]:
        if sum(tiny) >= n_tiny or len(kept) >= n_parcels:
            break
        carved = _carve_tiny(kept[j], rng)
        if carved is None:
            continue
        kept[j] = carved[0]
        kept.append(carved[1])
        farms.append(farms[j])
        tiny.append(True)

    if len(kept) < n_parcels:
        logger.debug(
            "this block draw holds %d parcels at realistic sizes, fewer than the %d asked for",
            len(kept),
            n_parcels,
        )
    # Valley parcels (near the river) are where the meadows are.
    valley = shapely.distance(river, shapely.centroid(np.asarray(kept, dtype=object))) < VALLEY_M
    gdf = gpd.GeoDataFrame(
        {
            "label": np.arange(1, len(kept) + 1, dtype=np.int32),
            "farm": farms,
            "tiny": tiny,
            "valley": valley,
        },
        geometry=kept,
        crs=crs,
    )
    other_gdf = gpd.GeoDataFrame({"cover": [c for c, _ in other]}, geometry=[g for _, g in other], crs=crs)
    pacage_numbers = rng.choice(np.arange(1, 999_999), size=n_farms, replace=False)
    farms_gdf = gpd.GeoDataFrame(
        {
            "farm": np.arange(n_farms),
            "pacage": [f"086{n:06d}" for n in pacage_numbers],
            "livestock": livestock,
        },
        geometry=gpd.points_from_xy(farm_xy[:, 0], farm_xy[:, 1]),
        crs=crs,
    )
    return Layout(parcels=gdf, other=other_gdf, farms=farms_gdf, bounds=bounds, crs=crs)
