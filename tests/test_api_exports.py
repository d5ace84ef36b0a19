"""The exports (ours): the statistics and the history as CSV or NDJSON files, streamed.

Row by row they hold the numbers of the JSON interfaces, read from the same Redis into which
the engine counted the events; they refuse what those refuse, with the same answers; and when
the API fails midway, the transfer is cut short (a real process closes the connection without
the body's end), for which the client and ``isales-stats export`` leave no file. The run of a
million rows that holds the API's memory flat is tests/test_api_export_at_scale.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import random
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from isales_stats.api.errors import ErrorCode
from isales_stats.api.exports import file_name, negotiated_format
from isales_stats.api.routes.statistics_export import COLUMNS as STATISTICS_COLUMNS
from isales_stats.client import (
    CONTENT_TYPE,
    HISTORY_EXPORT_PATH,
    HISTORY_PATH,
    STATISTICS_EXPORT_PATH,
    STATISTICS_PATH,
    IncompleteExport,
    StatisticsClient,
)
from isales_stats.core.days import oldest_retained_day, today_in
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve
from tests.support.clock import GMT8, now_ms
from tests.support.counting import count_events
from tests.support.credentials import (
    ACCESS_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TEST_KEYS,
)
from tests.support.events import ADDED, CALL, call_event
from tests.support.processes import cli_command, run_cli
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 4
# More campaigns than one part of a statistics export reads (engine/exports.py: 50).
MANY_CAMPAIGNS = [f"C{n:02d}" for n in range(55)]
HISTORY_CAMPAIGNS = ["H1", "H2", "H3"]
# Days kept in these tests: room for a range longer than the history's 31 days.
RETENTION_DAYS = 60
FORMATS = ("csv", "ndjson")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(update={"daily_retention_days": RETENTION_DAYS})


def statistics_export_path(vdn_id: int | str = VDN) -> str:
    return STATISTICS_EXPORT_PATH.format(vdn_id=vdn_id)


def history_export_path(vdn_id: int | str = VDN) -> str:
    return HISTORY_EXPORT_PATH.format(vdn_id=vdn_id)


async def count_many_campaigns(settings: Settings) -> None:
    """Today's records and calls of 55 campaigns, each with two batches and records without."""
    moment = now_ms()
    for campaign in MANY_CAMPAIGNS:
        events = campaign_events(VDN, campaign, ["B1", "B2", None], 2, moment_ms=moment)
        await count_events(settings, events)


def calls_over_days(today: date, days_back: int, seed: int = 11) -> list[dict[str, Any]]:
    """Records of three campaigns called over the last ``days_back`` days in GMT+08:00, some
    calls failing, some of those abandoned (00701), each event published twice."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for record in range(120):
        campaign = rng.choice(HISTORY_CAMPAIGNS)
        day = today - timedelta(days=rng.randrange(days_back))
        moment = datetime(day.year, day.month, day.day, rng.randrange(0, 20), tzinfo=GMT8)
        at = int(moment.timestamp() * 1000)
        common = {
            "vdnId": VDN,
            "campaignId": campaign,
            "dataId": f"d{record}",
            "batchId": rng.choice(["B1", "B2", None]),
        }
        events.append(call_event(ADDED, **common, occurredAt=at))
        for attempt in range(rng.randrange(1, 4)):
            failed = rng.random() < 0.5
            events.append(
                call_event(
                    CALL,
                    **common,
                    callId=f"r{record}a{attempt}",
                    callStatus=5 if failed else 6,
                    final=not failed or attempt == 2,
                    failCode=rng.choice(["00701", "120", None]) if failed else None,
                    occurredAt=at + attempt * 1_800_000 + rng.randrange(1_800_000),
                )
            )
    return events + events


def ndjson_rows(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().splitlines()]


def csv_rows(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV export (RFC 4180: CRLF line ends)."""
    text = body.decode()
    assert text.endswith("\r\n")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def as_csv(row: dict[str, Any]) -> dict[str, str]:
    """A JSON row as a CSV reader gives it back: text, null as empty."""
    return {name: "" if value is None else str(value) for name, value in row.items()}


async def export_rows(
    client: httpx.AsyncClient, path: str, params: dict[str, str], export_format: str
) -> list[dict[str, Any]] | list[dict[str, str]]:
    """An export's rows, checked for its format's media type, file name and shape."""
    response = await client.get(path, params={**params, "format": export_format})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith(f'.{export_format}"')
    if export_format == "ndjson":
        assert response.headers["content-type"] == "application/x-ndjson"
        return ndjson_rows(response.content) if response.content else []
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    header, rows = csv_rows(response.content)
    assert header[:2] == ["campaignId", "batchId"]
    return rows


def statistics_rows(count_detail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statistics' countDetail as export rows: each campaign, then its batches."""
    rows = []
    for entry in count_detail:
        counters = {name: value for name, value in entry.items() if name not in ("batchDetail",)}
        campaign_id = counters.pop("campaignId")
        rows.append({"campaignId": campaign_id, "batchId": None, **counters})
        for batch in entry["batchDetail"]:
            rows.append({"campaignId": campaign_id, **batch})
    return rows


@pytest.mark.parametrize("export_format", FORMATS)
async def test_the_statistics_export_holds_the_statistics_row_by_row(
    settings: Settings, export_format: str
) -> None:
    await count_many_campaigns(settings)
    queries: list[dict[str, str]] = [
        {},  # the whole VDN: two parts of campaigns
        {"campaignId": "C07"},
        {"campaignId": "C07", "batchId": "B2"},
        {"campaignId": "nope"},
    ]
    async with serve(settings) as client:
        for query in queries:
            answer = await client.get(STATISTICS_PATH.format(vdn_id=VDN), params=query)
            expected = statistics_rows(answer.json()["countDetail"])
            rows = await export_rows(client, statistics_export_path(), query, export_format)
            if export_format == "csv":
                assert rows == [as_csv(row) for row in expected], query
            else:
                assert rows == expected, query
                # The JSON interface's names, in its order.
                assert all(list(row) == list(STATISTICS_COLUMNS) for row in rows)


async def history_points(
    client: httpx.AsyncClient, query: dict[str, str], days: list[date]
) -> list[dict[str, Any]]:
    """The history's points of ``days``, asked for 31 days at a time (its longest range)."""
    points: list[dict[str, Any]] = []
    for start in range(0, len(days), 31):
        span = days[start : start + 31]
        response = await client.get(
            HISTORY_PATH.format(vdn_id=VDN),
            params={**query, "startDate": str(span[0]), "endDate": str(span[-1])},
        )
        assert response.status_code == 200, response.text
        points += response.json()["data"]["points"]
    return points


@pytest.mark.parametrize("interval", ["day", "hour"])
async def test_the_history_export_holds_the_history_row_by_row(
    settings: Settings, interval: str
) -> None:
    today = today_in(settings.time_zone_of(VDN))
    await count_events(settings, calls_over_days(today, days_back=45))
    first = today - timedelta(days=44)
    days = [first + timedelta(days=n) for n in range(45)]
    dates = {"startDate": str(first), "endDate": str(today), "interval": interval}
    async with serve(settings) as client:
        expected: list[dict[str, Any]] = []
        for campaign in HISTORY_CAMPAIGNS:
            scope = {"campaignId": campaign, "batchId": None}
            points = await history_points(
                client, {"campaignId": campaign, "interval": interval}, days
            )
            expected += [{**scope, **point} for point in points]
        batch_query = {"campaignId": "H2", "batchId": "B1", "interval": interval}
        batch_expected = [
            {"campaignId": "H2", "batchId": "B1", **point}
            for point in await history_points(client, batch_query, days)
        ]
        for export_format in FORMATS:
            whole_vdn = await export_rows(client, history_export_path(), dates, export_format)
            one_batch = await export_rows(
                client,
                history_export_path(),
                {**dates, "campaignId": "H2", "batchId": "B1"},
                export_format,
            )
            if export_format == "csv":
                assert whole_vdn == [as_csv(row) for row in expected]
                assert one_batch == [as_csv(row) for row in batch_expected]
            else:
                assert whole_vdn == expected
                assert one_batch == batch_expected
    hours = 24 if interval == "hour" else 1
    assert len(expected) == len(HISTORY_CAMPAIGNS) * len(days) * hours
    assert sum(row["dailyCalledCount"] for row in expected) > 100  # something was counted
    if interval == "hour":
        assert sum(row["abandonedCalls"] for row in expected) > 0


async def test_accept_chooses_the_format_when_the_query_does_not(settings: Settings) -> None:
    await count_many_campaigns(settings)
    async with serve(settings) as client:
        ndjson = await client.get(
            statistics_export_path(), headers={"Accept": "text/csv;q=0.5, application/x-ndjson"}
        )
        csv_by_default = await client.get(
            statistics_export_path(), headers={"Accept": "application/json"}
        )
        query_wins = await client.get(
            statistics_export_path(),
            params={"format": "csv"},
            headers={"Accept": "application/x-ndjson"},
        )
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert len(ndjson_rows(ndjson.content)) == len(MANY_CAMPAIGNS) * 3
    assert csv_by_default.headers["content-type"].startswith("text/csv")
    assert query_wins.headers["content-type"].startswith("text/csv")
    assert csv_by_default.content == query_wins.content


def test_the_format_is_negotiated_and_the_file_named_safely() -> None:
    assert negotiated_format(None, []) == "csv"
    assert negotiated_format("ndjson", ["text/csv"]) == "ndjson"
    assert negotiated_format(None, ["application/ndjson"]) == "ndjson"
    assert negotiated_format(None, ["text/csv;q=0.9, application/x-ndjson;q=0.8"]) == "csv"
    assert negotiated_format(None, ["application/x-ndjson;q=0", "*/*"]) == "csv"
    assert negotiated_format(None, ["text/html", "application/x-ndjson;q=bad"]) == "csv"
    assert file_name(["history", 1, 'a/"b\\c', None, "day"], "csv") == "history-1-a__b_c-day.csv"


def bad_requests(today: date) -> list[tuple[str, str, ErrorCode, str]]:
    oldest = oldest_retained_day(GMT8, RETENTION_DAYS)
    return [
        ("statistics", "format=xlsx", ErrorCode.WRONG_VALUE, "format must be csv or ndjson"),
        ("history", "format=json", ErrorCode.WRONG_VALUE, "format must be csv or ndjson"),
        (
            "statistics",
            "startDate=2026-01-01",
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'startDate'; the parameters are campaignId, batchId and "
            "format",
        ),
        (
            "history",
            "minutes=5",
            ErrorCode.PARAMETER_ERROR,
            "the parameters are campaignId, batchId, startDate, endDate, interval and format",
        ),
        ("history", "interval=week", ErrorCode.WRONG_VALUE, "interval must be day or hour"),
        ("statistics", "batchId=B1", ErrorCode.WRONG_COMBINATION, "batchId is given without"),
        ("history", "batchId=B1", ErrorCode.WRONG_COMBINATION, "batchId is given without"),
        ("history", f"startDate={today}", ErrorCode.WRONG_COMBINATION, "without endDate"),
        ("history", "startDate=x&endDate=y", ErrorCode.CONVERSION_ERROR, "must be a date"),
        (
            "history",
            f"startDate={today}&endDate={today - timedelta(days=1)}",
            ErrorCode.WRONG_VALUE,
            "is after endDate",
        ),
        (
            "history",
            f"startDate={oldest - timedelta(days=1)}&endDate={today}",
            ErrorCode.WRONG_VALUE,
            f"is before the oldest day kept, {oldest}",
        ),
        (
            "history",
            f"startDate={today}&endDate={today + timedelta(days=1)}",
            ErrorCode.WRONG_VALUE,
            "is after today",
        ),
        ("statistics", "format=csv&format=csv", ErrorCode.TOO_MANY_PARAMETERS, "given 2 times"),
        ("history", "campaignId=a%7Bb", ErrorCode.INVALID_CHARACTERS, "control characters"),
        ("statistics", "campaignId=" + "c" * 65, ErrorCode.TOO_LONG, "at most 64"),
    ]


async def test_bad_requests_get_the_isales_codes_of_the_json_interfaces(
    settings: Settings,
) -> None:
    today = today_in(GMT8)
    paths = {"statistics": statistics_export_path(), "history": history_export_path()}
    async with serve(settings) as client:
        for which, query, code, words in bad_requests(today):
            response = await client.get(f"{paths[which]}?{query}")
            assert response.status_code == 400, (which, query)
            body = response.json()
            assert body["resultCode"] == body["returnCode"] == code.value, (which, query, body)
            assert words in body["resultDesc"], (which, query, body)
        # Where a JSON interface runs the same check, the answers are the same, word for word.
        oldest = oldest_retained_day(GMT8, RETENTION_DAYS)
        too_old = f"startDate={oldest - timedelta(days=1)}&endDate={oldest + timedelta(days=2)}"
        pairs = [
            (f"{HISTORY_PATH}?campaignId=H1&{too_old}", f"{HISTORY_EXPORT_PATH}?{too_old}"),
            (
                f"{HISTORY_PATH}?campaignId=H1&interval=week",
                f"{HISTORY_EXPORT_PATH}?interval=week",
            ),
            (f"{STATISTICS_PATH}?batchId=B1", f"{STATISTICS_EXPORT_PATH}?batchId=B1"),
            (f"{STATISTICS_PATH}?campaignId=a%7Bb", f"{STATISTICS_EXPORT_PATH}?campaignId=a%7Bb"),
            ("/rest/isales/v2/openapi/campaigns/abc/statistics", statistics_export_path("abc")),
            ("/rest/isales/v2/openapi/campaigns/0/statistics", history_export_path(0)),
        ]
        for json_path, export_path in pairs:
            json_answer = await client.get(json_path.format(vdn_id=VDN))
            export_answer = await client.get(export_path.format(vdn_id=VDN))
            assert json_answer.status_code == export_answer.status_code == 400
            assert export_answer.json() == json_answer.json()
        without_content_type = [
            await client.get(path, headers={"Content-Type": ""})
            for path in (STATISTICS_PATH.format(vdn_id=VDN), statistics_export_path())
        ]
        assert without_content_type[0].json() == without_content_type[1].json()
        # Longer than the history's 31 days, within the retention: answered.
        longer = await client.get(
            history_export_path(), params={"startDate": str(oldest), "endDate": str(today)}
        )
    assert longer.status_code == 200


@pytest.fixture
def guarded_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS), "rate_limit_requests": 2}
    )


async def test_signed_scoped_and_flow_controlled_on_budgets_of_their_own(
    guarded_settings: Settings,
) -> None:
    statistics = STATISTICS_PATH.format(vdn_id=VDN)
    async with serve(guarded_settings) as unsigned:
        answers = [await unsigned.get(path) for path in (statistics, statistics_export_path())]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers["WWW-Authenticate"] == "auth-v2"
    async with serve(
        guarded_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET
    ) as tenant:
        # VDN 4 is not tenant A's: the answer of a bad signature, as the JSON interfaces give.
        outside = [
            await tenant.get(path)
            for path in (statistics, statistics_export_path(), history_export_path())
        ]
        inside = await tenant.get(history_export_path(100))
    assert [answer.status_code for answer in outside] == [401, 401, 401]
    assert outside[0].json() == outside[1].json() == outside[2].json()
    assert inside.status_code == 200
    async with serve(guarded_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        exports = [(await client.get(statistics_export_path())).status_code for _ in range(3)]
        spent = await client.get(statistics_export_path())
        # The statistics and the history's export keep their own budgets for the VDN.
        others = [
            (await client.get(path)).status_code for path in (statistics, history_export_path())
        ]
    assert exports == [200, 200, 429]
    assert spent.json()["resultCode"] == ErrorCode.TOO_FREQUENT.value
    assert int(spent.headers["Retry-After"]) >= 1
    assert others == [200, 200]


def corrupt_rows(settings: Settings, campaign: str) -> None:
    """A campaign's stored totals that the engine cannot have written: reading them fails."""
    with Redis.from_url(settings.redis_url) as redis:
        redis.hset(KeyLayout(settings.key_prefix).campaign_rows(VDN, campaign), "", "x,y")


def metric_value(operations_url: str, line_start: str) -> float:
    text = httpx.get(f"{operations_url}/metrics").text
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(line_start)]
    return float(values[0]) if values else 0.0


def keep_reading(response: httpx.Response, into: list[bytes]) -> None:
    """Every chunk of ``response`` into ``into``, until its end or its failure."""
    into.extend(response.iter_bytes())


def test_a_failure_midway_cuts_the_transfer_short_and_leaves_no_file(
    settings: Settings, tmp_path: Path
) -> None:
    anyio.run(count_many_campaigns, settings)
    # In the second part of the campaigns: the first is sent by the time it is read.
    corrupt_rows(settings, MANY_CAMPAIGNS[53])
    target = tmp_path / "statistics.csv"
    with ApiProcess(settings, log_dir=tmp_path) as api:
        with (
            httpx.Client(base_url=api.url, headers={"Content-Type": CONTENT_TYPE}) as http,
            http.stream("GET", statistics_export_path()) as response,
        ):
            assert response.status_code == 200
            received: list[bytes] = []
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                keep_reading(response, received)
        with StatisticsClient(api.url) as client:
            with pytest.raises(IncompleteExport, match="cut short"):
                client.export(VDN, target)
            assert client.get(VDN).status_code == 500  # the JSON interface cannot read it either
        command = run_cli(
            settings, "export", "--vdn", str(VDN), "--url", api.url, "-o", str(target)
        )
        broken_off = metric_value(
            api.operations_url, 'isales_api_exports_broken_off_total{interface="statistics-export"}'
        )
        alive = httpx.get(f"{api.url}/healthz").status_code
        log = api.service.log_path.read_text()
    # What came before the failure is the first part's rows, whole.
    lines = b"".join(received).decode().splitlines()
    assert lines[0].startswith("campaignId,batchId,")
    assert {line.split(",")[0] for line in lines[1:]} == set(MANY_CAMPAIGNS[:50])
    assert command.returncode == 1
    assert "cut short" in command.stderr
    assert list(tmp_path.glob("statistics.csv*")) == []
    assert broken_off == 3
    assert "statistics-export: broken off after 150 rows" in log
    assert alive == 200


def test_a_failure_before_the_first_rows_gets_the_error_answer(
    settings: Settings, tmp_path: Path
) -> None:
    anyio.run(count_many_campaigns, settings)
    corrupt_rows(settings, MANY_CAMPAIGNS[0])
    with ApiProcess(settings, log_dir=tmp_path) as api:
        # A client each: uvicorn closes the connection after an unexpected error's 500.
        with StatisticsClient(api.url) as client:
            export = client.send(client.build_export_request(VDN))
        with StatisticsClient(api.url) as client:
            statistics = client.get(VDN)
    assert export.status_code == statistics.status_code == 500
    assert export.json() == statistics.json()


@pytest.fixture
def signed_api(guarded_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    anyio.run(count_many_campaigns, guarded_settings)
    with ApiProcess(
        guarded_settings.model_copy(update={"rate_limit_requests": 0}), log_dir=tmp_path
    ) as api:
        yield api


def client_environment() -> dict[str, str]:
    return {"ISALES_CLIENT_ACCESS_KEY": ACCESS_KEY, "ISALES_CLIENT_SECRET_KEY": SECRET_KEY}


def test_the_command_writes_the_api_file_quietly_when_not_on_a_terminal(
    signed_api: ApiProcess, tmp_path: Path
) -> None:
    target = tmp_path / "hours.ndjson"
    arguments = ["export", "--vdn", str(VDN), "--url", signed_api.url, "--history", "--hourly"]
    command = run_cli(
        signed_api.settings,
        *arguments,
        "--format",
        "ndjson",
        "-o",
        str(target),
        environment=client_environment(),
    )
    with StatisticsClient(signed_api.url, ACCESS_KEY, SECRET_KEY) as client:
        direct = client.send(
            client.build_export_request(VDN, history=True, interval="hour", export_format="ndjson")
        )
    assert command.returncode == 0, command.stderr
    assert command.stdout == command.stderr == ""  # quiet: no terminal
    assert target.read_bytes() == direct.content
    assert len(ndjson_rows(target.read_bytes())) == len(MANY_CAMPAIGNS) * 24
    folder = tmp_path / "folder"
    folder.mkdir()
    into_folder = run_cli(
        signed_api.settings,
        *arguments,
        "-o",
        str(folder),
        environment=client_environment(),
    )
    assert into_folder.returncode == 0, into_folder.stderr
    (named,) = folder.iterdir()
    assert named.name.startswith(f"history-{VDN}-hour-")
    assert named.suffix == ".csv"
    misuse = run_cli(signed_api.settings, "export", "--vdn", "1", "--hourly")
    assert misuse.returncode == 2
    assert "--hourly goes with --history" in misuse.stderr


def test_the_command_counts_rows_on_a_terminal_and_names_the_file_as_the_api_does(
    signed_api: ApiProcess, tmp_path: Path
) -> None:
    controller, terminal = pty.openpty()
    environment = {**os.environ, **signed_api.settings.as_environment(), **client_environment()}
    process = subprocess.Popen(
        cli_command("export", "--vdn", str(VDN), "--url", signed_api.url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        cwd=tmp_path,
        env=environment,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(controller, 4096)
        except OSError:  # the terminal's other end closed with the process
            break
        if not data:
            break
        shown += data
    os.close(controller)
    assert process.wait(timeout=60) == 0
    (exported,) = tmp_path.glob("statistics-4-*.csv")
    rows = len(MANY_CAMPAIGNS) * 3
    assert len(exported.read_bytes().splitlines()) == rows + 1
    text = shown.decode()
    assert "\r\x1b[2K" in text  # redrawn in place
    assert f"exported the statistics: {rows} rows" in text
    assert str(exported.name) in text
