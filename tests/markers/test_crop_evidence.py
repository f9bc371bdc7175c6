from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from s3tr.markers import EVIDENCE_COLUMNS, compute_evidence, run_crop_predict, run_crop_train, run_mowing
from s3tr.markers.crop import (
    FORMAT_VERSION,
    CropModel,
    CropModelError,
    build_features,
    homogeneity,
    make_classifier,
    train_crop_model,
)
from s3tr.markers.table import MarkerInputError, normalize_timeseries


def _crops(n_per: int = 15, seed: int = 0, year: int = 2022) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three synthetic crop shapes (winter cereal, maize, grass) with noise, 10-day sampling."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(f"{year}-01-05", f"{year}-12-20", freq="10D")
    doy = np.asarray(dates.day_of_year, dtype=float)
    shapes = {
        "cereal": 0.2 + 0.6 * np.exp(-(((doy - 120) / 40) ** 2)),
        "maize": 0.15 + 0.7 * np.exp(-(((doy - 210) / 30) ** 2)),
        "grass": 0.55 + 0.2 * np.sin(doy / 365 * 2 * np.pi - 1.5),
    }
    rows, labels = [], []
    for lab, shape in shapes.items():
        for i in range(n_per):
            pid = f"{lab}{i}_{year}"
            shift = rng.integers(-8, 9)
            v = np.interp(doy + shift, doy, shape) + rng.normal(0, 0.03, doy.size)
            valid = rng.random(doy.size) > 0.2
            rows.append(
                pd.DataFrame(
                    {
                        "parcel_id": pid,
                        "date": dates,
                        "ndvi": v,
                        "valid": valid.astype(int),
                        "ndvi_std": 0.05 + 0.01 * i,
                    }
                )
            )
            labels.append((pid, lab))
    return pd.concat(rows, ignore_index=True), pd.DataFrame(labels, columns=["parcel_id", "label"])


def test_features_do_not_depend_on_the_year():
    a, _ = _crops(n_per=2, year=2021)
    b, _ = _crops(n_per=2, year=2023)
    fa = build_features(normalize_timeseries(a))
    fb = build_features(normalize_timeseries(b))
    np.testing.assert_allclose(fa.to_numpy(), fb.to_numpy(), atol=0.02)


def test_train_predict_save_load_and_version_check(tmp_path, caplog):
    table, labels = _crops()
    labels = pd.concat([labels, pd.DataFrame({"parcel_id": ["ghost"], "label": ["maize"]})])
    test_table, test_labels = _crops(n_per=5, seed=1, year=2023)
    model = train_crop_model(
        normalize_timeseries(table),
        labels,
        seed=0,
        estimator=make_classifier(n_estimators=60),
    )
    assert "absent from the time series" in caplog.text
    pred = model.predict(normalize_timeseries(test_table)).merge(test_labels, on="parcel_id")
    assert (pred["predicted"] == pred["label"]).mean() >= 0.9
    assert (pred["probability"] >= pred["second_probability"]).all()
    assert set(pred["second"]) <= {"cereal", "maize", "grass"}
    path = model.save(tmp_path / "m")
    card = json.loads(path.with_suffix(".json").read_text())
    assert (
        card["format_version"] == FORMAT_VERSION
        and card["n_parcels"] == 45
        and "ndvi_b00" in card["features"]
    )
    # the decisions' rare-group rule reads the training counts from the card
    assert CropModel.load(path).training_parcels == {"cereal": 15, "grass": 15, "maize": 15}
    again = CropModel.load(path).predict(normalize_timeseries(test_table))
    np.testing.assert_allclose(
        again["probability"], model.predict(normalize_timeseries(test_table))["probability"]
    )
    import joblib

    blob = joblib.load(path)
    blob["format_version"] = 999
    joblib.dump(blob, path)
    with pytest.raises(CropModelError, match="retrain"):
        CropModel.load(path)


def test_homogeneity_and_evidence_columns(make_grass):
    table, labels = _crops(n_per=5)
    model = train_crop_model(
        normalize_timeseries(table),
        labels,
        seed=0,
        estimator=make_classifier(n_estimators=60),
    )
    grass = make_grass("g1", mowings=("2023-06-10",))
    twice = make_grass("g2", mowings=("2023-05-20", "2023-08-01"), seed=1)
    dec = pd.DataFrame(
        {
            "id_parcel": ["cereal0_2022", "g1", "g2", "missing"],
            "code_cultu": ["BTH", "PPH", "PPH", "PPH"],
            "code_group": [1, 18, 18, 18],
        }
    )
    ev = compute_evidence(pd.concat([table, grass, twice]), dec, crop_model=model)
    assert list(ev.columns) == EVIDENCE_COLUMNS
    ev = ev.set_index("parcel_id")
    assert ev.loc["g1", "mowing_count"] == 1 and ev.loc["g1", "activity"]
    assert ev.loc["g1", "mowing_dates"].startswith("2023-06-")
    # Each event's own confidence, in the order of the dates; the best is the parcel's confidence.
    own = [float(c) for c in ev.loc["g2", "mowing_confidences"].split(";")]
    assert len(own) == ev.loc["g2", "mowing_count"] == 2
    assert max(own) == pytest.approx(ev.loc["g2", "mowing_confidence"], abs=5e-4)
    assert ev.loc["missing", "mowing_confidences"] == "" and ev.loc["missing", "bare_soil_confidences"] == ""
    assert ev.loc["missing", "activity_status"] == "not_enough_data" and ev.loc["missing", "n_valid"] == 0
    assert ev.loc["cereal0_2022", "crop_predicted"] == "cereal"
    assert ev.loc["cereal0_2022", "homogeneity"] == pytest.approx(0.05)
    assert np.isnan(ev.loc["g1", "homogeneity"])
    assert ev["model_version"].iloc[0] == model.version
    assert homogeneity(normalize_timeseries(table)).index.name == "parcel_id"
    no_model = compute_evidence(grass, dec.iloc[1:2])
    assert no_model["crop_predicted"].isna().all() and no_model["model_version"].isna().all()


def test_cli_functions_roundtrip(tmp_path, make_grass):
    table, labels = _crops(n_per=5)
    table.to_csv(tmp_path / "ts.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    run_crop_train(tmp_path / "ts.csv", tmp_path / "labels.csv", tmp_path / "models" / "crop.joblib")
    pred = run_crop_predict(tmp_path / "ts.csv", tmp_path / "models" / "crop.joblib", tmp_path / "pred.csv")
    written = pd.read_csv(tmp_path / "pred.csv")
    assert list(written.columns)[:5] == [
        "parcel_id",
        "predicted",
        "probability",
        "second",
        "second_probability",
    ]
    assert len(written) == len(pred) == 15
    make_grass("g", mowings=("2023-06-10",)).to_csv(tmp_path / "g.csv", index=False)
    returned = run_mowing(tmp_path / "g.csv", tmp_path / "events.csv")
    assert len(returned) == 1 and returned.attrs["status_counts"] == {"ok": 1}
    ev = pd.read_csv(tmp_path / "events.csv")
    assert (
        list(ev.columns) == ["parcel_id", "start", "end", "confidence"] and ev["start"].str.len().eq(10).all()
    )


def test_rare_classes_are_dropped_or_use_fewer_folds(caplog):
    table, labels = _crops(n_per=5)
    # Three parcels of a class: still calibrated (3 folds); a class of two is dropped with a warning.
    labels.loc[labels["parcel_id"].isin(["maize0_2022", "maize1_2022"]), "label"] = "rare"
    labels.loc[labels["parcel_id"].isin(["grass0_2022", "grass1_2022", "grass2_2022"]), "label"] = "three"
    model = train_crop_model(normalize_timeseries(table), labels, seed=0)
    assert "rare" not in model.classes and "three" in model.classes
    assert "dropped" in caplog.text


def test_classifier_choice_stack_by_default_trees_on_request_or_when_large(tmp_path, monkeypatch, caplog):
    from s3tr.markers import crop as crop_module
    from s3tr.markers.stack import RocketStackClassifier

    table, labels = _crops(n_per=5)
    table.to_csv(tmp_path / "ts.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    stack = run_crop_train(tmp_path / "ts.csv", tmp_path / "labels.csv", tmp_path / "s.joblib")
    trees = run_crop_train(
        tmp_path / "ts.csv", tmp_path / "labels.csv", tmp_path / "t.joblib", classifier="trees"
    )
    assert isinstance(CropModel.load(tmp_path / "s.joblib").estimator, RocketStackClassifier)
    assert "CalibratedClassifierCV" in trees.card["estimator"]
    for model in (stack, trees):
        pred = model.predict(normalize_timeseries(table)).set_index("parcel_id")["predicted"]
        assert (pred == labels.set_index("parcel_id")["label"].reindex(pred.index)).mean() >= 0.9

    # "auto" falls back to the trees when the stack's n x n matrices would be too large.
    monkeypatch.setattr(crop_module, "STACK_MAX_ROWS", 10)
    caplog.set_level("INFO", logger="s3tr.markers.crop")
    auto = train_crop_model(normalize_timeseries(table), labels, seed=0)
    assert "CalibratedClassifierCV" in auto.card["estimator"] and "instead of the stack" in caplog.text
    with pytest.raises(MarkerInputError, match="unknown classifier 'forest'"):
        train_crop_model(normalize_timeseries(table), labels, classifier="forest")


def test_stack_out_of_fold_scores_never_split_a_group():
    from s3tr.markers.stack import RocketStackClassifier

    table, labels = _crops(n_per=6)
    # Four "pixels" per parcel: near-duplicates that must stay on one side of every out-of-fold split.
    pixels = pd.concat([table.assign(parcel_id=table["parcel_id"] + f"#{k}") for k in range(4)])
    pix_labels = pd.concat([labels.assign(parcel_id=labels["parcel_id"] + f"#{k}") for k in range(4)])
    groups = pd.Series(
        pix_labels["parcel_id"].str.split("#").str[0].to_numpy(), index=pix_labels["parcel_id"]
    )
    model = train_crop_model(normalize_timeseries(pixels), pix_labels, groups=groups, classifier="stack")
    parcel_of_row = np.array([p.split("#")[0] for p in pix_labels["parcel_id"]])
    folds = model.estimator.cv  # the explicit grouped splits the stack's out-of-fold scores used
    assert len(folds) == 5
    for tr, te in folds:
        assert not set(parcel_of_row[tr]) & set(parcel_of_row[te])
    assert isinstance(model.estimator, RocketStackClassifier)


def test_stack_trains_when_a_class_lies_in_one_group_only():
    from s3tr.markers.stack import RocketStackClassifier

    table, labels = _crops(n_per=6)
    # Three "pixels" of one parcel make a class of their own: grouped splits leave it out of some folds.
    solo = table[table["parcel_id"] == "grass0_2022"]
    pixels = pd.concat([table, *[solo.assign(parcel_id=f"solo#{k}") for k in range(3)]])
    pix_labels = pd.concat(
        [labels, pd.DataFrame({"parcel_id": [f"solo#{k}" for k in range(3)], "label": "solo"})]
    )
    groups = pd.Series(
        pix_labels["parcel_id"].str.split("#").str[0].to_numpy(), index=pix_labels["parcel_id"]
    )
    model = train_crop_model(normalize_timeseries(pixels), pix_labels, groups=groups, classifier="stack")
    assert isinstance(model.estimator, RocketStackClassifier) and "solo" in model.classes
    proba = model.predict_proba_features(build_features(normalize_timeseries(table)))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)


def test_crop_features_say_they_read_one_season_of_a_multi_year_series(caplog):
    """The crop of a parcel is a campaign's: two years of a parcel are classified on one, with a warning."""
    ts, _ = _crops(n_per=2, year=2022)
    later, _ = _crops(n_per=2, year=2023)
    one = ts["parcel_id"].iloc[0]
    second_year = later[later["parcel_id"] == one.replace("2022", "2023")].assign(parcel_id=one)
    table = normalize_timeseries(pd.concat([ts, second_year]))
    with caplog.at_level("WARNING", logger="s3tr.markers.table"):
        feats = build_features(table)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("crop group:")]
    assert len(warned) == 1 and f"{one} (season from" in warned[0] and "1 parcel(s)" in warned[0]
    assert len(feats) == ts["parcel_id"].nunique()
