"""Property-based run of schemathesis against the app's own OpenAPI document (in-process ASGI).

Every generated request, valid or not, must get a documented answer: no 5xx, status codes,
content types, headers and bodies conforming to the schema (problem documents included).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa_checks

from s3tr.api import ApiSettings, create_app
from s3tr.review.database import db_url_for, make_engine
from tests.api.support import MovableClock, make_users


@pytest.fixture(scope="module")
def st_tokens(base_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("schemathesis") / "work"
    shutil.copytree(base_workdir, work)
    url = db_url_for(work)
    engine = make_engine(url)
    tokens, _ = make_users(engine)
    engine.dispose()
    app = create_app(
        db_url=url, workdir=work, settings=ApiSettings(clock=MovableClock(), max_upload_bytes=1_000_000)
    )
    with TestClient(app):  # runs the lifespan: the engine lives on app.state for schemathesis' own client
        yield {"app": app, "tokens": tokens}


@pytest.fixture(scope="module")
def api_schema(st_tokens: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", st_tokens["app"])


def _operations() -> list[str]:
    return [
        "GET /api/v1/me",
        "GET /api/v1/me/parcels",
        "GET /api/v1/me/parcels/{id_parcel}",
        "GET /api/v1/me/photo-requests",
        "GET /api/v1/me/photo-requests/{request_id}",
        "POST /api/v1/me/photo-requests/{request_id}/photos",
        "POST /api/v1/me/parcels/{id_parcel}/corrections",
        "GET /api/v1/cases",
        "GET /api/v1/cases/{case_id}",
        "GET /api/v1/cases/{case_id}/photos/{photo_id}/content",
        "GET /api/v1/cases/{case_id}/chips",
        "GET /api/v1/cases/{case_id}/chips/{name}",
        "GET /api/v1/console/communes",
        "GET /api/v1/console/instructors",
        "POST /api/v1/cases/{case_id}/photo-requests",
        "POST /api/v1/cases/{case_id}/decision",
        "POST /api/v1/cases/{case_id}/reopen",
        "POST /api/v1/cases/{case_id}/assignment",
        "POST /api/v1/cases/{case_id}/field-visits",
        "GET /api/v1/me/notifications",
        "POST /api/v1/me/notifications/{notification_id}/read",
        "GET /api/v1/me/notification-preferences",
        "PUT /api/v1/me/notification-preferences",
    ]


def test_every_operation_is_listed(api_schema: Any) -> None:
    found = {op.ok().label for op in api_schema.get_all_operations()}
    assert found == set(_operations())


@pytest.mark.parametrize("label", _operations())
@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
def test_api_conforms_to_its_openapi(
    label: str, mode: GenerationMode, api_schema: Any, st_tokens: dict[str, Any]
) -> None:
    operation = api_schema.find_operation_by_label(label)
    who = "instr_86" if operation.path.startswith(("/api/v1/cases", "/api/v1/console")) else "farmer_a"
    headers = {"Authorization": f"Bearer {st_tokens['tokens'][who]}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            headers=headers,
            # valid-looking ids of other people's data are 404 by design, not a rejection of valid input
            excluded_checks=[oa_checks.positive_data_acceptance],
        )

    run()


def test_openapi_describes_every_field_parameter_and_error() -> None:
    from s3tr.api import create_app

    doc = create_app(db_url="sqlite:///unused.db").openapi()  # no engine before startup
    missing = [
        f"{name}.{prop}"
        for name, schema in doc["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description") and "$ref" not in spec and "allOf" not in spec
    ]
    assert missing == []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("description") or op.get("summary"), (method, path)
            assert all(p.get("description") for p in op.get("parameters", [])), (method, path)
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in resp["content"], (method, path, status)
            assert "401" in op["responses"] and "422" in op["responses"], (method, path)
