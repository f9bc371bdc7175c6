"""Migration 0004: photos' Idempotency-Key, uploader and perceptual hash move to indexed columns;
the same image may be stored twice (a failed duplicate check), a key only once per uploader."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from s3tr.review.database import db_url_for, downgrade, make_engine, upgrade
from s3tr.review.users import create_user


def _insert_photo(engine: Engine, case_id: int, sha: str, device: str, **columns: object) -> None:
    names = ["case_id", "sha256", "received_at", "device", "checks", "storage_path", *columns]
    values = {
        "case_id": case_id,
        "sha256": sha,
        "received_at": datetime(2025, 6, 1, tzinfo=UTC),
        "device": device,
        "checks": "{}",
        "storage_path": f"photos/{sha}.jpg",
        **columns,
    }
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO photos ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"),
            values,
        )


def test_keys_move_to_columns_and_same_image_may_be_stored_twice(base_workdir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(base_workdir, work)
    url = db_url_for(work)
    downgrade(url, "0003")
    engine = make_engine(url)
    try:
        uid = create_user(engine, "migr-farmer", role="farmer", pacage="086705789")
        with engine.connect() as conn:
            case_id = conn.execute(text("SELECT min(case_id) FROM cases")).scalar_one()
        a, b, c = "a" * 64, "b" * 64, "c" * 64
        first = f'{{"idempotency_key": "k-0001", "uploaded_by": {uid}, "phash": "ff00"}}'
        _insert_photo(engine, case_id, a, first)
        # an older row that reused a key: the first keeps it, the second gets none
        _insert_photo(engine, case_id, b, f'{{"idempotency_key": "k-0001", "uploaded_by": {uid}}}')
        _insert_photo(engine, case_id, c, '{"size_bytes": 10}')

        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sha256, idempotency_key, uploaded_by, phash FROM photos ORDER BY id")
            ).all()
        assert [tuple(r) for r in rows] == [
            (a, "k-0001", uid, "ff00"),
            (b, None, uid, None),
            (c, None, None, None),
        ]
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("photos")}
        assert indexes["ix_photos_uploaded_by_idempotency_key"]["unique"]
        assert not indexes["ix_photos_sha256"]["unique"]

        _insert_photo(engine, case_id, a, "{}", idempotency_key="k-0002", uploaded_by=uid)  # same image again
        with pytest.raises(IntegrityError):
            _insert_photo(engine, case_id, "d" * 64, "{}", idempotency_key="k-0002", uploaded_by=uid)

        # down again: the unique SHA-256 cannot come back while an image is stored twice
        with pytest.raises(Exception, match=r"(?i)unique"):
            downgrade(url, "0003")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM photos WHERE idempotency_key = 'k-0002'"))
        downgrade(url, "0003")
        assert "idempotency_key" not in {col["name"] for col in inspect(engine).get_columns("photos")}
    finally:
        engine.dispose()
