"""Schemathesis over the OpenAPI schema: generated requests never make the server fail.

Every route of the schema but the upload (which would write case folders) gets requests
generated from its schema (a few dozen each, kept small for the suite's time); the check:
no 5xx answer, and every refusal is a one-line JSON ``{"error": ...}``. Skipped when
schemathesis is not installed.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from ioplan.web import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(cases_dir, tmp_path_factory):
    app = create_app(cases_dir, cache_dir=tmp_path_factory.mktemp("schema-cache"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(method="POST", path="/api/cases").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert list(body) == ["error"] and "\n" not in body["error"], body
