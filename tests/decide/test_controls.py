"""Which controls apply to which declared crop, checked against the real RPG nomenclature."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from s3tr.decide.controls import applicable_controls, controls_for, load_crop_controls


@pytest.mark.parametrize(
    ("code", "group", "expected"),
    [
        ("PPH", 18, {"min_activity", "grassland_not_ploughed"}),
        ("PRL", 18, {"min_activity", "grassland_not_ploughed"}),
        ("PTR", 19, {"min_activity", "crop_group"}),
        ("J6S", 11, {"fallow"}),
        ("J5M", 11, {"fallow"}),
        ("JNO", 11, set()),  # black fallow: bare on purpose
        ("BTH", 1, {"crop_group"}),
        ("MIS", 2, {"crop_group"}),
        ("VRC", 21, set()),  # vines: no model class
        ("XXX", 99, set()),  # unknown group
    ],
)
def test_controls_for(code: str, group: int, expected: set[str]) -> None:
    assert {c.value for c in controls_for(code, group)} == expected


def test_applicable_controls_matches_row_by_row_lookup() -> None:
    parcels = pd.DataFrame(
        {
            "id_parcel": ["a", "b", "c", "d", "e", "f"],
            "code_cultu": ["pph", "BTH", "JNO", "J6S", None, "ZZZ"],
            "code_group": pd.array([18, 1, 11, 11, 19, pd.NA], dtype="Int64"),
        }
    )
    pairs = applicable_controls(parcels)
    for row in parcels.itertuples():
        got = set(pairs.loc[pairs["id_parcel"] == row.id_parcel, "control"])
        assert got == {c.value for c in controls_for(row.code_cultu, row.code_group)}, row.id_parcel
    assert not pairs.duplicated().any()


@pytest.mark.integration
def test_every_rpg_code_and_group_is_covered(realdata: Path) -> None:
    codes = pd.read_csv(realdata / "rpg_codes" / "rpg_codes_2017.csv", sep=";", dtype=str)
    codes.columns = ["code", "label", "group", "group_label"]
    table = load_crop_controls()
    groups_in_list = set(table.loc[table["scope"] == "group", "key"])
    overrides = set(table.loc[table["scope"] == "code", "key"])
    # every group of the nomenclature has an explicit row (a decision, even "no control")
    assert set(codes["group"]) <= groups_in_list, set(codes["group"]) - groups_in_list
    # every code override names a real code
    assert overrides <= set(codes["code"]), overrides - set(codes["code"])
    # the groups named in the design hold the codes the design names
    by_code = codes.set_index("code")["group"]
    assert by_code["PPH"] == by_code["PRL"] == "18"
    assert by_code["PTR"] == "19"
    assert {by_code[c] for c in ("J5M", "J6P", "J6S")} == {"11"}
    # and every real code gets the controls of its group unless overridden
    parcels = pd.DataFrame(
        {"id_parcel": codes["code"], "code_cultu": codes["code"], "code_group": codes["group"]}
    )
    pairs = applicable_controls(parcels)
    grass = set(pairs.loc[pairs["control"] == "grassland_not_ploughed", "id_parcel"])
    assert grass == set(codes.loc[codes["group"] == "18", "code"])
    fallow = set(pairs.loc[pairs["control"] == "fallow", "id_parcel"])
    assert fallow == set(codes.loc[codes["group"] == "11", "code"]) - {"JNO"}
