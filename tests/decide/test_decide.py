"""Decision rules on small hand-made evidence."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from s3tr.decide import DECISION_COLUMNS, decide, load_ruleset
from s3tr.decide.flags import REASONS, Reason
from s3tr.errors import ConfigError

RS = load_ruleset(2025)
GROUP = {"PPH": 18, "PRL": 18, "PTR": 19, "BTH": 1, "MIS": 2, "ORH": 3, "J6S": 11, "CZH": 5, "LUZ": 16}


def parcel(id_parcel: str, code: str, **kw) -> dict:
    row = {
        "id_parcel": id_parcel,
        "code_cultu": code,
        "code_group": GROUP[code],
        "surf_parc": 2.5,
        "pacage": "086000123",
        "campaign": 2025,
        "department": "86",
        "n_pixels": 40,
        "monitorable": True,
    }
    row.update(kw)
    return row


def evidence(id_parcel: str, **kw) -> dict:
    """A clear season with nothing detected, then the test's overrides."""
    row = {
        "parcel_id": id_parcel,
        "n_valid": 25,
        "max_gap_days": 12,
        "mowing_count": 0,
        "mowing_dates": "",
        "mowing_confidence": np.nan,
        "activity": False,
        "activity_confidence": 0.9,
        "activity_status": "ok",
        "bare_soil_count": 0,
        "bare_soil_dates": "",
        "bare_soil_confidence": np.nan,
        "crop_predicted": "18",
        "crop_probability": 0.9,
        "crop_second": "19",
        "crop_second_probability": 0.05,
        "homogeneity": 0.03,  # mean within-parcel NDVI std: a uniform parcel
        "marker_version": "markers-0.1",
        "model_version": "crop-0.1",
    }
    row.update(kw)
    return row


def run(parcels: list[dict], evidences: list[dict], **kw) -> pd.DataFrame:
    return decide(pd.DataFrame(parcels), pd.DataFrame(evidences), RS, **kw)


def one(out: pd.DataFrame, id_parcel: str, control: str) -> pd.Series:
    sel = out[(out["id_parcel"] == id_parcel) & (out["control"] == control)]
    assert len(sel) == 1, f"expected one {control} decision for {id_parcel}, got {len(sel)}"
    return sel.iloc[0]


def test_output_contract() -> None:
    out = run([parcel("a", "PPH")], [evidence("a")])
    assert list(out.columns) == DECISION_COLUMNS
    assert set(out["control"]) == {"min_activity", "grassland_not_ploughed"}
    row = one(out, "a", "min_activity")
    assert row["ruleset_version"] == RS.version
    assert (row["marker_version"], row["model_version"]) == ("markers-0.1", "crop-0.1")
    assert (row["department"], row["pacage"], row["surf_parc"], row["campaign"]) == (
        "86",
        "086000123",
        2.5,
        2025,
    )
    assert isinstance(row["reasons"], list) and all(r in {x.value for x in Reason} for r in row["reasons"])


def test_grassland_with_mowing_is_green_with_its_date() -> None:
    ev = evidence("a", activity=True, mowing_count=1, mowing_dates="2025-06-02", mowing_confidence=0.85)
    row = one(run([parcel("a", "PPH")], [ev]), "a", "min_activity")
    assert row["flag"] == "green"
    assert row["reasons"] == ["activity_detected", "mowing_detected"]
    assert row["evidence"]["mowing_dates"] == ["2025-06-02"]
    assert "2025-06-02" in row["explanation_fr"] and "2025-06-02" in row["explanation_en"]


def test_mowing_outside_the_activity_window_does_not_count() -> None:
    ev = evidence("a", activity=None, mowing_count=1, mowing_dates="2025-03-10", mowing_confidence=0.9)
    row = one(run([parcel("a", "PPH")], [ev]), "a", "min_activity")
    assert row["flag"] == "orange"
    assert "mowing_dates" not in row["evidence"]


def test_a_mowing_proves_activity_only_when_its_interval_lies_in_the_window() -> None:
    """The cut happened between two clear observations: one straddling 1 April may be a March cut."""
    cases = {
        "inside": "2025-04-02/2025-04-09",
        "enters": "2025-03-26/2025-04-04",
        "leaves": "2025-10-27/2025-11-06",
    }
    evs = [
        evidence(
            p,
            activity_confidence=0.3,
            mowing_dates=iv.split("/")[0],
            mowing_intervals=iv,
            mowing_confidence=0.9,
        )
        for p, iv in cases.items()
    ]
    out = run([parcel(p, "PPH") for p in cases], evs)
    got = {p: (one(out, p, "min_activity")["flag"], one(out, p, "min_activity")["reasons"]) for p in cases}
    assert got["inside"] == ("green", ["mowing_detected"])
    assert got["enters"] == got["leaves"] == ("orange", ["mowing_straddles_window"])
    enters = one(out, "enters", "min_activity")
    assert enters["evidence"]["straddling_mowing_intervals"] == ["2025-03-26/2025-04-04"]
    assert "mowing_dates" not in enters["evidence"]
    assert "2025-03-26/2025-04-04" in enters["explanation_fr"] and "2025-04-01" in enters["explanation_en"]


def test_no_activity_with_enough_clear_observations_is_red() -> None:
    row = one(run([parcel("a", "PPH")], [evidence("a")]), "a", "min_activity")
    assert row["flag"] == "red"
    assert row["reasons"] == ["no_activity_detected"]
    assert row["evidence"]["n_valid"] == 25
    assert "25" in row["explanation_fr"]


def test_nothing_seen_without_proof_of_inactivity_asks_a_human() -> None:
    # The activity marker caps its confidence in "none" (light grazing hides): below the bar, orange.
    row = one(run([parcel("a", "PPH")], [evidence("a", activity_confidence=0.5)]), "a", "min_activity")
    assert (row["flag"], row["reasons"]) == ("orange", ["no_activity_seen"])
    assert "25" in row["explanation_fr"] and "pâturage" in row["explanation_fr"]


def test_no_activity_before_the_window_ends_waits() -> None:
    row = one(run([parcel("a", "PPH")], [evidence("a")], as_of=date(2025, 7, 1)), "a", "min_activity")
    assert (row["flag"], row["reasons"]) == ("orange", ["window_not_over"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"n_valid": 4}, "not_enough_observations"),
        ({"max_gap_days": 70}, "cloudy_gap_too_long"),
        ({"activity_confidence": 0.3}, "no_activity_seen"),
        ({"activity": True, "activity_confidence": 0.3, "mowing_dates": ""}, "activity_uncertain"),
        ({"activity_status": "not_enough_data", "activity": None}, "marker_not_enough_data"),
    ],
)
def test_thin_evidence_is_orange_never_red(overrides: dict, reason: str) -> None:
    row = one(run([parcel("a", "PPH")], [evidence("a", **overrides)]), "a", "min_activity")
    assert row["flag"] == "orange"
    assert reason in row["reasons"]


def test_few_observations_do_not_hide_a_proven_mowing() -> None:
    ev = evidence("a", n_valid=4, activity=True, mowing_dates="2025-05-10", mowing_confidence=0.9)
    assert one(run([parcel("a", "PTR")], [ev]), "a", "min_activity")["flag"] == "green"


def test_confident_mowing_against_confident_no_activity_is_conflicting() -> None:
    ev = evidence(
        "a", activity=False, activity_confidence=0.9, mowing_dates="2025-05-10", mowing_confidence=0.9
    )
    row = one(run([parcel("a", "PPH")], [ev]), "a", "min_activity")
    assert row["flag"] == "orange" and "conflicting_markers" in row["reasons"]


def test_crop_group_green_red_orange() -> None:
    parcels = [parcel("g", "BTH"), parcel("r", "BTH"), parcel("u", "BTH"), parcel("s", "BTH")]
    evs = [
        evidence(
            "g", crop_predicted="1", crop_probability=0.9, crop_second="3", crop_second_probability=0.05
        ),
        evidence("r", crop_predicted=2, crop_probability=0.97, crop_second="3", crop_second_probability=0.02),
        evidence(
            "u", crop_predicted="1", crop_probability=0.55, crop_second="3", crop_second_probability=0.40
        ),
        # declared group second with a probability above p_red: not a contradiction
        evidence(
            "s", crop_predicted="3", crop_probability=0.72, crop_second="1", crop_second_probability=0.25
        ),
    ]
    out = run(parcels, evs)
    g, r, u, s = (one(out, p, "crop_group") for p in "grus")
    assert (g["flag"], g["reasons"]) == ("green", ["crop_group_confirmed"])
    assert (r["flag"], r["reasons"]) == ("red", ["crop_group_contradicted"])
    # The declared group keeps up to 5 % (1 - 0.88 - 0.07): above the 2 % bar, not a red.
    lax = evidence(
        "l", crop_predicted=2, crop_probability=0.88, crop_second="3", crop_second_probability=0.07
    )
    assert one(run([parcel("l", "BTH")], [lax]), "l", "crop_group")["flag"] == "orange"
    # the declared group is not in the top 2: its probability is bounded by the remaining mass
    assert r["evidence"]["declared_probability"] == pytest.approx(0.01)
    assert (u["flag"], u["reasons"]) == ("orange", ["crop_group_uncertain"])
    assert s["flag"] == "orange"


def test_crop_group_red_needs_enough_evidence_and_a_homogeneous_parcel() -> None:
    red = {
        "crop_predicted": "2",
        "crop_probability": 0.96,
        "crop_second": "3",
        "crop_second_probability": 0.03,
    }
    out = run(
        [parcel("thin", "BTH"), parcel("mixed", "BTH"), parcel("uniform", "BTH")],
        [
            evidence("thin", n_valid=3, **red),
            evidence("mixed", homogeneity=0.2, **red),
            evidence("uniform", homogeneity=0.03, **red),
        ],
        model_classes=[1, 2, 3],
    )
    assert one(out, "thin", "crop_group")["flag"] == "orange"
    mixed = one(out, "mixed", "crop_group")
    assert (mixed["flag"], mixed["reasons"]) == ("orange", ["heterogeneous_parcel"])
    assert "0.2" in mixed["explanation_fr"]
    # `homogeneity` is a spread: a small one is a uniform parcel, and the contradiction stands.
    assert one(out, "uniform", "crop_group")["flag"] == "red"


def test_a_mix_up_between_similar_groups_is_never_red() -> None:
    """Soft wheat read as barley, temporary grassland as fodder: orange, while maize read as wheat is red."""
    sure = {"crop_probability": 0.99, "crop_second_probability": 0.005}
    out = run(
        [parcel("cereal", "BTH"), parcel("grass", "PTR"), parcel("maize", "MIS")],
        [
            evidence("cereal", crop_predicted="3", crop_second="4", **sure),
            evidence("grass", crop_predicted="16", crop_second="18", **sure),
            evidence("maize", crop_predicted="1", crop_second="3", **sure),
        ],
        model_classes=[1, 2, 3, 4, 16, 18, 19],
    )
    for pid in ("cereal", "grass"):
        row = one(out, pid, "crop_group")
        assert (row["flag"], row["reasons"]) == ("orange", ["crop_group_similar"]), row
    assert "proche du groupe déclaré" in one(out, "cereal", "crop_group")["explanation_fr"]
    assert one(out, "maize", "crop_group")["flag"] == "red"


def test_unfarmed_land_predicted_on_a_mown_parcel_is_never_red() -> None:
    """Lucerne read as unfarmed land (group 28) but mown twice: the markers disagree, orange."""
    sure = {
        "crop_predicted": "28",
        "crop_probability": 0.99,
        "crop_second": "1",
        "crop_second_probability": 0.01,
    }
    mown = {
        "mowing_count": 2,
        "mowing_dates": "2025-05-20;2025-07-02",
        "activity": True,
        "activity_confidence": 0.85,
    }
    out = run(
        [parcel("lucerne", "LUZ"), parcel("abandoned", "LUZ")],
        [evidence("lucerne", **sure, **mown), evidence("abandoned", **sure)],
        model_classes=[1, 16, 28],
    )
    row = one(out, "lucerne", "crop_group")
    assert (row["flag"], row["reasons"]) == ("orange", ["crop_idle_but_active"]), row
    assert "0.85" in row["explanation_en"] and "non exploitée" in row["explanation_fr"]
    # the same prediction with no activity seen is the red of land left unfarmed
    assert one(out, "abandoned", "crop_group")["flag"] == "red"


def test_declared_group_unknown_to_the_model_is_orange() -> None:
    ev = evidence(
        "a", crop_predicted="1", crop_probability=0.96, crop_second="3", crop_second_probability=0.03
    )
    row = one(run([parcel("a", "CZH")], [ev], model_classes=[1, 2, 3, 18, 19]), "a", "crop_group")
    assert (row["flag"], row["reasons"]) == ("orange", ["declared_group_not_modelled"])
    # and when it is modelled, the same evidence is a red
    row = one(run([parcel("a", "CZH")], [ev], model_classes=["1", "5"]), "a", "crop_group")
    assert row["flag"] == "red"


def test_declared_group_rare_in_training_is_orange_not_red() -> None:
    """A contradiction of a group the model saw fewer than ``min_training_parcels`` times is orange."""
    assert RS.crop_group.min_training_parcels > 0
    ev = evidence(
        "a", crop_predicted="1", crop_probability=0.96, crop_second="3", crop_second_probability=0.01
    )
    few = RS.crop_group.min_training_parcels - 1
    row = one(run([parcel("a", "CZH")], [ev], training_parcels={"1": 900, "05": few}), "a", "crop_group")
    assert (row["flag"], row["reasons"]) == ("orange", ["declared_group_rare_in_training"])
    assert row["evidence"]["training_parcels"] == few
    assert row["evidence"]["min_training_parcels"] == RS.crop_group.min_training_parcels
    # enough training parcels, or no count known: the same evidence is a red
    for kw in ({"training_parcels": {"1": 900, "5": few + 1}}, {"model_classes": ["1", "5"]}):
        row = one(run([parcel("a", "CZH")], [ev], **kw), "a", "crop_group")
        assert (row["flag"], row["reasons"]) == ("red", ["crop_group_contradicted"])
    # a confirmation of a rare group stays green
    ok = evidence("b", crop_predicted="5", crop_probability=0.95)
    row = one(run([parcel("b", "CZH")], [ok], training_parcels={"5": 3}), "b", "crop_group")
    assert row["flag"] == "green"


def test_no_crop_model_is_orange() -> None:
    ev = evidence(
        "a",
        crop_predicted=np.nan,
        crop_probability=np.nan,
        crop_second=np.nan,
        crop_second_probability=np.nan,
    )
    row = one(run([parcel("a", "BTH")], [ev]), "a", "crop_group")
    assert (row["flag"], row["reasons"]) == ("orange", ["no_crop_prediction"])


@pytest.mark.parametrize(
    ("confidence", "flag"), [(0.95, "red"), (0.6, "orange"), (0.2, "green"), (np.nan, "green")]
)
def test_bare_soil_on_permanent_grassland(confidence: float, flag: str) -> None:
    ev = evidence(
        "a",
        bare_soil_count=1,
        bare_soil_dates="2025-09-15",
        bare_soil_confidence=confidence,
        crop_predicted="1",
        crop_probability=0.6,
        crop_second="18",
        crop_second_probability=0.3,
    )
    row = one(run([parcel("a", "PPH")], [ev]), "a", "grassland_not_ploughed")
    assert row["flag"] == flag
    if flag == "red":
        assert row["reasons"] == ["ploughing_detected"]
        assert "2025-09-15" in row["explanation_fr"]


def test_a_doubted_bare_soil_says_why() -> None:
    """The orange names the marker's doubt about the most confident event (none said: the generic reason)."""
    two = {"bare_soil_count": 2, "bare_soil_dates": "2025-03-10;2025-07-20", "bare_soil_confidence": 0.55}
    evs = [
        evidence(
            "dry",
            **two,
            bare_soil_confidences="0.450;0.550",
            bare_soil_doubts="no_green_cover;dry_vegetation",
        ),
        evidence(
            "dormant",
            **two,
            bare_soil_confidences="0.550;0.450",
            bare_soil_doubts="no_green_cover;single_date",
        ),
        evidence(
            "single",
            **two,
            bare_soil_confidences="0.450;0.550",
            bare_soil_doubts="no_green_cover;single_date",
        ),
        evidence("old", **two),  # evidence written before the doubts
    ]
    out = run([parcel(e["parcel_id"], "PPH") for e in evs], evs)
    got = {e["parcel_id"]: one(out, e["parcel_id"], "grassland_not_ploughed") for e in evs}
    assert {p: (g["flag"], g["reasons"]) for p, g in got.items()} == {
        "dry": ("orange", ["bare_soil_dry_vegetation"]),
        "dormant": ("orange", ["bare_soil_no_lost_cover"]),
        "single": ("orange", ["bare_soil_uncertain"]),
        "old": ("orange", ["bare_soil_uncertain"]),
    }
    assert "NDTI" in got["dry"]["explanation_fr"] and "2025-07-20" in got["dry"]["explanation_fr"]
    assert "dormant sward" in got["dormant"]["explanation_en"]


def test_ploughing_while_grassland_is_recognised_is_conflicting() -> None:
    ev = evidence(
        "a",
        bare_soil_count=1,
        bare_soil_dates="2025-09-15",
        bare_soil_confidence=0.95,
        crop_predicted="18",
        crop_probability=0.9,
    )
    row = one(run([parcel("a", "PPH")], [ev]), "a", "grassland_not_ploughed")
    assert row["flag"] == "orange" and "conflicting_markers" in row["reasons"]


def test_no_ploughing_green_needs_no_long_gap() -> None:
    out = run([parcel("a", "PPH"), parcel("b", "PPH")], [evidence("a"), evidence("b", max_gap_days=80)])
    assert one(out, "a", "grassland_not_ploughed")["flag"] == "green"
    b = one(out, "b", "grassland_not_ploughed")
    assert (b["flag"], b["reasons"]) == ("orange", ["cloudy_gap_too_long"])
    assert b["evidence"]["max_gap_days"] == 80


def test_fallow_rules() -> None:
    parcels = [parcel(p, "J6S") for p in ("ok", "mowed", "late", "doubt", "tilled")]
    evs = [
        evidence("ok", crop_predicted="11"),
        evidence("mowed", mowing_dates="2025-05-20", mowing_confidence=0.9),
        evidence("late", mowing_dates="2025-08-20", mowing_confidence=0.9),  # after the protected period
        evidence("doubt", mowing_dates="2025-05-20", mowing_confidence=0.3),
        evidence("tilled", bare_soil_dates="2025-05-25", bare_soil_confidence=0.9),
    ]
    out = run(parcels, evs)
    flags = {p: one(out, p, "fallow")["flag"] for p in ("ok", "mowed", "late", "doubt", "tilled")}
    assert flags == {"ok": "green", "mowed": "red", "late": "green", "doubt": "orange", "tilled": "red"}
    assert one(out, "mowed", "fallow")["evidence"]["protected_mowing_dates"] == ["2025-05-20"]
    assert one(out, "tilled", "fallow")["reasons"] == ["fallow_tilled_in_protected_period"]


def test_fallow_judges_each_event_on_its_own_confidence() -> None:
    """A doubtful cut in May is not proven by a confident one in August (a wrong red until markers-0.4.0)."""
    two_cuts = {"mowing_dates": "2025-05-20;2025-08-20", "mowing_confidence": 0.95}
    soil = {"bare_soil_dates": "2025-05-25;2025-09-10", "bare_soil_confidence": 0.9}
    evs = [
        evidence("weak_may", **two_cuts, mowing_confidences="0.450;0.950"),
        evidence("strong_may", **two_cuts, mowing_confidences="0.900;0.950"),
        evidence("old_evidence", **two_cuts),  # written before per-event confidences: the best stands in
        evidence("weak_soil", **soil, bare_soil_confidences="0.500;0.900"),
    ]
    out = run([parcel(e["parcel_id"], "J6S") for e in evs], evs)
    got = {e["parcel_id"]: one(out, e["parcel_id"], "fallow") for e in evs}
    flags = {p: (g["flag"], g["reasons"]) for p, g in got.items()}
    assert flags["weak_may"] == ("orange", ["fallow_disturbance_uncertain"])
    assert got["weak_may"]["evidence"]["mowing_confidence"] == 0.45
    assert flags["strong_may"] == ("red", ["fallow_mowed_in_protected_period"])
    assert flags["old_evidence"][0] == "red"
    assert flags["weak_soil"][0] == "orange"
    assert "(confidence 0.90)" in got["strong_may"]["explanation_en"]  # the May cut's own, quoted
    assert got["weak_soil"]["evidence"]["bare_soil_confidence"] == 0.5


def test_fallow_red_needs_the_red_confidence_while_activity_takes_the_lower_one() -> None:
    """A cut between min_confidence and confidence_red proves activity (green), not a fallow breach."""
    assert RS.mowing.min_confidence < RS.mowing.red_confidence
    middle = round((RS.mowing.min_confidence + RS.mowing.red_confidence) / 2, 3)
    cut = {"mowing_dates": "2025-05-20", "mowing_intervals": "2025-05-18/2025-05-22", "activity": True}
    evs = [
        evidence(
            "middle",
            **cut,
            mowing_confidence=middle,
            mowing_confidences=f"{middle:.3f}",
            activity_confidence=0.3,
        ),
        evidence("strong", **cut, mowing_confidence=RS.mowing.red_confidence),
    ]
    out = run(
        [parcel("middle", "J6S"), parcel("strong", "J6S"), parcel("meadow", "PPH")],
        [*evs[:2], {**evs[0], "parcel_id": "meadow"}],
    )
    assert (one(out, "middle", "fallow")["flag"], one(out, "middle", "fallow")["reasons"]) == (
        "orange",
        ["fallow_disturbance_uncertain"],
    )
    assert one(out, "strong", "fallow")["flag"] == "red"
    meadow = one(out, "meadow", "min_activity")
    assert meadow["flag"] == "green" and "mowing_detected" in meadow["reasons"]


def test_mowing_red_confidence_defaults_to_min_confidence_and_may_not_be_below_it() -> None:
    from s3tr.decide.rules import MowingRules

    assert MowingRules(min_confidence=0.6).red_confidence == 0.6
    assert MowingRules(min_confidence=0.6, confidence_red=0.8).red_confidence == 0.8
    with pytest.raises(ValueError, match="confidence_red"):
        MowingRules(min_confidence=0.6, confidence_red=0.5)


def test_min_activity_needs_a_confident_cut_inside_the_window() -> None:
    ev = evidence(
        "a",
        mowing_dates="2025-03-10;2025-06-01",
        mowing_intervals="2025-03-05/2025-03-15;2025-05-28/2025-06-03",
        mowing_confidence=0.95,
        mowing_confidences="0.950;0.450",
        activity=True,
        activity_confidence=0.3,
    )
    got = one(run([parcel("a", "PPH")], [ev]), "a", "min_activity")
    # The confident fall is in March, before the window: the window's own cut is too doubtful to prove it.
    assert got["flag"] == "orange" and "mowing_detected" not in got["reasons"]


def test_fallow_mowing_interval_must_lie_inside_the_protected_period() -> None:
    """The cut happened between two clear observations: red only when both are inside the period."""
    cases = {
        "inside": "2025-05-15/2025-05-20",
        "leaves": "2025-06-05/2025-07-05",  # start inside, but the cut may be after 9 June
        "enters": "2025-04-26/2025-05-04",  # end inside, but the cut may be before 1 May
        "near_edge": "2025-05-03/2025-05-08",  # inside, but a cut on 28 April can look like this
        "before": "2025-04-01/2025-04-20",
    }
    evs = [
        evidence(p, mowing_dates=iv.split("/")[0], mowing_intervals=iv, mowing_confidence=0.9)
        for p, iv in cases.items()
    ]
    out = run([parcel(p, "J6S") for p in cases], evs)
    got = {p: (one(out, p, "fallow")["flag"], one(out, p, "fallow")["reasons"]) for p in cases}
    assert got["inside"] == ("red", ["fallow_mowed_in_protected_period"])
    assert got["leaves"] == got["enters"] == ("orange", ["fallow_mowing_straddles_period"])
    assert got["before"] == ("green", ["fallow_undisturbed"])
    assert got["near_edge"] == ("orange", ["fallow_mowing_near_period_edge"])
    near = one(out, "near_edge", "fallow")
    assert near["evidence"]["near_edge_mowing_intervals"] == ["2025-05-03/2025-05-08"]
    assert "2025-05-03/2025-05-08" in near["explanation_fr"] and "10 jours" in near["explanation_fr"]
    enters = one(out, "enters", "fallow")
    assert enters["evidence"]["straddling_mowing_intervals"] == ["2025-04-26/2025-05-04"]
    assert "2025-04-26/2025-05-04" in enters["explanation_fr"]


@pytest.mark.parametrize("small", [{"n_pixels": 5}, {"monitorable": False}])
def test_too_small_parcel_is_orange_for_every_control(small: dict) -> None:
    ev = evidence("a")  # would be red for min_activity on a big parcel
    out = run([parcel("a", "PPH", **small)], [ev])
    assert set(out["flag"]) == {"orange"}
    assert all(r == ["too_small"] for r in out["reasons"])


def test_parcel_without_evidence_is_orange_no_evidence() -> None:
    out = run([parcel("a", "PPH"), parcel("b", "BTH")], [evidence("a")])
    b = one(out, "b", "crop_group")
    assert (b["flag"], b["reasons"]) == ("orange", ["no_evidence"])
    assert pd.isna(b["marker_version"])


def test_monitorability_may_come_with_the_evidence() -> None:
    p = parcel("a", "PPH")
    del p["n_pixels"], p["monitorable"]
    out = run([p], [evidence("a", n_pixels=3)])
    assert set(out["flag"]) == {"orange"}


def test_campaign_mismatch_is_refused() -> None:
    with pytest.raises(ConfigError, match="campaign"):
        run([parcel("a", "PPH", campaign=2023)], [evidence("a")])


def test_red_only_with_red_reasons_and_orange_reasons_only_on_orange() -> None:
    rng = np.random.default_rng(7)
    codes = rng.choice(list(GROUP), 400)
    parcels = [parcel(f"p{i}", c, n_pixels=int(rng.integers(2, 60))) for i, c in enumerate(codes)]
    evs = [
        evidence(
            f"p{i}",
            n_valid=int(rng.integers(0, 30)),
            max_gap_days=int(rng.integers(3, 90)),
            activity=bool(rng.random() < 0.5),
            activity_confidence=float(rng.random()),
            mowing_dates=rng.choice(["", "2025-05-20", "2025-04-15;2025-07-01"]),
            mowing_confidence=float(rng.random()),
            bare_soil_dates=rng.choice(["", "2025-05-25"]),
            bare_soil_confidence=float(rng.random()),
            crop_predicted=str(rng.choice([1, 2, 3, 5, 11, 18, 19])),
            crop_probability=float(rng.uniform(0.3, 1)),
            crop_second=str(rng.choice([1, 2, 3])),
            crop_second_probability=0.1,
        )
        for i in range(0, 400, 1)
        if rng.random() < 0.9
    ]
    out = run(parcels, evs)
    for row in out.itertuples():
        colours = {REASONS[Reason(r)].flag.value for r in row.reasons}
        if row.flag == "red":
            assert colours == {"red"}, row
        if "orange" in colours:
            assert row.flag == "orange", row
        assert row.explanation_fr and row.explanation_en and "?" not in row.explanation_fr, row


def test_ten_thousand_parcels_decide_quickly_enough() -> None:
    """Not a timed assertion: prints the rate (the brief asks < 1 s per 10k parcels)."""
    n = 10_000
    parcels = pd.DataFrame([parcel(f"p{i}", ("PPH", "BTH", "J6S", "PTR")[i % 4]) for i in range(n)])
    evs = pd.DataFrame(
        [evidence(f"p{i}", mowing_dates="2025-05-20", mowing_confidence=0.8) for i in range(n)]
    )
    start = time.perf_counter()
    out = decide(parcels, evs, RS)
    print(f"decide: {n} parcels -> {len(out)} decisions in {time.perf_counter() - start:.2f} s")
    assert len(out) == n // 4 * (2 + 1 + 1 + 2)


def test_no_evidence_at_all_and_no_parcels() -> None:
    out = decide(pd.DataFrame([parcel("a", "PPH"), parcel("b", "J6S")]), pd.DataFrame(), RS)
    assert len(out) == 3 and set(out["flag"]) == {"orange"}
    assert all(r == ["no_evidence"] for r in out["reasons"])
    empty = decide(pd.DataFrame([parcel("a", "PPH")]).iloc[:0], pd.DataFrame([evidence("a")]), RS)
    assert empty.empty and list(empty.columns) == DECISION_COLUMNS
