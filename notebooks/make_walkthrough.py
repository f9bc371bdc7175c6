"""Write ``walkthrough.ipynb`` from the cells below (keeps the notebook reviewable as Python).

Run ``python notebooks/make_walkthrough.py`` after editing the cells; the test suite executes
the notebook it writes.
"""

from pathlib import Path

import nbformat as nbf

CELLS = [
    (
        "md",
        """# s3tr walkthrough: why did this parcel get its flag?

This notebook follows one parcel of the demo season through the chain: its declaration, its Sentinel-2
NDVI series, the events the markers saw, and the decision with its reasons. It reads the outputs of
`s3tr demo` (the workdir given by `S3TR_WORKDIR`, default `./s3tr-work`) and runs the demo first if they
are missing.""",
    ),
    (
        "code",
        """import os
from pathlib import Path

import geopandas as gpd
import matplotlib.pyplot as plt
import pandas as pd
import sqlalchemy as sa

from s3tr.demo.runner import run_demo
from s3tr.extract import SeriesStore
from s3tr.markers.mowing import detect_mowing
from s3tr.review import db_url_for, make_engine

workdir = Path(os.environ.get("S3TR_WORKDIR", "s3tr-work"))
if not (workdir / "flags.gpkg").exists():
    run_demo(workdir)
flags = gpd.read_file(workdir / "flags.gpkg", layer="flags")
flags.groupby(["control", "flag"]).size().unstack(fill_value=0)""",
    ),
    ("md", "## Pick a grassland parcel whose minimum-activity control is not green"),
    (
        "code",
        """activity = flags[flags["control"] == "min_activity"].sort_values("id_parcel")
doubtful = activity[activity["flag"] != "green"]
parcel_id = (doubtful if len(doubtful) else activity)["id_parcel"].iloc[0]
parcels = gpd.read_file(workdir / "demo" / "parcels.gpkg")
declaration = parcels[parcels["id_parcel"] == parcel_id]
declaration.drop(columns="geometry")""",
    ),
    ("md", "## Its NDVI series: clear observations and the ones masked by clouds (SCL)"),
    (
        "code",
        """stores = sorted((workdir / "series").glob("*.zarr"))
table = pd.concat([SeriesStore(p).to_table() for p in stores], ignore_index=True)
series = table[table["parcel_id"] == parcel_id].assign(date=lambda d: pd.to_datetime(d["date"]))
events = detect_mowing(series)

fig, ax = plt.subplots(figsize=(9, 3))
clear = series["valid"] == 1
ax.plot(series.loc[clear, "date"], series.loc[clear, "ndvi"], "o-", ms=3, label="clear")
ax.plot(series.loc[~clear, "date"], series.loc[~clear, "ndvi"], "x", color="grey", label="cloudy / invalid")
for e in events.itertuples():
    ax.axvspan(pd.Timestamp(e.start), pd.Timestamp(e.end), color="tab:blue", alpha=0.2)
ax.set_ylabel("NDVI")
ax.set_title(f"parcel {parcel_id}")
ax.legend()
print(f"{int(clear.sum())} clear observations of {len(series)}; mowing events detected: {len(events)}")
events""",
    ),
    ("md", "## The decisions and their reasons, as the instructor and the farmer read them"),
    (
        "code",
        """engine = make_engine(db_url_for(workdir))
query = sa.text(
    "SELECT control, flag, reasons, explanation_fr, explanation_en FROM decisions "
    "WHERE id_parcel = :pid AND is_current ORDER BY control"
)
with engine.connect() as conn:
    decisions = pd.read_sql(query, conn, params={"pid": parcel_id})
engine.dispose()
for row in decisions.itertuples():
    print(f"{row.control}: {row.flag}\\n  FR: {row.explanation_fr}\\n  EN: {row.explanation_en}")
assert set(decisions["control"]) == set(flags.loc[flags["id_parcel"] == parcel_id, "control"])""",
    ),
]


def build() -> nbf.NotebookNode:
    """The walkthrough notebook, unexecuted."""
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in CELLS
    ]
    return nb


if __name__ == "__main__":
    nbf.write(build(), Path(__file__).with_name("walkthrough.ipynb"))
