"""decide stage: marker evidence -> green/orange/red flags with reason codes (pure functions).

Rule sets (thresholds and windows per campaign and region) are versioned YAML files in
``rulesets/``; which controls apply to which declared crop is the code list
``data/crop_controls.csv``. Nothing here touches a database: :mod:`s3tr.review` stores the
decisions this stage returns.
"""

from __future__ import annotations

from s3tr.decide.controls import applicable_controls, controls_for, load_crop_controls
from s3tr.decide.decide import DECISION_COLUMNS, decide
from s3tr.decide.flags import CONTROLS, REASONS, Control, Flag, Reason, explain
from s3tr.decide.qa import qa_sample
from s3tr.decide.rules import RuleSet, available_rulesets, load_ruleset, load_ruleset_file

__all__ = [
    "CONTROLS",
    "DECISION_COLUMNS",
    "REASONS",
    "Control",
    "Flag",
    "Reason",
    "RuleSet",
    "applicable_controls",
    "available_rulesets",
    "controls_for",
    "decide",
    "explain",
    "load_crop_controls",
    "load_ruleset",
    "load_ruleset_file",
    "qa_sample",
]
