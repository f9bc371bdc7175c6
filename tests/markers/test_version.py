"""The marker version moves with the markers' default parameters (the nightly re-decides on a new version)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

from s3tr.markers import MARKER_VERSION, ActivityParams, default_parameters

#: Digest of ``default_parameters()`` for each released marker version. When a default changes, bump
#: ``MARKER_VERSION`` (s3tr/markers/__init__.py) and record the new digest here.
RECORDED = {
    "markers-0.2.0": "3f22bba28a8964ca",
    # Same parameters; the activity marker counts only the events lying inside its window.
    "markers-0.2.1": "3f22bba28a8964ca",
    # Mowing: a candidate seen in a sparse series is trusted more (gap_offset).
    "markers-0.3.0": "42f1df3f010c00c6",
    # Bare soil: a soil-like run with no green cover before it (snow, a dormant sward) is no ploughing.
    "markers-0.4.0": "a8cfdd9dd74c9f9c",
    # Bare soil: a soil-like run that reads as dry vegetation (NDTI above max_ndti) is no ploughing.
    "markers-0.5.0": "9bbefb7839809500",
}


def _digest(params: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def test_marker_version_moves_with_the_default_parameters() -> None:
    digest = _digest(default_parameters())
    assert RECORDED.get(MARKER_VERSION) == digest, (
        f"the markers' default parameters changed (digest {digest}) but MARKER_VERSION is still "
        f"{MARKER_VERSION}: bump it, so that nightly runs re-decide every parcel, and record the digest"
    )


def test_the_digest_sees_a_nested_parameter() -> None:
    # A mowing scorer coefficient sits three levels down (activity -> mowing -> scorer): still seen.
    act = ActivityParams()
    scorer = act.mowing.scorer_bands
    nudged = replace(
        act, mowing=act.mowing.with_(scorer_bands=replace(scorer, intercept=scorer.intercept + 1e-3))
    )
    changed = {**default_parameters(), "activity": asdict(nudged)}
    assert _digest(changed) != _digest(default_parameters())


def test_the_mowing_model_card_describes_the_shipped_scorers() -> None:
    from pathlib import Path

    from s3tr.markers.mowing import BAND_FEATURES, INDEX_FEATURES, NDVI_FEATURES, MowingParams

    card = json.loads((Path(__file__).resolve().parents[2] / "models" / "mowing" / "card.json").read_text())
    # Written by pipelines/fit_mowing.py: rerun it when the scorers or the marker version change.
    assert card["model_version"] == MARKER_VERSION
    assert card["parameters"] == json.loads(json.dumps(MowingParams().as_dict()))
    assert card["features"] == {
        "bands": list(BAND_FEATURES),
        "indices": list(INDEX_FEATURES),
        "ndvi": list(NDVI_FEATURES),
    }
    for metrics in card["metrics"].values():
        lo, hi = metrics["f1_ci95"]
        assert lo <= metrics["f1"] <= hi


def test_the_crop_model_card_gives_every_figure_an_interval() -> None:
    from pathlib import Path

    card = json.loads(
        (Path(__file__).resolve().parents[2] / "models" / "crop_group" / "model.json").read_text()
    )
    # Written by pipelines/train_crop_demo.py from its cross-validation grouped by farm.
    metrics = card["metrics"]
    for name in ("accuracy", "macro_f1", "ece_15_bins", "coverage_at_threshold", "precision_at_threshold"):
        lo, hi = metrics[f"{name}_ci95"]
        assert lo <= metrics[name] <= hi and hi - lo > 0, name
