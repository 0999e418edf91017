"""Schemathesis over the OpenAPI schema: generated requests never make the server fail.

Every operation of the schema but the upload (which would write case folders) gets
requests generated from its schema by hypothesis (15 each, kept small for the suite's
time); the check: no 5xx answer, and every refusal is a one-line JSON ``{"error": ...}``.
The operations are driven from one test (schemathesis's strategies, not its pytest
plugin, which follows pytest's internals). Skipped when schemathesis is not installed.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from ioplan.web import create_app  # noqa: E402


def test_generated_requests(cases_dir, tmp_path):
    app = create_app(cases_dir, cache_dir=tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    tried = []
    for op in operations:
        if op.method.upper() == "POST" and op.path == "/api/cases":
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert list(body) == ["error"] and "\n" not in body["error"], body

        check()
        tried.append(f"{op.method.upper()} {op.path}")
    assert len(tried) >= 15, tried  # every route of the API but the upload
