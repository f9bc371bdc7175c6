from __future__ import annotations

import numpy as np

from s3tr.markers.rocket import RocketTransform


def _two_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Early versus late NDVI peak on 46 steps, with noise and +-2-step jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(46, dtype=float)
    y = rng.integers(0, 2, n)
    centre = np.where(y == 0, 15.0, 28.0) + rng.integers(-2, 3, n)
    x = 0.2 + 0.6 * np.exp(-(((t[None, :] - centre[:, None]) / 6.0) ** 2)) + rng.normal(0, 0.04, (n, 46))
    return x, y


def test_shape_determinism_and_ranges():
    x, _ = _two_shapes(30, 0)
    a = RocketTransform(n_dilations=6, n_biases=2, seed=3).fit(x).transform(x)
    b = RocketTransform(n_dilations=6, n_biases=2, seed=3).fit(x).transform(x)
    c = RocketTransform(n_dilations=6, n_biases=2, seed=4).fit(x).transform(x)
    # 46 steps: dilations 1, 2, 4, 5; 84 kernels; 2 biases; 4 poolings; series and its difference.
    assert a.shape == (30, 2 * 4 * 84 * 2 * 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ppv = a[:, 0::4]
    assert np.isfinite(a).all() and ppv.min() >= 0 and ppv.max() <= 1
    # Biases are quantiles of real outputs: most proportions are strictly between 0 and 1.
    assert ((ppv > 0) & (ppv < 1)).mean() > 0.5


def test_features_separate_two_phenologies():
    from sklearn.linear_model import RidgeClassifier

    xtr, ytr = _two_shapes(80, 1)
    xte, yte = _two_shapes(80, 2)
    rt = RocketTransform(n_dilations=4, n_biases=2, seed=0).fit(xtr)
    clf = RidgeClassifier(alpha=10.0).fit(rt.transform(xtr), ytr)
    assert (clf.predict(rt.transform(xte)) == yte).mean() >= 0.9


def test_stacked_classifier_trains_saves_and_predicts(tmp_path):
    import pandas as pd

    from s3tr.markers.crop import CropModel, train_crop_model
    from s3tr.markers.stack import RocketStackClassifier

    x, y = _two_shapes(60, 5)
    dates = pd.Timestamp("2022-01-01") + pd.to_timedelta(np.arange(46) * 8, unit="D")
    table = pd.DataFrame(
        {
            "parcel_id": np.repeat([f"p{i}" for i in range(len(y))], 46),
            "date": np.tile(dates, len(y)),
            "ndvi": x.reshape(-1),
        }
    )
    labels = pd.DataFrame(
        {"parcel_id": [f"p{i}" for i in range(len(y))], "label": np.where(y, "late", "early")}
    )
    est = RocketStackClassifier(seed=0, n_estimators=50, cv=3, n_jobs=1)
    model = train_crop_model(table.iloc[: 40 * 46], labels.iloc[:40], estimator=est)
    model.save(tmp_path / "m.joblib")
    loaded = CropModel.load(tmp_path / "m.joblib")
    pred = loaded.predict(table.iloc[40 * 46 :])
    truth = labels.iloc[40:].set_index("parcel_id")["label"]
    assert (pred.set_index("parcel_id")["predicted"] == truth).mean() >= 0.9
    assert pred["probability"].between(0.5, 1.0).all()
    np.testing.assert_allclose(pred["probability"] + pred["second_probability"], 1.0, atol=1e-9)


def test_gaussian_kernel_heads_separate_and_feed_the_stack():
    from s3tr.markers.stack import RocketStackClassifier, _rbf

    xtr, ytr = _two_shapes(60, 6)
    xte, yte = _two_shapes(60, 7)
    k = _rbf(xtr, xtr, 1.0)
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-9)
    np.testing.assert_allclose(k, k.T, atol=1e-12)
    assert (k > 0).all() and (k <= 1 + 1e-12).all()

    with_k = RocketStackClassifier(n_estimators=30, cv=3, n_jobs=1).fit(xtr, ytr)
    without = RocketStackClassifier(n_estimators=30, cv=3, n_jobs=1, kernels=False).fit(xtr, ytr)
    # Stack input: log tree probabilities, ridge scores, one score block per kernel head (2 classes each).
    assert with_k.stacker_.n_features_in_ == 8 and without.stacker_.n_features_in_ == 4
    # Each kernel head alone already tells the two phenologies apart on new series.
    for (v, gamma), train, dual in zip(
        with_k._views(xte), with_k.kernel_train_, with_k.kernel_dual_, strict=True
    ):
        scores = _rbf(v, train, gamma) @ dual + with_k.ridge_intercept_
        assert (with_k.classes_[scores.argmax(1)] == yte).mean() >= 0.9
    proba = with_k.predict_proba(xte)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert (with_k.predict(xte) == yte).mean() >= 0.9


def test_prediction_by_blocks_equals_prediction_at_once(monkeypatch):
    from s3tr.markers import stack
    from s3tr.markers.stack import RocketStackClassifier

    xtr, ytr = _two_shapes(60, 8)
    xte, _ = _two_shapes(60, 9)
    clf = RocketStackClassifier(n_estimators=30, cv=3, n_jobs=1).fit(xtr, ytr)
    whole = clf.predict_proba(xte)
    monkeypatch.setattr(stack, "_PREDICT_BLOCK", 7)  # 60 rows: 8 full blocks and a remainder of 4
    np.testing.assert_allclose(clf.predict_proba(xte), whole, rtol=0, atol=1e-12)
