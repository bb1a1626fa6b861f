"""Schemathesis against the whole admin API (``/api/v1/openapi.json``) of a real gateway, with
the admin token: no input may produce a 500, every answer must conform to the schema (status
code documented, body matching its declared model, content type, auth enforced), and invalid
input must be refused. Not checked: that every schema-valid body is accepted
(``positive_data_acceptance``): some rules (a budget's soft limit below its hard limit, names
without spaces) are checked by the handlers, not expressed in the schema.

Each operation gets its own Hypothesis run (``operation.as_strategy()``); failures of every
operation are collected and reported together. (``schemathesis.pytest.from_fixture`` does not
work with pytest 9, hence the explicit loop.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("fuzz")) as running:
        # Some traffic, so that list and detail endpoints have data to return.
        for key in ("alice", "dave", "solo"):
            assert running.chat(key, "Summarise: the cache is warm.").status_code == 200
        running.flush()
        yield running


def _examples(count: int) -> settings:
    # Derandomized and without the example database: the same cases every run, so a failure
    # is reproducible and the run time is stable.
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        print_blob=False,
    )


def _fuzz(gw: AdminGateway, examples: int) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_url(gw.api + "/openapi.json")
    # Spelled as the OpenAPI document's bearer scheme names it: schemathesis's auth check drops
    # the credential by that exact name to see the operation refuse a request without one.
    headers = {"Authorization": f"Bearer {gw.token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @_examples(examples)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=gw.url, headers=headers, excluded_checks=[positive_data_acceptance]
            )

        try:
            run()
        except Exception as error:
            failures.append(f"{operation.label}: {error}")
    return operations, failures


def test_no_500_and_responses_conform(gw: AdminGateway) -> None:
    operations, failures = _fuzz(gw, 10)
    assert operations >= 7
    assert not failures, "\n\n".join(failures)


@pytest.mark.skipif(
    not os.environ.get("SPENDGATE_SLOW_TESTS"), reason="slow: set SPENDGATE_SLOW_TESTS=1"
)
def test_no_500_and_responses_conform_thoroughly(gw: AdminGateway) -> None:
    _operations, failures = _fuzz(gw, 200)
    assert not failures, "\n\n".join(failures)


def test_schema_covers_every_group(gw: AdminGateway) -> None:
    document = gw.get("/openapi.json", token=None).json()
    paths = set(document["paths"])
    for expected in (
        "/api/v1/models/status",
        "/api/v1/models",
        "/api/v1/models/test-connection",
        "/api/v1/models/discover",
        "/api/v1/explain",
        "/api/v1/decisions",
        "/api/v1/decisions/{decision_id}",
    ):
        assert expected in paths
    for group in ("budgets", "pricing", "keys", "usage"):
        assert any(path.startswith(f"/api/v1/{group}") for path in paths), group
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            ok = responses.get("200") or responses.get("201") or {}
            # Every success is typed (a response model), except bodiless answers.
            assert ok.get("content") or "204" in responses, (method, path)
            assert "401" in responses, (method, path)
