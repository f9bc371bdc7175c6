"""Loaders that turn the real reference datasets of ``shared/data`` into the markers' long table.

They serve the quality benchmark and the integration tests; nothing in the pipeline depends on them.

- :func:`load_slovak_mowing`: ``grassland_mowing/test`` (Slovak camera sites). The per-plot CSVs repeat the
  ground truth in every row (``Mow_1..4``, ``nMowing``, ``grazing_*``): those columns are dropped here, before
  any detector sees the table. ``parcel_id`` = ``<plotID>_<year>``; ``valid`` = ``mask == 1`` and Cloud Score+
  ``cs_cdf >= min_cloud_score``.
- :func:`load_gmi_mowing`: ``grassland_mowing/train`` (Slovak survey plots, Sentinel-2 values at one point per
  plot; never used to fit the detector, so an independent check). Only the table's bands and NDVI/EVI are
  kept: the survey attributes repeated in every row (land use, mowing frequency, grazing, ...) would tell
  the answer. ``parcel_id`` = ``<PLOTID>_<year>``; only the plot-years the truth file lists (mown or
  ``n``, not mown) are loaded, since the others' truth is unknown. With ``sentinel1=True`` the plots'
  Sentinel-1 backscatter and coherence come in a separate long table.
- :func:`load_ucr_crop`: UCR "Crop" (46 NDVI values, dated 8 days apart from 1 January of a nominal year).
- :func:`load_tempcnn`: TempCNN pixels (NIR, R, G over 149 dates); pixels are grouped by parcel id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from s3tr.markers.table import MarkerInputError, normalize_timeseries

__all__ = ["MowingDataset", "load_gmi_mowing", "load_slovak_mowing", "load_tempcnn", "load_ucr_crop"]

logger = logging.getLogger(__name__)

_SK_BANDS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "re1": "B05",
    "re2": "B06",
    "re3": "B07",
    "nir": "B08",
    "swir1": "B11",
    "swir2": "B12",
}
_SK_TRUTH_COLUMNS = ("Mow_1", "Mow_2", "Mow_3", "Mow_4", "nMowing", "nGrazing")


@dataclass
class MowingDataset:
    """A mowing reference set.

    Attributes
    ----------
    table
        Normalised long table (no ground-truth column).
    truth
        ``parcel_id, date``: one row per true mowing (type ``k``).
    sites
        ``parcel_id -> site`` (str), for grouped cross-validation.
    grazing
        ``parcel_id, start, end``: camera-recorded grazing periods (type ``p``), empty when unknown.
    sentinel1
        ``parcel_id, date, orbit, vv, vh`` (backscatter, dB), ``coherence_b1, coherence_b2`` (the source's
        two coherence bands), when loaded.
    """

    table: pd.DataFrame
    truth: pd.DataFrame
    sites: pd.Series
    grazing: pd.DataFrame
    sentinel1: pd.DataFrame | None = None


def load_slovak_mowing(root: str | Path, *, min_cloud_score: float = 0.0) -> MowingDataset:
    """Load ``grassland_mowing/test`` (or the folder given) into a :class:`MowingDataset`.

    Parameters
    ----------
    root
        The ``grassland_mowing`` folder or its ``test`` sub-folder.
    min_cloud_score
        Observations with Cloud Score+ ``cs_cdf`` below this are marked invalid (0..1; 0 keeps the
        file's mask).
    """
    import geopandas as gpd

    root = Path(root)
    test = root / "test" if (root / "test").is_dir() else root
    files = sorted((test / "SK_poly").glob("*.csv"))
    if not files:
        raise MarkerInputError(f"no SK_poly/*.csv under {test}")
    frames = []
    for f in files:
        raw = pd.read_csv(f)
        # Ground truth repeated in every row: drop before anything else looks at the table.
        raw = raw.drop(columns=[c for c in raw.columns if c in _SK_TRUTH_COLUMNS or c.startswith("grazing")])
        df = pd.DataFrame(
            {
                "parcel_id": raw["plotID"].astype(str) + "_" + raw["year"].astype(int).astype(str),
                "date": raw["Date"],
                "valid": ((raw["mask"] == 1) & (raw["cs_cdf"] >= min_cloud_score)).astype(int),
                "ndvi": raw["ndvi"],
                "evi": raw["evi"],
                **{dst: raw[src] for src, dst in _SK_BANDS.items()},
            }
        )
        frames.append(df)
    table = normalize_timeseries(pd.concat(frames, ignore_index=True), source=str(test / "SK_poly"))
    truth_gdf = gpd.read_file(test / "SK_long.gpkg")
    k = truth_gdf[truth_gdf["type"] == "k"]
    truth = pd.DataFrame(
        {
            "parcel_id": k["plotID"].astype(str) + "_" + pd.to_datetime(k["date"]).dt.year.astype(str),
            "date": pd.to_datetime(k["date"]).dt.normalize(),
        }
    ).reset_index(drop=True)
    p = truth_gdf[truth_gdf["type"] == "p"]
    grazing = pd.DataFrame(
        {
            "parcel_id": p["plotID"].astype(str) + "_" + pd.to_datetime(p["date"]).dt.year.astype(str),
            "start": pd.to_datetime(p["date"]).dt.normalize(),
            "end": pd.to_datetime(p["endDate"]).dt.normalize(),
        }
    ).reset_index(drop=True)
    site_of_plot = dict(zip(truth_gdf["plotID"].astype(str), truth_gdf["id"].astype(str), strict=False))
    pids = pd.Series(table["parcel_id"].unique())
    plots = pids.str.rsplit("_", n=1).str[0]
    # Plots absent from the truth file: their site is the plot name without the trailing number.
    sites = plots.map(lambda p: site_of_plot.get(p, p.rsplit("_", 1)[0]))
    return MowingDataset(
        table=table, truth=truth, sites=pd.Series(sites.to_numpy(), index=pids.to_numpy()), grazing=grazing
    )


def _no_data(raw: pd.DataFrame) -> pd.DataFrame:
    """The survey CSVs write -9999 for no data."""
    return raw.mask(raw == -9999)


def _plot_year(plot: pd.Series, date: pd.Series) -> pd.Series:
    return plot.astype(str) + "_" + pd.to_datetime(date).dt.year.astype(str)


def load_gmi_mowing(root: str | Path, *, sentinel1: bool = False) -> MowingDataset:
    """Load ``grassland_mowing/train`` (survey plots, 2021-2023) into a :class:`MowingDataset`.

    Parameters
    ----------
    root
        The ``grassland_mowing`` folder or its ``train`` sub-folder.
    sentinel1
        Also load the plots' Sentinel-1 series (``MowingDataset.sentinel1``).

    Notes
    -----
    The truth file ``GMI_Long.gpkg`` gives at most a date or two per plot-year (type ``k``) or says the plot
    was not mown that year (type ``n``). A ``k`` date outside its row's year (one, 2025-08-12 for 2023) is
    dropped with a warning. ``sites`` are the three survey regions (LR, NB, NS).
    """
    import geopandas as gpd

    root = Path(root)
    train = root / "train" if (root / "train").is_dir() else root
    files = sorted((train / "S2").glob("*.csv"))
    if not files:
        raise MarkerInputError(f"no S2/*.csv under {train}")
    gmi = gpd.read_file(train / "GMI_Long.gpkg")
    gmi = gmi.assign(parcel_id=gmi["PLOTID"].astype(str) + "_" + gmi["year"].astype(int).astype(str))
    scored = set(gmi["parcel_id"])
    frames = []
    for f in files:
        raw = _no_data(pd.read_csv(f))
        df = pd.DataFrame(
            {
                "parcel_id": _plot_year(raw["PLOTID"], raw["Date"]),
                "date": raw["Date"],
                "valid": ((raw["mask"] == 1) & raw["ndvi"].notna()).astype(int),
                "ndvi": raw["ndvi"],
                "evi": raw["evi"],
                **{dst: raw[src] for src, dst in _SK_BANDS.items()},
            }
        )
        frames.append(df[df["parcel_id"].isin(scored)])
    table = normalize_timeseries(pd.concat(frames, ignore_index=True), source=str(train / "S2"))
    k = gmi[gmi["type"] == "k"]
    same_year = k["date"].dt.year == k["year"]
    for _, row in k[~same_year].iterrows():
        logger.warning(
            "%s: %s mowing dated %s outside %s; dropped",
            train / "GMI_Long.gpkg",
            row["PLOTID"],
            row["date"].date(),
            row["year"],
        )
    k = k[same_year]
    truth = pd.DataFrame({"parcel_id": k["parcel_id"], "date": k["date"].dt.normalize()}).reset_index(
        drop=True
    )
    region = dict(zip(gmi["parcel_id"], gmi["id"].astype(str), strict=True))
    pids = table["parcel_id"].unique()
    s1 = _gmi_sentinel1(train) if sentinel1 else None
    return MowingDataset(
        table=table,
        truth=truth,
        sites=pd.Series([region[p] for p in pids], index=pids),
        grazing=pd.DataFrame(columns=["parcel_id", "start", "end"]),
        sentinel1=None if s1 is None else s1[s1["parcel_id"].isin(scored)].reset_index(drop=True),
    )


def _gmi_sentinel1(train: Path) -> pd.DataFrame:
    """The survey plots' Sentinel-1 backscatter and coherence, one row per plot and acquisition."""
    s1 = _no_data(
        pd.concat([pd.read_csv(f) for f in sorted((train / "S1").glob("*.csv"))], ignore_index=True)
    )
    coh = _no_data(
        pd.concat([pd.read_csv(f) for f in sorted((train / "COH").glob("*.csv"))], ignore_index=True)
    )
    s1 = pd.DataFrame(
        {
            "parcel_id": _plot_year(s1["PLOTID"], s1["Date"]),
            "date": pd.to_datetime(s1["Date"]),
            "orbit": s1["Orbit"],
            "vv": s1["VV"],
            "vh": s1["VH"],
        }
    )
    coh = pd.DataFrame(
        {
            "parcel_id": _plot_year(coh["PLOTID"], coh["Date"]),
            "date": pd.to_datetime(coh["Date"]),
            "coherence_b1": coh["b1"],
            "coherence_b2": coh["b2"],
        }
    )
    return s1.merge(coh, on=["parcel_id", "date"], how="outer").sort_values(["parcel_id", "date"])


def load_ucr_crop(root: str | Path, *, year: int = 2020) -> tuple[pd.DataFrame, pd.DataFrame]:
    """UCR Crop as ``(table, labels)``; the 46 values get dates 8 days apart from 1 January of ``year``."""
    root = Path(root)
    path = root / "Crop_TRAIN.tsv" if root.is_dir() else root
    arr = np.loadtxt(path, delimiter="\t")
    y = arr[:, 0].astype(int)
    x = arr[:, 1:]
    n, t = x.shape
    dates = np.datetime64(f"{year}-01-01") + np.arange(t) * np.timedelta64(8, "D")
    pids = np.array([f"ucr{i:05d}" for i in range(n)])
    table = pd.DataFrame(
        {
            "parcel_id": np.repeat(pids, t),
            "date": np.tile(dates, n).astype("datetime64[ns]"),
            "valid": True,
            "ndvi": x.reshape(-1),
        }
    )
    table = normalize_timeseries(table, source=str(path))
    labels = pd.DataFrame({"parcel_id": pids, "label": y.astype(str)})
    return table, labels


def load_tempcnn(
    root: str | Path, split: str = "train", *, year: int = 2020
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TempCNN pixels as ``(table, labels)`` with ``B08`` (NIR), ``B04`` (R), ``B03`` (G) in 0..1 and NDVI.

    ``parcel_id`` = ``<split>_p<row>``; ``labels`` has ``parcel_id, label, polygon`` (the parcel a pixel
    belongs to, for grouped cross-validation). The 149 dates are unknown; they are spread evenly over one
    year.
    """
    root = Path(root)
    arr = np.loadtxt(root / f"{split}_dataset.csv", delimiter=",")
    y = arr[:, 0].astype(int)
    poly = arr[:, 1].astype(int)
    vals = arr[:, 2:].reshape(arr.shape[0], -1, 3) / 1000.0  # DN-like 11..557 -> ~reflectance
    n, t, _ = vals.shape
    offsets = np.round(np.arange(t) * 365.0 / t).astype(int)
    dates = np.datetime64(f"{year}-01-01") + offsets.astype("timedelta64[D]")
    pids = np.array([f"{split}_p{i:04d}" for i in range(n)])
    table = pd.DataFrame(
        {
            "parcel_id": np.repeat(pids, t),
            "date": np.tile(dates, n).astype("datetime64[ns]"),
            "B08": vals[:, :, 0].reshape(-1),
            "B04": vals[:, :, 1].reshape(-1),
            "B03": vals[:, :, 2].reshape(-1),
        }
    )
    table = normalize_timeseries(table, source=str(root / f"{split}_dataset.csv"))
    labels = pd.DataFrame({"parcel_id": pids, "label": y.astype(str), "polygon": poly.astype(str)})
    return table, labels
