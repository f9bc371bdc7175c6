"""Every flag, control and reason code is explained in French and in English."""

from __future__ import annotations

import re
import string

import pytest

from s3tr.decide.flags import CONTROLS, REASONS, Control, Flag, Reason, explain

PLACEHOLDER = re.compile(r"\{(\w+)\}")


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_french_and_english(reason: Reason) -> None:
    info = REASONS.get(reason)
    assert info is not None, f"reason {reason.value} has no explanation in REASONS"
    assert info.fr.strip() and info.en.strip()
    assert info.fr != info.en, f"{reason.value}: the French text is a copy of the English one"
    # both languages quote the same evidence, so neither hides a figure the other shows
    assert set(PLACEHOLDER.findall(info.fr)) == set(PLACEHOLDER.findall(info.en))
    # templates must be valid str.format templates
    list(string.Formatter().parse(info.fr))
    list(string.Formatter().parse(info.en))


def test_registry_has_no_stale_codes() -> None:
    assert set(REASONS) == set(Reason)


def test_every_flag_has_reasons_of_each_colour() -> None:
    colours = {info.flag for info in REASONS.values()}
    assert colours == set(Flag)


@pytest.mark.parametrize("control", list(Control))
def test_every_control_has_titles(control: Control) -> None:
    fr, en = CONTROLS[control]
    assert fr and en and fr != en


def test_explain_fills_evidence_and_marks_missing_values() -> None:
    text = explain(
        ["mowing_detected"], {"mowing_dates": ["2025-05-20", "2025-07-02"], "mowing_confidence": 0.8}
    )
    assert "2025-05-20, 2025-07-02" in text and "0.80" in text
    assert explain(["mowing_detected"], {}, lang="en").count("?") == 2
    with pytest.raises(ValueError, match=r"is not a valid"):
        explain(["not_a_reason"], {})
    with pytest.raises(ValueError, match="language"):
        explain(["too_small"], {}, lang="de")
