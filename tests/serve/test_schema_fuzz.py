"""schemathesis against our own OpenAPI on the live service: no generated request gets a 5xx,
and every answer matches the documented schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.service import API_KEY

CHECKS = [not_a_server_error, response_schema_conformance]


def test_no_generated_request_gets_a_5xx(service_url):
    # Driven through hypothesis directly: schemathesis' pytest plugin does not load under this
    # pytest ('Function' object has no attribute '_nodeid').
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(base_url=service_url, headers={"X-API-Key": API_KEY},
                                 timeout=120)
            case.validate_response(response, checks=CHECKS)

        check()


def test_a_post_whose_every_item_fails_matches_its_documented_422(service_url):
    """Found by the generated requests: a 422 listing the failed items was documented as the
    error format only."""
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operation = schema["/v1/items"]["POST"]
    case = operation.Case(body={"items": [{"id": "not-a-picture", "image": "aGVsbG8="}]},
                          media_type="application/json")
    response = case.call(base_url=service_url, headers={"X-API-Key": API_KEY}, timeout=120)
    assert response.status_code == 422 and response.json()["failed"][0]["id"] == "not-a-picture"
    case.validate_response(response, checks=CHECKS)
