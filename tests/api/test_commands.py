"""The accounts commands: tokens printed alone and once, usable on the API, revocable."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from s3tr.api import create_app
from s3tr.api.commands import accounts_app
from s3tr.review.database import db_url_for, make_engine
from s3tr.review.models import ApiToken, User
from s3tr.review.users import hash_token

runner = CliRunner()


def test_add_use_and_revoke_accounts(tmp_path: Path) -> None:
    work = tmp_path / "work"
    farmer = runner.invoke(accounts_app, ["add-farmer", "--pacage", "086123456", "--workdir", str(work)])
    assert farmer.exit_code == 0, farmer.output
    token = farmer.stdout.strip()
    assert farmer.stdout == token + "\n" and token.startswith("s3tr_")  # the token alone on stdout
    instr = runner.invoke(accounts_app, ["add-instructor", "--department", "86", "--db", db_url_for(work)])
    assert instr.exit_code == 0, instr.output
    itoken = instr.stdout.strip()
    assert itoken != token

    engine = make_engine(db_url_for(work))
    with engine.connect() as conn:
        hashes = set(conn.execute(select(ApiToken.token_hash)).scalars())
        users = {(r.role, r.pacage, r.department) for r in conn.execute(select(User))}
    assert hash_token(token) in hashes and token not in hashes  # stored hashed only
    assert ("farmer", "086123456", None) in users and ("instructor", None, "86") in users

    app = create_app(db_url=db_url_for(work), workdir=work)
    with TestClient(app) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["pacage"] == "086123456"
        assert client.get("/api/v1/me/parcels", headers={"Authorization": f"Bearer {token}"}).json() == []

        revoked = runner.invoke(accounts_app, ["revoke", "--token", token, "--workdir", str(work)])
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert (
            runner.invoke(accounts_app, ["revoke", "--token", token, "--workdir", str(work)]).exit_code == 1
        )

        uid = client.get("/api/v1/me", headers={"Authorization": f"Bearer {itoken}"}).json()["user_id"]
        by_user = runner.invoke(accounts_app, ["revoke", "--user", str(uid), "--workdir", str(work)])
        assert by_user.exit_code == 0, by_user.output
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {itoken}"}).status_code == 401
    engine.dispose()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    work = str(tmp_path / "w")
    assert runner.invoke(accounts_app, ["add-farmer", "--pacage", "12345", "--workdir", work]).exit_code == 2
    assert (
        runner.invoke(accounts_app, ["add-instructor", "--department", "x", "--workdir", work]).exit_code == 2
    )
    assert runner.invoke(accounts_app, ["revoke", "--workdir", work]).exit_code == 2


def test_serve_runs_a_real_server(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    work = tmp_path / "work"
    token = runner.invoke(
        accounts_app, ["add-farmer", "--pacage", "086123456", "--workdir", str(work)]
    ).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "from s3tr.api.commands import serve; "
        f"serve({str(work)!r}, None, '127.0.0.1', {port}, log_level='warning')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        # one process per core by default: each imports the stack (slow on a loaded machine)
        deadline = time.monotonic() + 120
        while True:
            try:
                resp = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert resp.status_code == 200 and resp.json()["pacage"] == "086123456"
        anon = httpx.get(f"http://127.0.0.1:{port}/api/v1/me")
        assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Bearer")
        assert anon.headers["content-type"].startswith("application/problem+json")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
