"""Case state machine: guarded transitions and optimistic locking, on both databases."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from s3tr.review import (
    TRANSITIONS,
    CaseConflictError,
    CaseNotFoundError,
    CaseState,
    CaseTransitionError,
    get_case,
    make_engine,
    session_scope,
    transition_case,
)
from s3tr.review.models import AuditLog, Case

NOW = datetime(2025, 6, 20, tzinfo=UTC)


def _new_case(engine, state: CaseState = CaseState.OPEN, id_parcel: str = "086-000001") -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        case = Case(
            campaign=2025,
            id_parcel=id_parcel,
            control="min_activity",
            department="86",
            pacage="086000001",
            surf_parc=3.0,
            state=state.value,
            flag="orange",
            reasons=["not_enough_observations"],
            priority=540.0,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(case)
        session.flush()
        return case.case_id


def test_transition_guards(engine) -> None:  # type: ignore[no-untyped-def]
    """Every (state, target) pair: allowed ones succeed, the others raise and change nothing."""
    for n, (start, target) in enumerate((a, b) for a in CaseState for b in CaseState):
        case_id = _new_case(engine, start, id_parcel=f"086-{n:06d}")
        outcome = "red" if target == CaseState.DECIDED else None
        if target in TRANSITIONS[start]:
            after = transition_case(
                engine, case_id, target, actor="inst", outcome=outcome, expected_version=1
            )
            assert (after["state"], after["version"]) == (target.value, 2)
        else:
            with pytest.raises(CaseTransitionError, match=f"cannot go from {start.value} to {target.value}"):
                transition_case(engine, case_id, target, actor="inst", outcome=outcome)
            assert get_case(engine, case_id)["state"] == start.value  # nothing changed


def test_transition_graph_shape() -> None:
    assert TRANSITIONS[CaseState.CANCELLED] == frozenset()
    assert TRANSITIONS[CaseState.DECIDED] == {CaseState.OPEN}
    # every state is reachable from open
    seen, todo = {CaseState.OPEN}, [CaseState.OPEN]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(CaseState)


def test_full_lifecycle_with_reopen_and_audit(engine) -> None:  # type: ignore[no-untyped-def]
    cid = _new_case(engine)
    for state in ("photo_requested", "photo_received"):
        transition_case(engine, cid, state, actor="inst")
    done = transition_case(engine, cid, "decided", actor="inst", outcome="green", note="photos OK")
    assert (done["outcome"], done["outcome_note"], done["version"]) == ("green", "photos OK", 4)
    assert done["closed_at"] is not None
    reopened = transition_case(engine, cid, "open", actor="chief", note="second look")
    assert (reopened["state"], reopened["outcome"], reopened["closed_at"]) == ("open", None, None)
    with engine.connect() as conn:
        trail = conn.execute(
            select(AuditLog.action, AuditLog.actor)
            .where(AuditLog.entity_id == str(cid))
            .order_by(AuditLog.id)
        ).all()
    assert [tuple(t) for t in trail] == [
        ("case_photo_requested", "inst"),
        ("case_photo_received", "inst"),
        ("case_decided", "inst"),
        ("case_open", "chief"),
    ]


def test_deciding_needs_an_outcome_and_only_deciding_takes_one(engine) -> None:  # type: ignore[no-untyped-def]
    cid = _new_case(engine)
    with pytest.raises(CaseTransitionError, match="outcome"):
        transition_case(engine, cid, "decided", actor="inst")
    with pytest.raises(CaseTransitionError, match="outcome"):
        transition_case(engine, cid, "decided", actor="inst", outcome="orange")
    with pytest.raises(CaseTransitionError, match="only given when deciding"):
        transition_case(engine, cid, "photo_requested", actor="inst", outcome="green")
    with pytest.raises(CaseNotFoundError):
        transition_case(engine, 999_999, "cancelled", actor="inst")


def test_stale_expected_version_is_a_conflict(engine) -> None:  # type: ignore[no-untyped-def]
    cid = _new_case(engine)
    seen = get_case(engine, cid)["version"]  # both instructors load version 1
    transition_case(engine, cid, "decided", actor="alice", outcome="green", expected_version=seen)
    with pytest.raises(CaseConflictError, match="reload"):
        transition_case(engine, cid, "decided", actor="bob", outcome="red", expected_version=seen)
    final = get_case(engine, cid)
    assert (final["outcome"], final["version"]) == ("green", 2)


def test_two_sessions_on_the_same_row_version_guard(engine) -> None:  # type: ignore[no-untyped-def]
    """The ORM's version column itself: a stale in-memory object cannot overwrite a newer row."""
    from sqlalchemy.orm.exc import StaleDataError

    cid = _new_case(engine)
    with session_scope(engine) as s1:
        stale = s1.get(Case, cid)  # loaded at version 1, transaction ends with the block
    transition_case(engine, cid, "photo_requested", actor="alice")
    with pytest.raises(StaleDataError), session_scope(engine, write=True) as s2:
        stale = s2.merge(stale, load=False)
        stale.state = "cancelled"
        s2.flush()
    assert get_case(engine, cid)["state"] == "photo_requested"


def _decide_in_process(url: str, case_id: int, outcome: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    barrier.wait()
    try:
        transition_case(
            engine, case_id, "decided", actor=f"inst-{outcome}", outcome=outcome, expected_version=1
        )
        results.put(("won", outcome))
    except CaseConflictError:
        results.put(("conflict", outcome))
    except Exception as exc:  # report anything else to the parent, which fails the test
        results.put(("error", repr(exc)))
    finally:
        engine.dispose()


def test_two_processes_deciding_the_same_case_one_wins(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    cid = _new_case(engine)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_decide_in_process, args=(db_url, cid, o, barrier, results))
        for o in ("green", "red")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = sorted(results.get(timeout=5) for _ in procs)
    assert [g[0] for g in got] == ["conflict", "won"], got
    winner = next(o for status, o in got if status == "won")
    final = get_case(engine, cid)
    assert (final["state"], final["outcome"], final["version"]) == ("decided", winner, 2)
    with engine.connect() as conn:
        decided = (
            conn.execute(select(AuditLog.actor).where(AuditLog.action == "case_decided")).scalars().all()
        )
    assert decided == [f"inst-{winner}"]
