"""Benchmark of the statistics API: latency and throughput next to a bare Starlette baseline.

    python -m benchmarks.run api

One VDN holds 200 campaigns of 5 batches each, counted into the real Redis by EventCounter from
generated events. The API runs as ``isales-stats api`` (one uvicorn worker, its own process);
the baseline is a bare Starlette endpoint that returns a constant body of the same size, served
by uvicorn the same way. Latency is measured sequentially over one keep-alive connection with
http.client (the lightest Python client), p50/p99 of many requests; throughput with wrk from
Debian (installed with apt-get when missing) on the machine's other core.

Both servers run without authentication and without flow control, with the access log on (the
production default); one extra row measures the one-campaign query with a signature checked
and flow control counted, as production runs it.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isales_stats.api.runtime import tune_garbage_collector
from isales_stats.client import CONTENT_TYPE, STATISTICS_PATH, DistinctMoments, sign
from isales_stats.commands import cli_command
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.days import today_in
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.statistics import StatisticsReader
from tests.support.cleanup import delete_keys
from tests.support.counting import count_events
from tests.support.ports import free_port

VDN = 1
CAMPAIGNS = 200
BATCHES = 5
RECORDS_PER_BATCH = 10
ONE_CAMPAIGN = "C100"
WHOLE_VDN_TARGET_P99_MS = 20.0
ONE_CAMPAIGN_TARGET_P99_MS = 3.0
# Sequential requests per latency row: p99 is then the 10th (whole VDN) or 30th slowest.
WHOLE_VDN_REQUESTS = 1000
ONE_CAMPAIGN_REQUESTS = 3000
ACCESS_KEY, SECRET_KEY = "bench-ak", "bench-sk-0123456789abcdef"
# Where the baseline process finds the bodies it serves (it is started with this variable).
BASELINE_BODIES_ENV = "ISALES_BENCH_BASELINE_BODIES"
HEADERS = {"Content-Type": CONTENT_TYPE}


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    requests: int
    # Mean time Redis spent running each statistics script (INFO commandstats), where measured.
    redis_script_ms: float | None = None


def run() -> str:
    with api_bench_ground("api") as (settings, workdir):
        events = asyncio.run(_fill(settings))
        return _measure(settings, workdir, events)


@contextmanager
def api_bench_ground(name: str) -> Iterator[tuple[Settings, Path]]:
    """Settings for API servers measured bare (authentication and flow control off, no
    operations port: several run at once) under a key prefix of their own in the stack's Redis,
    and a work directory; the keys, the directory and a Redis started here go afterwards."""
    settings = Settings().model_copy(
        update={
            "key_prefix": f"bench:{name}:{uuid.uuid4().hex[:8]}",
            "auth_enabled": False,
            "rate_limit_requests": 0,
            "rate_limit_key_requests": 0,
            "operations_port": 0,
        }
    )
    redis_server = RedisServer(settings)
    started_redis = redis_server.ensure_running()
    workdir = Path(tempfile.mkdtemp(prefix=f"isales-bench-{name}-"))
    try:
        yield settings, workdir
    finally:
        delete_keys(settings.redis_url, settings.key_prefix)
        shutil.rmtree(workdir, ignore_errors=True)
        if started_redis:
            redis_server.stop()


def baseline_app() -> Starlette:
    """Bare Starlette: each path returns a constant body (the ``uvicorn --factory`` target)."""
    bodies_dir = Path(os.environ[BASELINE_BODIES_ENV])
    bodies = {path.stem: path.read_bytes() for path in bodies_dir.glob("*.json")}

    async def constant(request: Request) -> Response:
        return Response(bodies[request.path_params["name"]], media_type="application/json")

    return Starlette(routes=[Route("/{name}", constant)])


# --- data ------------------------------------------------------------------------------------


def _generated_events(now_ms: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for campaign in range(CAMPAIGNS):
        for batch in range(BATCHES):
            for record in range(RECORDS_PER_BATCH):
                common = {"vdnId": VDN, "campaignId": f"C{campaign:03d}", "batchId": f"B{batch}",
                          "dataId": f"d{batch}-{record}", "occurredAt": now_ms}  # fmt: skip
                events.append({"eventType": "data.added", **common})
                if record % 3:
                    connected = record % 3 == 1
                    call = {"callId": f"c{campaign}-{batch}-{record}", "final": connected,
                            "callStatus": 6 if connected else 5}  # fmt: skip
                    events.append({"eventType": "call.result", **common, **call})
    return events


async def _fill(settings: Settings) -> int:
    """Count the generated VDN into Redis as a worker would, 2,000 events a batch."""
    events = _generated_events(int(datetime.now(UTC).timestamp() * 1000))
    for start in range(0, len(events), 2000):
        await count_events(settings, events[start : start + 2000])
    return len(events)


# --- servers ---------------------------------------------------------------------------------


@contextmanager
def _server(command: list[str], environment: dict[str, str], port: int, log: Path) -> Iterator[str]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **environment}
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(
                    f"{base}/healthz" if "isales_stats.commands.cli" in command else base, timeout=1
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(15)


def api_server(settings: Settings, port: int, workdir: Path) -> Any:
    """``isales-stats api`` with ``settings`` on ``port``, its log in ``workdir``."""
    command = cli_command("api", "--port", str(port))
    return _server(command, settings.as_environment(), port, workdir / f"api-{port}.log")


def _baseline_server(port: int, workdir: Path) -> Any:
    command = [sys.executable, "-m", "uvicorn", "benchmarks.api:baseline_app", "--factory",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    environment = {BASELINE_BODIES_ENV: str(workdir)}
    return _server(command, environment, port, workdir / "baseline.log")


# --- load ------------------------------------------------------------------------------------


Headers = Callable[[str], dict[str, str]]


def _sequential_latency(base: str, path: str, requests: int, headers: Headers) -> Latency:
    """Latency of ``path`` on one server: sequential requests over one keep-alive connection."""
    (latency,) = interleaved_latency([(base, path, headers)], requests)
    return latency


RequestPath = str | Callable[[int], str]  # a path, or the path of the request numbered n


def interleaved_latency(
    targets: list[tuple[str, RequestPath, Headers]], requests: int
) -> list[Latency]:
    """Latency of each (server, path, headers), their requests taken in turn: every target sees
    the same moments of this shared machine, so their ratio is not the noise of separate runs.
    A path may change from request to request (a function of the request's number)."""
    connections = [
        (http.client.HTTPConnection(base.removeprefix("http://"), timeout=60), base, path, headers)
        for base, path, headers in targets
    ]
    samples: list[list[float]] = [[] for _ in targets]
    try:
        for index in range(requests + requests // 10):
            for place, (connection, base, path, headers) in enumerate(connections):
                # Signed before the clock starts: the client's signing is not the server's time.
                request_headers = headers(base.removeprefix("http://"))
                asked = path if isinstance(path, str) else path(index)
                began = time.perf_counter()
                connection.request("GET", asked, headers=request_headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - began
                if response.status != 200:
                    raise RuntimeError(f"{base}{path}: HTTP {response.status}")
                if index >= requests // 10:  # the first tenth warms up
                    samples[place].append(elapsed * 1000)
    finally:
        for connection, *_ in connections:
            connection.close()
    latencies = []
    for taken in samples:
        cuts = statistics.quantiles(taken, n=100, method="inclusive")
        latencies.append(Latency(p50_ms=cuts[49], p99_ms=cuts[98], requests=len(taken)))
    return latencies


def plain_headers(host_port: str) -> dict[str, str]:
    return dict(HEADERS)


def _signed_headers(path: str) -> Callable[[str], dict[str, str]]:
    # A stamp per request: the same request signed twice in a millisecond would be a replay.
    clock = DistinctMoments()

    def headers(host_port: str) -> dict[str, str]:
        request = httpx.Request("GET", f"http://{host_port}{path}", headers=HEADERS)
        sign(request, ACCESS_KEY, SECRET_KEY, clock())
        return {"Content-Type": CONTENT_TYPE, "Authorization": request.headers["Authorization"]}

    return headers


def _wrk() -> str:
    binary = shutil.which("wrk")
    if binary:
        return binary
    print("wrk is missing: installing Debian's package (apt-get)...", flush=True)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(command, capture_output=True, check=True)
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return binary


def _throughput(url: str, seconds: int = 10, connections: int = 16) -> float:
    header = f"Content-Type: {CONTENT_TYPE}"
    command = [_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "-H", header, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if match is None or non_2xx is not None:
        raise RuntimeError(f"wrk failed or saw errors:\n{output}")
    return float(match.group(1))


# --- report ----------------------------------------------------------------------------------


async def _read_side_latency(settings: Settings, requests: int) -> Latency:
    """The engine's read of the whole VDN alone, in this process: Redis and writing the body.

    With the API process's garbage-collector tuning, undone afterwards for the next benchmark.
    """
    redis = Redis.from_url(settings.redis_url)
    thresholds = gc.get_threshold()
    tune_garbage_collector()
    try:
        reader = StatisticsReader(redis, CountingContext.from_settings(settings))
        today = today_in(settings.time_zone_of(VDN))
        samples: list[float] = []
        for index in range(requests + requests // 10):
            if index == requests // 10:
                scripts_before = await _script_stats(redis)
            began = time.perf_counter()
            await reader.read_body(VDN, today)
            if index >= requests // 10:
                samples.append((time.perf_counter() - began) * 1000)
        scripts_after = await _script_stats(redis)
    finally:
        await redis.aclose()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    calls = scripts_after[0] - scripts_before[0]
    script_ms = (scripts_after[1] - scripts_before[1]) / calls / 1000
    return Latency(cuts[49], cuts[98], len(samples), redis_script_ms=script_ms)


async def _script_stats(redis: Redis) -> tuple[int, int]:
    """(calls, microseconds) of EVALSHA so far, from Redis' own accounting."""
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def _measure(settings: Settings, workdir: Path, events: int) -> str:
    whole_path = STATISTICS_PATH.format(vdn_id=VDN)
    one_path = f"{whole_path}?campaignId={ONE_CAMPAIGN}"
    api_port, signed_port, baseline_port = free_port(), free_port(), free_port()
    secured = settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(f"{ACCESS_KEY}:{SECRET_KEY} vdns=*"),
            # Counted, never refusing: the cost of the check, not of 429s.
            "rate_limit_requests": 10**9,
            "rate_limit_key_requests": 10**9,
        }
    )
    with api_server(settings, api_port, workdir) as api:
        whole_body = httpx.get(api + whole_path, headers=HEADERS).content
        one_body = httpx.get(api + one_path, headers=HEADERS).content
        (workdir / "whole.json").write_bytes(whole_body)
        (workdir / "one.json").write_bytes(one_body)
        whole = _sequential_latency(api, whole_path, WHOLE_VDN_REQUESTS, plain_headers)
        one = _sequential_latency(api, one_path, ONE_CAMPAIGN_REQUESTS, plain_headers)
        one_rps = _throughput(api + one_path)
        whole_rps = _throughput(api + whole_path)
        # Signed against unsigned, their requests in turn (the ratio the issue asks for).
        with api_server(secured, signed_port, workdir) as signed_api:
            unsigned_paired, one_secured = interleaved_latency(
                [
                    (api, one_path, plain_headers),
                    (signed_api, one_path, _signed_headers(one_path)),
                ],
                ONE_CAMPAIGN_REQUESTS,
            )
    read_side = asyncio.run(_read_side_latency(settings, WHOLE_VDN_REQUESTS))
    with _baseline_server(baseline_port, workdir) as baseline:
        whole_base = _sequential_latency(baseline, "/whole", WHOLE_VDN_REQUESTS, plain_headers)
        one_base = _sequential_latency(baseline, "/one", ONE_CAMPAIGN_REQUESTS, plain_headers)
        one_base_rps = _throughput(baseline + "/one")
        whole_base_rps = _throughput(baseline + "/whole")

    def verdict(p99: float, target: float) -> str:
        return f"**met** (≤ {target:g} ms)" if p99 <= target else f"**missed** (> {target:g} ms)"

    rows = [
        ("whole VDN (200 campaigns × 5 batches)", whole, whole_base, WHOLE_VDN_TARGET_P99_MS),
        (f"one campaign (`campaignId={ONE_CAMPAIGN}`)", one, one_base, ONE_CAMPAIGN_TARGET_P99_MS),
    ]
    lines = [
        "## Statistics API",
        "",
        f"One VDN of {CAMPAIGNS} campaigns × {BATCHES} batches ({events:,} events counted by "
        "EventCounter into the real Redis). The API is `isales-stats api`: one uvicorn worker, "
        "authentication and flow control off, JSON access log on. The baseline is a bare "
        "Starlette endpoint returning a constant body of the same size, served by uvicorn the "
        "same way. Latency: sequential requests over one keep-alive connection (http.client, "
        "the first tenth as warm-up). Throughput: `wrk -t1 -c16 -d10s`.",
        "",
        "| query | body | API p50 | API p99 | baseline p50 | baseline p99 | p99 target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (label, measured, base, target), body in zip(rows, (whole_body, one_body), strict=True):
        lines.append(
            f"| {label} | {len(body) / 1024:.1f} KiB | {measured.p50_ms:.2f} ms | "
            f"{measured.p99_ms:.2f} ms | {base.p50_ms:.2f} ms | {base.p99_ms:.2f} ms | "
            f"{verdict(measured.p99_ms, target)} |"
        )
    lines += [
        f"| one campaign, signed (auth-v2 checked; replay, VDN and key budgets in one Redis "
        f"script, in the read's round trip; its requests in turn with the unsigned ones) | "
        f"{len(one_body) / 1024:.1f} KiB | {one_secured.p50_ms:.2f} ms | "
        f"{one_secured.p99_ms:.2f} ms | {one_base.p50_ms:.2f} ms | {one_base.p99_ms:.2f} ms | "
        f"{verdict(one_secured.p99_ms, ONE_CAMPAIGN_TARGET_P99_MS)} |",
        f"| one campaign, unsigned, its requests in turn with the signed ones | "
        f"{len(one_body) / 1024:.1f} KiB | {unsigned_paired.p50_ms:.2f} ms | "
        f"{unsigned_paired.p99_ms:.2f} ms | | | |",
        f"| signed / unsigned in turn, one campaign (target ≤ 1.5 at p99) | | "
        f"{one_secured.p50_ms / unsigned_paired.p50_ms:.2f} (p50) | "
        f"{one_secured.p99_ms / unsigned_paired.p99_ms:.2f} (p99) | | | |",
        f"| whole VDN, the read side alone (`StatisticsReader.read_body` in-process, "
        f"no HTTP) | | {read_side.p50_ms:.2f} ms | {read_side.p99_ms:.2f} ms | | | |",
        f"| whole VDN, Redis running the statistics script (mean of the read-side requests, "
        f"INFO commandstats) | | {read_side.redis_script_ms:.2f} ms (mean) | | | | |",
        "",
        "| throughput, one uvicorn worker, flow control off | API | baseline | API / baseline |",
        "| --- | ---: | ---: | ---: |",
        f"| one campaign | {one_rps:,.0f} req/s | {one_base_rps:,.0f} req/s | "
        f"{one_rps / one_base_rps:.2f} |",
        f"| whole VDN | {whole_rps:,.0f} req/s | {whole_base_rps:,.0f} req/s | "
        f"{whole_rps / whole_base_rps:.2f} |",
        "",
        f"Samples: {whole.requests} whole-VDN and {one.requests} one-campaign requests per "
        "server. The gap to the baseline is two Redis round trips (the VDN's campaign set, then "
        "one Lua script reading every campaign's packed rows: two HGETALLs per campaign, the "
        "rows kept by the counting script next to its counter hashes), checking those rows and "
        "filling one JSON template per campaign with them; the baseline does none of that. The "
        "read-side row is the share of the whole-VDN time spent in engine/statistics.py: most "
        "of it; the row below it is Redis' own share. p99 on this shared VM moves with whatever "
        "else runs on its two cores; compare the rows of one run.",
    ]
    return "\n".join(lines)
