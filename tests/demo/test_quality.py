"""Decision and marker quality on a demo season the shipped crop model never saw, against its ground truth.

Seed 2 (the crop model is trained on seed 1; seed 0 is the season ``s3tr demo`` shows and is kept out of
every choice of threshold). The floors sit a little under the figures measured when they were set, so
that a regression fails here; the comments give those figures.
"""

from __future__ import annotations

import pandas as pd
import pytest

from s3tr.demo import generate_season
from s3tr.demo.runner import demo_run_config
from s3tr.demo.selfscore import score_run
from s3tr.markers.evaluate import evaluate_mowing
from s3tr.nightly.pipeline import load_crop_model, run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def season_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("quality")
    root = work / "demo"
    generate_season(root, seed=2, n_parcels=700, area_size_m=6000.0)
    result = run_pipeline(demo_run_config(root, workers=1), workdir=work, crop_model=load_crop_model())
    return root / "truth", result


def test_no_control_penalises_a_compliant_farmer(season_run) -> None:  # type: ignore[no-untyped-def]
    truth, result = season_run
    scores = score_run(result.decisions, result.evidence, result.series, truth)["controls"]
    assert set(scores) == {"crop_group", "fallow", "grassland_not_ploughed", "min_activity"}
    # Measured: wrong reds 0 of 588 (crop_group; 1 earlier), 0 of 42, 0 of 70, 0 of 111.
    for control, s in scores.items():
        assert s["wrong_red"] <= max(1, 0.005 * s["parcels"]), (control, s)
        assert s["decided_accuracy"] >= 0.97, (control, s)
    # "No mowing seen" is never a red on its own: light grazing hides from optical series.
    assert scores["min_activity"]["wrong_red"] == 0
    # Orange is an instructor's time: measured 30 % (crop_group) and 54 % (min_activity; 61 % before the
    # mowing span penalty).
    assert scores["crop_group"]["orange"] <= 0.36 * scores["crop_group"]["parcels"]
    assert scores["min_activity"]["orange"] <= 0.62 * scores["min_activity"]["parcels"]


def test_markers_against_the_season_truth(season_run) -> None:  # type: ignore[no-untyped-def]
    truth, result = season_run
    parcels = pd.read_csv(truth / "parcels.csv", dtype={"id_parcel": str})
    events = pd.read_csv(truth / "events.csv", dtype={"id_parcel": str})
    evidence = result.evidence.set_index("parcel_id")

    grass = sorted(set(parcels.loc[parcels["true_group"].isin([18, 19]), "id_parcel"]) & set(evidence.index))
    rows = [
        (pid, start.split("/")[0], start.split("/")[-1], evidence.at[pid, "mowing_confidence"])
        for pid in grass
        for start in filter(None, str(evidence.at[pid, "mowing_intervals"]).split(";"))
    ]
    detected = pd.DataFrame(rows, columns=["parcel_id", "start", "end", "confidence"])
    mown = events[(events["event"] == "mowing") & events["id_parcel"].isin(grass)]
    m = evaluate_mowing(
        detected,
        mown.rename(columns={"id_parcel": "parcel_id"})[["parcel_id", "date"]],
        grass,
        tolerance_days=10,
    )
    # Measured: precision 0.984, recall 0.745, season balanced accuracy 0.952 (the scorer is fitted on
    # real Slovak meadows; before the span penalty the demo's slow summer fall joined a cut's interval,
    # and recall was 0.53).
    assert m["precision"] >= 0.93 and m["recall"] >= 0.68 and m["season_balanced_accuracy"] >= 0.90, m

    pred = evidence.join(parcels.set_index("id_parcel")["true_group"], how="inner")
    pred = pred[pred["crop_predicted"].notna()]
    right = pred["crop_predicted"].astype(str) == pred["true_group"].astype(str)
    confident = pred["crop_probability"] >= 0.9
    # Measured: accuracy 0.863; at probability >= 0.9 coverage 0.444, precision 1.000.
    assert right.mean() >= 0.83
    assert confident.mean() >= 0.38 and right[confident].mean() >= 0.98


def test_bare_soil_and_activity_markers_against_the_season_truth(season_run) -> None:  # type: ignore[no-untyped-def]
    truth, result = season_run
    parcels = pd.read_csv(truth / "parcels.csv", dtype={"id_parcel": str})
    events = pd.read_csv(truth / "events.csv", dtype={"id_parcel": str})
    evidence = result.evidence.set_index("parcel_id")
    ids = sorted(set(parcels["id_parcel"]) & set(evidence.index))

    # Bare soil: each detected spell (dated by its first bare date) against the season's ploughings.
    bare = pd.DataFrame(
        [
            (pid, day, day)
            for pid in ids
            for day in filter(None, str(evidence.at[pid, "bare_soil_dates"]).split(";"))
        ],
        columns=["parcel_id", "start", "end"],
    ).assign(confidence=1.0)
    ploughed = events[(events["event"] == "ploughing") & events["date"].between("2025-03-01", "2025-10-31")]
    b = evaluate_mowing(
        bare,
        ploughed.rename(columns={"id_parcel": "parcel_id"})[["parcel_id", "date"]],
        ids,
        tolerance_days=10,
    )
    # Measured: precision 0.948, recall 0.969 (+-10 days), parcels never ploughed with a spell 0.4 %.
    assert b["precision"] >= 0.90 and b["recall"] >= 0.92 and b["season_specificity"] >= 0.98, b

    # Activity on the grasslands: any mowing, grazing, harvest or ploughing in the window is activity.
    grass = set(parcels.loc[parcels["true_group"].isin([18, 19]), "id_parcel"]) & set(ids)
    done = events[events["date"].between("2025-04-01", "2025-10-31") & (events["event"] != "sowing")]
    active = pd.Series({pid: pid in set(done["id_parcel"]) for pid in grass})
    said = evidence.loc[active.index, "activity"].astype(bool)
    # Measured: 59 of 96 active grasslands found active (28 of the 37 missed are grazed only: an optical
    # series misses light grazing, so those are orange, never red) and none of the 10 idle ones.
    assert said[active].mean() >= 0.55, said[active].mean()
    assert not said[~active].any()
    assert (~active).sum() >= 5  # the season keeps idle grasslands to test
