"""Nightly sync of decisions into the review database: idempotent, minimal, with history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import select

from s3tr.decide import decide, load_ruleset
from s3tr.review import CASE_COLUMNS, list_cases, sync_decisions, transition_case
from s3tr.review.cases import count_rows
from s3tr.review.models import AuditLog, Case, Decision

RS = load_ruleset(2025)
CLASSES = [1, 2, 3, 4, 11, 18, 19]
NOW = datetime(2025, 6, 20, 2, 0, tzinfo=UTC)


def _counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {t: count_rows(engine, t) for t in ("decisions", "cases", "audit_log")}


def _rows(engine, model, **where):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        stmt = select(model.__table__).filter_by(**where)
        return [dict(r._mapping) for r in conn.execute(stmt)]


def test_first_sync_stores_everything_and_second_changes_nothing(engine, factories) -> None:  # type: ignore[no-untyped-def]
    _, _, decisions = factories.decisions(120)
    n_orange = int((decisions["flag"] == "orange").sum())
    assert 0 < n_orange < len(decisions)

    first = sync_decisions(engine, decisions, run_id="night-1", now=NOW)
    assert (first.decisions_new, first.decisions_changed, first.decisions_unchanged) == (len(decisions), 0, 0)
    assert first.cases_opened == n_orange
    after_first = _counts(engine)
    assert after_first["decisions"] == len(decisions)
    assert after_first["cases"] == n_orange

    second = sync_decisions(engine, decisions, run_id="night-2", now=NOW)
    assert second.as_dict() == {
        "decisions_new": 0,
        "decisions_changed": 0,
        "decisions_unchanged": len(decisions),
        "cases_opened": 0,
        "cases_updated": 0,
        "cases_cancelled": 0,
    }
    assert _counts(engine) == after_first  # not even an audit row

    cases = list_cases(engine)
    assert list(cases.columns[: len(CASE_COLUMNS)]) == CASE_COLUMNS
    assert cases["case_id"].is_monotonic_increasing
    assert set(cases["state"]) == {"open"} and set(cases["flag"]) == {"orange"}
    assert not cases.duplicated(["campaign", "id_parcel", "control"]).any()


def test_one_parcel_changes_only_its_decision_and_case(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels = factories.parcels(80)
    evidence = factories.evidence(parcels)
    before = decide(parcels, evidence, RS, model_classes=CLASSES)
    sync_decisions(engine, before, run_id="night-1", now=NOW)

    # a grassland parcel whose activity was orange (thin evidence): the new images show a mowing
    target = before[(before["control"] == "min_activity") & (before["flag"] == "orange")].iloc[0]["id_parcel"]
    case_before = list_cases(engine).set_index(["id_parcel", "control"]).loc[(target, "min_activity")]
    evidence2 = evidence.copy()
    sel = evidence2["parcel_id"] == target
    evidence2.loc[sel, ["n_valid", "activity", "mowing_dates", "mowing_confidence"]] = [
        20,
        True,
        "2025-06-15",
        0.9,
    ]
    after = decide(parcels, evidence2, RS, model_classes=CLASSES)
    changed_rows = (after["flag"] != before["flag"]) | (after["evidence"] != before["evidence"])
    assert set(after.loc[changed_rows, "id_parcel"]) == {target}
    n_changed = int(changed_rows.sum())

    counts = _counts(engine)
    summary = sync_decisions(engine, after, run_id="night-2", now=NOW)
    assert summary.decisions_changed == n_changed
    assert summary.decisions_new == 0
    assert summary.decisions_unchanged == len(after) - n_changed
    assert (summary.cases_opened, summary.cases_cancelled) == (0, 1)

    # history: two revisions of the changed key, one current, the old one kept as it was
    history = sorted(
        _rows(engine, Decision, id_parcel=target, control="min_activity"), key=lambda r: r["revision"]
    )
    assert [(r["revision"], r["is_current"], r["flag"]) for r in history] == [
        (1, False, "orange"),
        (2, True, "green"),
    ]
    assert history[1]["evidence"]["mowing_dates"] == ["2025-06-15"]
    assert history[1]["run_id"] == "night-2"
    assert _counts(engine)["decisions"] == counts["decisions"] + n_changed

    # its case was not worked yet: the satellite settled it, so it is cancelled
    case = _rows(engine, Case, case_id=int(case_before["case_id"]))[0]
    assert (case["state"], case["flag"], case["version"]) == ("cancelled", "green", 2)
    others = list_cases(engine)
    others = others[others["case_id"] != case_before["case_id"]]
    assert set(others["state"]) == {"open"}

    # and the audit trail says so, for that parcel only
    audit = _rows(engine, AuditLog, run_id="night-2")
    assert {a["id_parcel"] for a in audit} == {target}
    assert {a["action"] for a in audit} == {"decision_changed", "case_cancelled"}

    # the next night with the same evidence changes nothing
    again = sync_decisions(engine, after, run_id="night-3", now=NOW)
    assert again.decisions_unchanged == len(after) and again.cases_cancelled == again.cases_opened == 0


def _single(factories, code: str, **ev):  # type: ignore[no-untyped-def]
    parcels = factories.parcels(1)
    parcels["code_cultu"], parcels["code_group"], parcels["surf_parc"] = (
        code,
        {"PPH": 18, "BTH": 1}[code],
        4.0,
    )
    evidence = factories.evidence(parcels)
    for k, v in ev.items():
        evidence[k] = v
    return decide(parcels, evidence, RS, model_classes=CLASSES)


def _ma(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["control"] == "min_activity"].reset_index(drop=True)


def test_worked_case_is_updated_not_cancelled(engine, factories) -> None:  # type: ignore[no-untyped-def]
    thin = _ma(
        _single(factories, "PPH", n_valid=3, activity=False, mowing_dates="", mowing_confidence=float("nan"))
    )
    assert thin.loc[0, "flag"] == "orange"
    sync_decisions(engine, thin, run_id="n1", now=NOW)
    case_id = int(list_cases(engine).loc[0, "case_id"])
    transition_case(engine, case_id, "photo_requested", actor="instructor-1", expected_version=1)

    mowed = _ma(
        _single(factories, "PPH", n_valid=20, activity=True, mowing_dates="2025-06-15", mowing_confidence=0.9)
    )
    summary = sync_decisions(engine, mowed, run_id="n2", now=NOW)
    assert (summary.cases_updated, summary.cases_cancelled) == (1, 0)
    case = list_cases(engine).iloc[0]
    assert (case["state"], case["flag"], case["version"]) == ("photo_requested", "green", 3)


def test_orange_with_new_reasons_updates_the_active_case(engine, factories) -> None:  # type: ignore[no-untyped-def]
    thin = _ma(_single(factories, "PPH", n_valid=3, activity=False))
    sync_decisions(engine, thin, run_id="n1", now=NOW)
    doubtful = _ma(
        _single(factories, "PPH", n_valid=20, activity=True, activity_confidence=0.3, mowing_dates="")
    )
    assert doubtful.loc[0, "reasons"] == ["activity_uncertain"]
    summary = sync_decisions(engine, doubtful, run_id="n2", now=NOW)
    assert (summary.decisions_changed, summary.cases_opened, summary.cases_updated) == (1, 0, 1)
    cases = list_cases(engine)
    assert len(cases) == 1 and cases.loc[0, "reasons"] == ["activity_uncertain"]


def test_decided_case_is_not_reopened_but_new_evidence_opens_a_new_case(engine, factories) -> None:  # type: ignore[no-untyped-def]
    thin = _ma(_single(factories, "PPH", n_valid=3, activity=False))
    sync_decisions(engine, thin, run_id="n1", now=NOW)
    case_id = int(list_cases(engine).loc[0, "case_id"])
    transition_case(engine, case_id, "decided", actor="instructor-1", outcome="green", note="field visit")
    assert sync_decisions(engine, thin, run_id="n2", now=NOW).cases_opened == 0
    assert list(list_cases(engine)["state"]) == ["decided"]

    doubtful = _ma(
        _single(factories, "PPH", n_valid=20, activity=True, activity_confidence=0.3, mowing_dates="")
    )
    summary = sync_decisions(engine, doubtful, run_id="n3", now=NOW)
    assert summary.cases_opened == 1
    cases = list_cases(engine)
    assert list(cases["state"]) == ["decided", "open"]
    assert cases.loc[0, "outcome"] == "green"  # the instructor's verdict is kept


def test_priority_is_area_times_aid_rate_and_deadline_from_ruleset(engine, factories) -> None:  # type: ignore[no-untyped-def]
    thin = _single(factories, "PPH", n_valid=3, activity=False)
    sync_decisions(engine, thin, run_id="n1", now=NOW)
    cases = list_cases(engine).set_index("control")
    for control, row in cases.iterrows():
        assert row["priority"] == round(4.0 * RS.aid_rate(control), 2)
        assert row["deadline"] == date(2025, 6, 20) + pd.Timedelta(days=RS.review.case_deadline_days)
    assert list(list_cases(engine, state="open")["case_id"]) == list(cases["case_id"].sort_values())
    assert list_cases(engine, state="decided").empty


def test_decisions_of_two_campaigns_do_not_mix(engine, factories) -> None:  # type: ignore[no-untyped-def]
    _, _, d25 = factories.decisions(20)
    d23 = d25.copy()
    d23["campaign"] = 2023
    summary = sync_decisions(engine, pd.concat([d25, d23]), run_id="n1", now=NOW)
    assert summary.decisions_new == 2 * len(d25)
    cases = list_cases(engine)
    assert set(cases["campaign"]) == {2023, 2025}
    assert len(list_cases(engine, campaign=2023)) == len(list_cases(engine, campaign=2025))


def test_empty_batch_changes_nothing(engine, factories) -> None:  # type: ignore[no-untyped-def]
    _, _, decisions = factories.decisions(5)
    summary = sync_decisions(engine, decisions.iloc[:0], run_id="empty", now=NOW)
    assert summary.as_dict() == dict.fromkeys(summary.as_dict(), 0)
    assert _counts(engine) == {"decisions": 0, "cases": 0, "audit_log": 0}


def test_list_cases_errors_are_clear(db_url: str) -> None:
    import pytest

    from s3tr.errors import ConfigError, DatabaseError
    from s3tr.review import make_engine

    engine = make_engine(db_url)
    try:
        with pytest.raises(DatabaseError, match="s3tr db upgrade"):
            list_cases(engine)  # never migrated
        with pytest.raises(ConfigError, match="unknown case state"):
            list_cases(engine, state="closed")
    finally:
        engine.dispose()
