"""The instructors' queue of a large department, filtered by commune (prints figures, never asserts).

    python benchmarks/review_queue.py [--cases 100000] [--communes 300] [--repeat 20] [--sqlite]
                                      [--no-analyze]

Fills a fresh database (PostgreSQL at 127.0.0.1:5432 unless ``--sqlite``; dropped afterwards) with one
department's declarations (``--cases`` parcels spread over ``--communes`` communes, a tenth of them with a
second version) and one open case per parcel, then times through the real app (FastAPI test client, an
instructor's token) the first page of the queue (50 cases, with its total) without a filter and with
``commune=``, and, as the peer, what the console did before the commune was stored with the declaration:
read the whole queue by pages of 500 (capped at 5,000 cases) and filter it in the browser; then the first
page again with the queue's ``(department, priority)`` index dropped for a moment (as before migration
0006), and once it is back. Median of
``--repeat`` requests each. The tables' statistics are refreshed after the load as the syncs do
(:func:`s3tr.review.database.refresh_statistics`; ``--no-analyze`` shows the queue before autovacuum's pass).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = "postgres@127.0.0.1:5432"


def fill(url: str, n_cases: int, n_communes: int, *, analyze: bool = True) -> None:
    from sqlalchemy import insert

    from s3tr.review.database import make_engine, refresh_statistics
    from s3tr.review.migrate import upgrade
    from s3tr.review.models import Case, Declaration, table_of

    engine = make_engine(url)
    upgrade(engine)
    now = datetime(2025, 6, 20, tzinfo=UTC)
    decl, cases = [], []
    for i in range(n_cases):
        pid = f"086-{i:07d}"
        commune = f"86{(i * 7919) % n_communes:03d}"
        for version in (1, 2) if i % 10 == 0 else (1,):
            decl.append(
                {
                    "campaign": 2025,
                    "id_parcel": pid,
                    "version": version,
                    "code_cultu": "BTH",
                    "code_group": 1,
                    "surf_parc": 1.0 + i % 50,
                    "pacage": f"086{i % 9000:06d}",
                    "department": "86",
                    "commune": commune,
                    "source": "declaration",
                    "created_at": now,
                }
            )
        cases.append(
            {
                "campaign": 2025,
                "id_parcel": pid,
                "control": "crop_group",
                "department": "86",
                "state": "open",
                "flag": "orange",
                "reasons": ["crop_model_unsure"],
                "priority": float((i * 104729) % 100000) / 100,
                "deadline": date(2025, 7, 20),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        for rows, model in ((decl, Declaration), (cases, Case)):
            for k in range(0, len(rows), 20_000):
                conn.execute(insert(table_of(model)), rows[k : k + 20_000])
    if analyze:
        # What the syncs do after a large write; without it (--no-analyze) the planner takes the
        # department's 100,000 cases for a hundred until autovacuum's next pass.
        refresh_statistics(engine, ["declarations", "cases"], rows_written=len(decl) + len(cases))
    engine.dispose()


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--communes", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--no-analyze", action="store_true", help="skip the statistics refresh after the load")
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from s3tr.api import create_app
    from s3tr.review.database import make_engine
    from s3tr.review.users import create_user, issue_token

    tmp = Path(tempfile.mkdtemp(prefix="s3tr-queue-"))
    name = f"s3tr_queue_{uuid.uuid4().hex[:10]}"
    if args.sqlite:
        url = f"sqlite:///{tmp / 's3tr.db'}"
    else:
        import psycopg

        with psycopg.connect(f"postgresql://{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://{PG}/{name}"
    try:
        t0 = time.perf_counter()
        fill(url, args.cases, args.communes, analyze=not args.no_analyze)
        took = time.perf_counter() - t0
        print(
            f"   {url.split(':')[0]}: {args.cases} cases, {args.communes} communes (filled in {took:.0f} s)"
        )
        engine = make_engine(url)
        token = issue_token(engine, create_user(engine, "instr", role="instructor", department="86"))
        h = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(db_url=url)) as client:

            def page(**params: object) -> dict:
                r = client.get("/api/v1/cases", params={"limit": 50, **params}, headers=h)
                r.raise_for_status()
                return r.json()

            def whole_then_filter() -> int:
                items = []
                for offset in range(0, 5000, 500):
                    body = page(limit=500, offset=offset)
                    items += body["items"]
                    if len(items) >= body["total"]:
                        break
                return sum(1 for i in items if i["commune"] == "86001")

            n = page(commune="86001")["total"]
            first = timed(lambda: page(), args.repeat)
            filtered = timed(lambda: page(commune="86001"), args.repeat)
            old = timed(whole_then_filter, max(3, args.repeat // 5))
            print(f"   first page, no filter:            {first:7.1f} ms")
            print(f"   first page, commune=86001 ({n} cases): {filtered:7.1f} ms ({filtered / first:.2f}x)")
            print(
                f"   peer: whole queue by pages of 500 (capped at 5,000), filtered by the client: "
                f"{old:7.1f} ms ({old / filtered:.1f}x the filtered page; it sees {whole_then_filter()} of "
                f"the {n} cases)"
            )
            # The queue's index (migration 0006), dropped for a moment: the first page as it was before.
            index = "ix_cases_department_priority"
            with engine.begin() as conn:
                conn.execute(text(f"DROP INDEX {index}"))
            unindexed = timed(lambda: page(), args.repeat)
            with engine.begin() as conn:
                conn.execute(text(f"CREATE INDEX {index} ON cases (department, priority)"))
            again = timed(lambda: page(), args.repeat)
            print(
                f"   peer: first page without the (department, priority) index: {unindexed:7.1f} ms "
                f"({unindexed / again:.1f}x the page with it, {again:.1f} ms once restored)"
            )
        engine.dispose()
    finally:
        if not args.sqlite:
            import psycopg

            with psycopg.connect(f"postgresql://{PG}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    os.environ.setdefault("S3TR_LOG_LEVEL", "WARNING")
    main()
