"""Loaders that turn the real reference datasets of ``shared/data`` into the markers' long table.

They serve the quality benchmark and the integration tests; nothing in the pipeline depends on them.

- :func:`load_slovak_mowing`: ``grassland_mowing/test`` (Slovak camera sites). The per-plot CSVs repeat the
  ground truth in every row (``Mow_1..4``, ``nMowing``, ``grazing_*``): those columns are dropped here, before
  any detector sees the table. ``parcel_id`` = ``<plotID>_<year>``; ``valid`` = ``mask == 1`` and Cloud Score+
  ``cs_cdf >= min_cloud_score``.
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

__all__ = ["MowingDataset", "load_slovak_mowing", "load_tempcnn", "load_ucr_crop"]

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
    """

    table: pd.DataFrame
    truth: pd.DataFrame
    sites: pd.Series
    grazing: pd.DataFrame


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
