"""Every 400 of the statistics endpoint: its iSales code, its message, and which check wins."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_stats.api.errors import ErrorCode
from isales_stats.api.parameters import is_valid_identifier
from isales_stats.api.schemas import ErrorEnvelope
from isales_stats.core.events import InvalidEvent, event_from_json
from isales_stats.core.settings import Settings
from tests.support.app_client import JSON_HEADERS, serve, statistics_path

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

BAD_REQUESTS = [
    # (vdnId as written in the path, raw query string, expected code, words of resultDesc)
    ("abc", "", ErrorCode.WRONG_TYPE, "vdnId must be an integer"),
    ("1.5", "", ErrorCode.WRONG_TYPE, "integer"),
    ("%201", "", ErrorCode.WRONG_TYPE, "integer"),
    ("+1", "", ErrorCode.WRONG_TYPE, "integer"),
    ("1_0", "", ErrorCode.WRONG_TYPE, "integer"),
    ("%D9%A1", "", ErrorCode.WRONG_TYPE, "integer"),  # ARABIC-INDIC DIGIT ONE: int() takes it
    ("", "", ErrorCode.WRONG_TYPE, "integer"),
    ("1%2F2", "", ErrorCode.WRONG_TYPE, "integer"),
    ("1%0A", "", ErrorCode.WRONG_TYPE, "integer"),  # found by schemathesis: once a 404
    ("%0A%0D", "", ErrorCode.WRONG_TYPE, "integer"),
    ("0", "", ErrorCode.WRONG_VALUE, "vdnId must be from 1 to 9999"),
    ("10000", "", ErrorCode.WRONG_VALUE, "1 to 9999"),
    ("-1", "", ErrorCode.WRONG_VALUE, "1 to 9999"),
    ("9" * 5000, "", ErrorCode.WRONG_VALUE, "1 to 9999"),  # int() refuses > 4300 digits
    ("1", "batchId=b1", ErrorCode.WRONG_COMBINATION, "batchId is given without campaignId"),
    ("1", "campaignId=&batchId=b1", ErrorCode.WRONG_COMBINATION, "without campaignId"),
    ("1", "campaignId=a&campaignId=b", ErrorCode.TOO_MANY_PARAMETERS, "campaignId is given 2"),
    ("1", "campaignId=&campaignId=", ErrorCode.TOO_MANY_PARAMETERS, "at most once"),
    ("1", "campaignId=a&batchId=1&batchId=2", ErrorCode.TOO_MANY_PARAMETERS, "batchId is given"),
    ("1", "campaignId=a%7Bb", ErrorCode.INVALID_CHARACTERS, "campaignId may not hold control"),
    ("1", "campaignId=a}", ErrorCode.INVALID_CHARACTERS, "'{' or '}'"),
    ("1", "campaignId=a%00", ErrorCode.INVALID_CHARACTERS, "control characters"),
    ("1", "campaignId=a%0Ab", ErrorCode.INVALID_CHARACTERS, "control characters"),
    ("1", "campaignId=a%7F", ErrorCode.INVALID_CHARACTERS, "control characters"),  # DEL
    ("1", "campaignId=a%C2%85", ErrorCode.INVALID_CHARACTERS, "control characters"),  # C1: NEL
    ("1", "campaignId=%FF", ErrorCode.INVALID_CHARACTERS, "not UTF-8"),
    ("1", "campaignId=c&batchId=a%ED%B3%BF", ErrorCode.INVALID_CHARACTERS, "not UTF-8"),
    ("1", "campaignId=c&batchId=%7B", ErrorCode.INVALID_CHARACTERS, "batchId may not hold"),
    ("1", "campaignId=" + "c" * 65, ErrorCode.TOO_LONG, "campaignId may be at most 64"),
    ("1", "campaignId=c&batchId=" + "b" * 201, ErrorCode.TOO_LONG, "batchId may be at most 200"),
    ("1", "foo=1", ErrorCode.PARAMETER_ERROR, "unknown query parameter 'foo'"),
    ("1", "campaignid=1", ErrorCode.PARAMETER_ERROR, "unknown query parameter 'campaignid'"),
    ("1", "campaignId=c&vdnId=1", ErrorCode.PARAMETER_ERROR, "unknown query parameter 'vdnId'"),
]

# Several faults at once: the first check in the documented order answers.
PRECEDENCE = [
    ("abc", "foo=1&batchId=b", ErrorCode.WRONG_TYPE),
    ("0", "foo=1", ErrorCode.WRONG_VALUE),
    ("1", "foo=1&campaignId=a&campaignId=b", ErrorCode.PARAMETER_ERROR),
    ("1", "batchId=1&batchId=2", ErrorCode.TOO_MANY_PARAMETERS),
    ("1", "batchId=%7B", ErrorCode.INVALID_CHARACTERS),
    ("1", "batchId=" + "b" * 201, ErrorCode.TOO_LONG),
]

ACCEPTED_CONTENT_TYPES = [
    "application/json; charset=UTF-8",
    "application/json",
    "application/json;charset=utf-8",
    "APPLICATION/JSON; CHARSET=UTF-8",
    'application/json; charset="utf-8"',
    "  application/json ;  charset=UTF-8 ",
]
REFUSED_CONTENT_TYPES = [
    "text/plain",
    "application/json; charset=ISO-8859-1",
    "application/json; boundary=x",
    "application/jsonx",
    "application/x-www-form-urlencoded",
    "",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def assert_envelope(response: httpx.Response, code: ErrorCode) -> str:
    """The body is the iSales envelope with ``code``; returns resultDesc."""
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    ErrorEnvelope.model_validate(body)
    assert body == {
        "resultCode": code.value,
        "resultDesc": body["resultDesc"],
        "returnCode": code.value,
        "returnDesc": body["resultDesc"],
    }
    description: str = body["resultDesc"]
    return description


@pytest.mark.parametrize(("vdn", "query", "code", "words"), BAD_REQUESTS)
async def test_bad_parameters_get_their_isales_code(
    test_settings: Settings, vdn: str, query: str, code: ErrorCode, words: str
) -> None:
    async with serve(test_settings) as client:
        response = await client.get(f"{statistics_path(vdn)}?{query}")
    assert words in assert_envelope(response, code)


@pytest.mark.parametrize(("vdn", "query", "code"), PRECEDENCE)
async def test_the_first_failing_check_answers(
    test_settings: Settings, vdn: str, query: str, code: ErrorCode
) -> None:
    async with serve(test_settings) as client:
        response = await client.get(f"{statistics_path(vdn)}?{query}")
    assert_envelope(response, code)


async def test_limits_are_inclusive(test_settings: Settings) -> None:
    longest = f"campaignId={'c' * 64}&batchId={'b' * 200}"
    async with serve(test_settings) as client:
        for path in (statistics_path(1), statistics_path(9999), statistics_path("0001")):
            assert (await client.get(f"{path}?{longest}")).status_code == 200, path


async def test_ids_the_event_contract_allows_are_accepted(test_settings: Settings) -> None:
    # A zero-width space, an emoji, a space, a percent sign: none is a control character.
    query = "campaignId=%E2%80%8B%F0%9F%93%9E%20100%25&batchId=%E2%80%8B"
    async with serve(test_settings) as client:
        response = await client.get(f"{statistics_path(1)}?{query}")
    assert response.status_code == 200, response.text


async def test_a_missing_content_type_is_named(test_settings: Settings) -> None:
    async with serve(test_settings) as client:
        response = await client.get(statistics_path(1), headers={"Content-Type": ""})
        del client.headers["Content-Type"]
        missing = await client.get(statistics_path(1))
    assert "Content-Type" in assert_envelope(missing, ErrorCode.PARAMETER_ERROR)
    assert "missing" in assert_envelope(missing, ErrorCode.PARAMETER_ERROR)
    assert "Content-Type" in assert_envelope(response, ErrorCode.PARAMETER_ERROR)


@pytest.mark.parametrize("content_type", REFUSED_CONTENT_TYPES)
async def test_content_type_must_be_json_utf8(test_settings: Settings, content_type: str) -> None:
    async with serve(test_settings) as client:
        response = await client.get(statistics_path(1), headers={"Content-Type": content_type})
    description = assert_envelope(response, ErrorCode.PARAMETER_ERROR)
    assert "Content-Type header must be application/json; charset=UTF-8" in description


@pytest.mark.parametrize("content_type", ACCEPTED_CONTENT_TYPES)
async def test_json_content_types_are_accepted(test_settings: Settings, content_type: str) -> None:
    async with serve(test_settings) as client:
        response = await client.get(statistics_path(1), headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


async def test_two_content_type_headers_are_refused(test_settings: Settings) -> None:
    headers = [("Content-Type", JSON_HEADERS["Content-Type"]), ("Content-Type", "text/plain")]
    async with serve(test_settings) as client:
        request = client.build_request("GET", statistics_path(1))
        request.headers = httpx.Headers(headers)
        response = await client.send(request)
    assert_envelope(response, ErrorCode.PARAMETER_ERROR)


@given(st.text(max_size=8))
def test_the_id_rule_is_the_event_contracts_rule(value: str) -> None:
    """The API refuses exactly the campaignIds and batchIds that the event contract refuses."""
    event = {"eventType": "data.added", "vdnId": 1, "dataId": "d", "occurredAt": 0}
    try:
        event_from_json({**event, "campaignId": value or "c", "batchId": value})
    except InvalidEvent:
        accepted = False
    else:
        accepted = True
    assert is_valid_identifier(value) == accepted
