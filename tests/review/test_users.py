"""Users and hashed API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from s3tr.review.models import ApiToken
from s3tr.review.users import (
    InvalidTokenError,
    create_user,
    hash_token,
    issue_token,
    revoke_token,
    verify_token,
)


def test_token_lifecycle_and_only_hash_stored(engine) -> None:  # type: ignore[no-untyped-def]
    uid = create_user(engine, "farmer-1", role="farmer", pacage="086000123")
    token = issue_token(engine, uid, label="phone", ttl_days=30)
    with engine.connect() as conn:
        stored = conn.execute(select(ApiToken.token_hash)).scalars().all()
    assert stored == [hash_token(token)] and token not in stored
    user = verify_token(engine, token)
    assert (user.user_id, user.role, user.pacage) == (uid, "farmer", "086000123")
    with pytest.raises(InvalidTokenError):
        verify_token(engine, token, now=datetime.now(UTC) + timedelta(days=31))
    with pytest.raises(InvalidTokenError):
        verify_token(engine, token + "x")
    assert revoke_token(engine, token) and not revoke_token(engine, token)
    with pytest.raises(InvalidTokenError):
        verify_token(engine, token)


def test_user_validation(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="PACAGE"):
        create_user(engine, "f", role="farmer", pacage="12")
    with pytest.raises(ValueError, match="department"):
        create_user(engine, "i", role="instructor")
    with pytest.raises(ValueError, match="unknown role"):
        create_user(engine, "x", role="king")
