"""Schemathesis against a real API process and real Redis: no 5xx, no answer outside the document.

The document is the app's own /openapi.json. Cases come from it in both modes: positive (values
the document allows) and negative (values it forbids, which must be refused with a 4xx). Every
request is signed like a real client's, so cases get past authentication and exercise the
parameter checks, flow control (a small budget, so 429s happen) and the reads; a few campaigns
are counted into VDN 1 so that 200s carry data.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from isales_stats.client import CONTENT_TYPE
from isales_stats.core.settings import Settings
from isales_stats.core.signing import decode_query, sign_request
from tests.support.api_process import ApiProcess
from tests.support.clock import now_ms
from tests.support.counting import count_events
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.streams import campaign_events

pytestmark = pytest.mark.stack

STATISTICS = "/rest/isales/v2/openapi/campaigns/{vdnId}/statistics"
FAIL_CATEGORY = "/rest/isales/v1/openapi/campaigns/{vdnId}/failcategorystatistics"
HISTORY = STATISTICS + "/history"
MINIMUM_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api(test_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    settings = test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            # Hypothesis returns to the same few vdnIds often: some of them run out of budget.
            "rate_limit_requests": 25,
            "access_log": False,
        }
    )

    async def fill() -> None:
        moment = now_ms()
        for campaign in ("1001", "1002", "C 3"):
            events = campaign_events(1, campaign, ["b1", "b2", None], 4, moment_ms=moment)
            await count_events(settings, events)

    anyio.run(fill)
    with ApiProcess(settings, log_dir=tmp_path) as process:
        yield process


def sign_as_sent(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Sign the request exactly as it goes on the wire (a ``requests`` auth hook)."""
    assert request.url is not None
    assert request.method is not None
    url = urlsplit(request.url)
    request.headers["Content-Type"] = CONTENT_TYPE
    # The generated GETs carry no body; anything else would be signed as its bytes.
    body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
    request.headers["Authorization"] = sign_request(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        method=request.method,
        path=unquote(url.path),  # what uvicorn decodes the path to
        query=decode_query(url.query.encode()),
        headers={"host": url.netloc, "content-type": CONTENT_TYPE},
        body=body,
        moment=datetime.now(UTC),
    )
    return request


def test_generated_requests_get_documented_answers(api: ApiProcess) -> None:
    # The document is served on the operations port; the requests go to the API's.
    schema = schemathesis.openapi.from_url(f"{api.operations_url}/openapi.json")
    reads = [schema[path]["GET"] for path in (STATISTICS, FAIL_CATEGORY, HISTORY)]
    cases = st.one_of(
        *(read.as_strategy(mode) for read in reads for mode in GenerationMode),
        schema["/readyz"]["GET"].as_strategy(),
    )
    statuses: collections.Counter[int] = collections.Counter()
    session = requests.Session()

    @settings(
        max_examples=MINIMUM_REQUESTS + 100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call_and_check(case: Case[Any]) -> None:
        checks = list(CHECKS)
        auth: Callable[[requests.PreparedRequest], requests.PreparedRequest] | None = sign_as_sent
        if case.meta is not None and case.meta.generation.mode is GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)
            if case.meta.is_negative_at(ParameterLocation.HEADER):
                # The one header is the signature: send what was generated (missing, garbage).
                auth = None
        response = case.call(base_url=api.url, session=session, auth=auth)
        case.validate_response(response, checks=checks)
        statuses[response.status_code] += 1

    try:
        call_and_check()
    finally:
        session.close()
    assert sum(statuses.values()) >= MINIMUM_REQUESTS, statuses
    # Every kind of answer was exercised, and none was a server error.
    assert {200, 400, 429} <= set(statuses), statuses
    assert not any(status >= 500 for status in statuses), statuses
