"""A read interface's description drives its parser and its OpenAPI entry (no Redis needed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import APIRouter, FastAPI

from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.api.interfaces import ReadInterface
from isales_stats.api.parameters import BATCH, MANDATORY_CAMPAIGN, WholeNumber, Word
from isales_stats.api.routes import read_interface_routers

JSON = ["application/json"]


@dataclass(frozen=True)
class SampleQuery:
    vdn_id: int
    campaign_id: str
    batch_id: str | None
    colour: str
    count: int


SAMPLE = ReadInterface(
    path="/sample/{vdn_id}/things",
    summary="A sample interface",
    budget="sample",
    parameters=(
        MANDATORY_CAMPAIGN,
        BATCH,
        Word("colour", "colour", 8, "A colour.", choices=("red", "blue"), default="red"),
        WholeNumber("count", "count", 4, "How many.", minimum=1, maximum=10, default=3),
    ),
    query=SampleQuery,
    errors=((ErrorCode.WRONG_VALUE, "colour must be red or blue, got 'green'"),),
    answer="Things.",
)


def parse(query: list[tuple[str, str]], vdn: str = "7", content_types: list[str] = JSON) -> object:
    return SAMPLE.parse(vdn, query, content_types)


def test_the_parser_fills_the_query_from_the_parameters() -> None:
    assert parse([("campaignId", "C1")]) == SampleQuery(7, "C1", None, "red", 3)
    assert parse([("campaignId", "C1"), ("batchId", "b"), ("colour", "blue"), ("count", "10")]) == (
        SampleQuery(7, "C1", "b", "blue", 10)
    )


@pytest.mark.parametrize(
    ("query", "vdn", "content_types", "code", "words"),
    [
        ([("shape", "x"), ("campaignId", "")], "x", JSON, ErrorCode.WRONG_TYPE, "vdnId"),
        (
            [("shape", "x")],
            "7",
            JSON,
            ErrorCode.PARAMETER_ERROR,
            "the parameters are campaignId, batchId, colour and count",
        ),
        ([("count", "1"), ("count", "2")], "7", JSON, ErrorCode.TOO_MANY_PARAMETERS, "count"),
        ([("count", "12345")], "7", JSON, ErrorCode.TOO_LONG, "count may be at most 4"),
        ([("count", "x")], "7", JSON, ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
        (
            [("campaignId", "C"), ("colour", "green")],
            "7",
            JSON,
            ErrorCode.WRONG_VALUE,
            "colour must be red or blue, got 'green'",
        ),
        (
            [("campaignId", "C"), ("colour", "green"), ("count", "x")],
            "7",
            JSON,
            ErrorCode.WRONG_VALUE,
            "colour",  # the parameters' own rules run in their order
        ),
        ([("campaignId", "C"), ("count", "x")], "7", JSON, ErrorCode.WRONG_TYPE, "integer"),
        ([("campaignId", "C"), ("count", "11")], "7", JSON, ErrorCode.WRONG_VALUE, "1 to 10"),
        ([("campaignId", "C"), ("count", "11")], "7", [], ErrorCode.WRONG_VALUE, "1 to 10"),
        ([("campaignId", "C")], "7", [], ErrorCode.PARAMETER_ERROR, "Content-Type"),
    ],
)
def test_the_checks_run_in_the_documented_order(
    query: list[tuple[str, str]],
    vdn: str,
    content_types: list[str],
    code: ErrorCode,
    words: str,
) -> None:
    with pytest.raises(ParameterError) as refused:
        parse(query, vdn, content_types)
    assert refused.value.code is code
    assert words in refused.value.description


def test_the_openapi_entry_follows_the_description() -> None:
    router = APIRouter()

    @SAMPLE.route(router)
    async def things() -> None:
        """Things."""

    app = FastAPI()
    app.include_router(router)
    operation = app.openapi()["paths"]["/sample/{vdnId}/things"]["get"]
    assert operation["summary"] == "A sample interface"
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert list(parameters) == ["vdnId", "campaignId", "batchId", "colour", "count"]
    assert parameters["campaignId"]["required"] is True
    assert parameters["colour"]["schema"] == {"type": "string", "enum": ["red", "blue", ""]}
    assert parameters["count"]["schema"]["maximum"] == 10
    examples = operation["responses"]["400"]["content"]["application/json"]["examples"]
    assert [example["value"]["resultDesc"] for example in examples.values()] == [
        "colour must be red or blue, got 'green'"
    ]
    assert set(operation["responses"]) == {"200", "400", "401", "429", "503"}


def test_every_read_interface_module_is_served() -> None:
    paths = [route.path for router in read_interface_routers() for route in router.routes]  # type: ignore[attr-defined]
    assert [path.split("}", 1)[1] for path in paths] == [
        "/failcategorystatistics",
        "/statistics",
        "/statistics/abandonrate",
        "/statistics/export",
        "/statistics/history",
        "/statistics/history/export",
        "/statistics/pacing",
        "/statistics/progress",
        "/statistics/stream",
    ]
