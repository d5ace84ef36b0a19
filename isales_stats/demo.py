"""``isales-stats demo``: the whole product on the local real stack, in one command.

Starts Kafka and Redis (unless running), a worker and the API, publishes a morning of sample
traffic, waits until the API serves it, prints what to paste, and on Ctrl-C stops exactly what
it started.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from engine.topics import ensure_topics
from isales_stats.publisher import EventPublisher
from isales_stats.settings import Settings
from isales_stats.stack import Stack

DEMO_VDN = 1


def sample_traffic(now_ms: int, seed: int = 7) -> list[dict[str, Any]]:
    """Three campaigns of two batches: imports, dial attempts with retries, a few removals."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    call_number = 0
    for campaign in ("1001", "1002", "1003"):
        for batch in ("batch-a", "batch-b"):
            for record in range(rng.randint(40, 80)):
                common = {"vdnId": DEMO_VDN, "campaignId": campaign, "batchId": batch,
                          "dataId": f"{campaign}-{batch}-{record}"}  # fmt: skip
                moment = now_ms - rng.randint(60_000, 3_600_000)
                events.append({"eventType": "data.added", **common, "occurredAt": moment})
                for _attempt in range(rng.choice([0, 1, 1, 2, 3])):
                    call_number += 1
                    moment += rng.randint(1_000, 60_000)
                    connected = rng.random() < 0.45
                    events.append({
                        "eventType": "call.result", **common, "callId": f"demo-{call_number}",
                        "callStatus": 6 if connected else 5, "final": connected,
                        "failCode": "00000" if connected else "00603",
                        "occurredAt": min(moment, now_ms),
                    })  # fmt: skip
                    if connected:
                        break
                if rng.random() < 0.03:
                    events.append({"eventType": "data.removed", **common, "occurredAt": now_ms})
    return events


def run_demo(settings: Settings) -> int:
    began = time.monotonic()
    stack = Stack(settings)
    report = stack.up()
    ensure_topics(settings)
    log_dir = settings.stack_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    children = [
        _start(settings, ["worker"], log_dir / "worker.log"),
        _start(settings, ["api"], log_dir / "api.log"),
    ]
    url = (
        f"http://{settings.api_host}:{settings.api_port}"
        f"/rest/isales/v2/openapi/campaigns/{DEMO_VDN}/statistics"
    )
    try:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        with EventPublisher(settings) as publisher:
            for event in sample_traffic(now_ms):
                publisher.publish(event)
        if not _wait_for_statistics(url, children):
            print(f"The API did not serve statistics; logs are in {log_dir}", file=sys.stderr)
            return 1
        print(f"\nisales-stats is serving live statistics ({time.monotonic() - began:.0f} s).")
        print(f"  API:   {url}")
        print(f"  Docs:  http://{settings.api_host}:{settings.api_port}/docs")
        print("  Try:")
        print(f"    curl -s -H 'Content-Type: application/json' '{url}?campaignId=1001'")
        print(f"\nLogs: {log_dir}. Press Ctrl-C to stop what the demo started.")
        # Wait for Ctrl-C or a polite kill, and still run the clean-up below for either.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        stopped = stack.down(only=report.started)
        print("\nStopped the worker, the API" + "".join(f", {name}" for name in stopped) + ".")


def _start(settings: Settings, command: list[str], log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **settings.as_environment()}
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "isales_stats.cli", *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def _wait_for_statistics(url: str, children: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            detail = httpx.get(url, timeout=2).json().get("countDetail", [])
            if detail and sum(campaign["totalCalledCount"] for campaign in detail) > 0:
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return False
