"""``isales-stats demo``: the whole product on the local real stack, in one command.

Starts Kafka and Redis (unless running), a worker, the API and ``isales-stats simulate`` at a
steady rate (so the numbers move while you watch), waits until the API serves them, prints what
to paste, and on Ctrl-C stops exactly what it started. The API runs with authentication on and
one well-known demo key (whatever keys the environment names), so the printed commands show a
signed request as production needs it; the callback receiver takes the demo token, and the live
page (ISALES_LIVE_PAGE_ENABLED) is on at /.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import orjson
from pydantic import SecretStr

from isales_stats.client import StatisticsClient
from isales_stats.commands.launch import cli_command
from isales_stats.commands.stack import Stack
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics

DEMO_VDN = 1
# Known to everyone (the README's quick start and the worked example of docs/api.md, section
# "Authentication", use them): for a local demo only.
DEMO_ACCESS_KEY, DEMO_SECRET_KEY = "demo-ak", "demo-sk-for-local-use-only"
DEMO_CALLBACK_TOKEN = "demo-callback-token"  # noqa: S105 - the local demo's, published on purpose
# Nine batches of 400 records, about 10,000 events at 25 events/s: seven minutes of a live day.
SIMULATION = ["--vdn", str(DEMO_VDN), "--campaigns", "3", "--batches", "3", "--records", "400",
              "--timeline", "live", "--rate", "25"]  # fmt: skip


def run_demo(settings: Settings) -> int:
    began = time.monotonic()
    stack = Stack(settings)
    report = stack.up()
    ensure_topics(settings)
    log_dir = settings.stack_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    api_settings = settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(f"{DEMO_ACCESS_KEY}:{DEMO_SECRET_KEY} vdns=*"),
            "auth_keys_file": None,
            "callback_tokens": SecretStr(f"{DEMO_CALLBACK_TOKEN} vdns=*"),
            # The live page reads without a signature: fine on a local demo.
            "live_page_enabled": True,
        }
    )
    children = [
        _start(settings, ["worker"], log_dir / "worker.log"),
        _start(api_settings, ["api"], log_dir / "api.log"),
    ]
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    client = StatisticsClient(base_url, DEMO_ACCESS_KEY, DEMO_SECRET_KEY, timeout=2)
    try:
        children.append(_start(settings, ["simulate", *SIMULATION], log_dir / "simulate.log"))
        campaign = _wait_for_statistics(client, children)
        if campaign is None:
            print(f"The API did not serve statistics; logs are in {log_dir}", file=sys.stderr)
            return 1
        print(f"\nisales-stats is serving live statistics ({time.monotonic() - began:.0f} s).")
        for line in what_to_try(settings, api_settings, client, campaign):
            print(line)
        print(f"\nLogs: {log_dir}. Press Ctrl-C to stop what the demo started.")
        # Wait for Ctrl-C or a polite kill, and still run the clean-up below for either.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        stopped = stack.down(only=report.started)
        print("\nStopped the worker, the API" + "".join(f", {name}" for name in stopped) + ".")


def what_to_try(
    settings: Settings, api_settings: Settings, client: StatisticsClient, campaign: str
) -> list[str]:
    """The lines that tell what is served and what to paste; each indented command runs as
    printed, from another terminal in the same directory (tests/test_demo_commands.py)."""
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    url = f"{base_url}/rest/isales/v2/openapi/campaigns/{DEMO_VDN}/statistics"
    program = printed_program()
    keys = f"ISALES_CLIENT_ACCESS_KEY={DEMO_ACCESS_KEY} ISALES_CLIENT_SECRET_KEY={DEMO_SECRET_KEY}"
    # The client commands call ISALES_API_HOST:ISALES_API_PORT: the demo's unless set apart
    # for it alone (ISALES_API_PORT=8100 make demo), then --url says where.
    default = Settings.model_fields
    at_url = (
        ""
        if (settings.api_host, settings.api_port)
        == (default["api_host"].default, default["api_port"].default)
        else f" --url {base_url}"
    )
    if settings.operations_port:
        docs = f"http://{settings.operations_host}:{settings.operations_port}/docs"
    else:
        docs = "off (ISALES_OPERATIONS_PORT=0)"
    return [
        f"  Live:  {base_url}/?vdn={DEMO_VDN}  (the wallboard; every counter: /counters)",
        f"  API:   {url}",
        f"  Docs:  {docs}",
        f"  Try (signed with the demo key {DEMO_ACCESS_KEY} / {DEMO_SECRET_KEY}):",
        f"    {keys} {program} query --vdn {DEMO_VDN} --campaign {shlex.quote(campaign)}{at_url}",
        "  (add --fails: its failed calls by failCode; --history --hourly: today by hour)",
        "  each change as it is counted, until Ctrl-C:",
        f"    {keys} {program} watch --vdn {DEMO_VDN}{at_url}",
        # A signature is accepted once (api/admission.py): pasted twice, the second is a 401.
        "  or with curl (signed just now: good once, within 15 minutes; "
        f"`{program} query --curl` signs a new one):",
        f"    {client.curl_command(DEMO_VDN, campaign)}",
        "  Push an iSales call result, as a campaign's callBackUrl receives it:",
        f"    {_callback_curl(api_settings, base_url)}",
        "  The demo's traffic, sent by (its log: simulate.log):",
        f"    {program} simulate {shlex.join(SIMULATION)}",
    ]


def printed_program() -> str:
    """How a command of ours is spelled for the user to paste: ``isales-stats`` when the PATH
    finds this installation's, else the path of this installation's (``make demo`` runs
    .venv/bin/isales-stats, which a fresh shell's PATH does not hold)."""
    installed = Path(sys.executable).parent / "isales-stats"
    on_path = shutil.which("isales-stats")
    if on_path is not None and installed.exists() and Path(on_path).samefile(installed):
        return "isales-stats"
    if installed.exists():
        # Relative when under the directory the demo runs in (.venv/bin/isales-stats).
        within = installed.is_relative_to(Path.cwd())
        return shlex.quote(os.path.relpath(installed) if within else str(installed))
    return shlex.join(cli_command())


def _callback_curl(settings: Settings, base_url: str) -> str:
    moment = datetime.now(settings.time_zone_of(DEMO_VDN)).strftime("%Y-%m-%d %H:%M:%S")
    result = {"vdnId": DEMO_VDN, "campaignId": "1001", "sessionId": "demo-session-1",
              "callId": "demo-call-1", "callTimeStr": moment, "callStatus": 6,
              "failCode": "00000", "customField": "batch-1"}  # fmt: skip
    url = f"{base_url}{settings.callback_path}?token={DEMO_CALLBACK_TOKEN}"
    body = orjson.dumps([result]).decode()
    return shlex.join(["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
                       "-d", body, url])  # fmt: skip


def _start(settings: Settings, command: list[str], log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **settings.as_environment()}
    with log.open("wb") as output:
        return subprocess.Popen(
            cli_command(*command),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def _wait_for_statistics(
    client: StatisticsClient, children: list[subprocess.Popen[bytes]]
) -> str | None:
    """The first campaign with calls counted, once the API serves one (None: it did not)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return None
        try:
            response = client.get(DEMO_VDN)
            detail = response.json().get("countDetail", []) if response.status_code == 200 else []
            called = [entry["campaignId"] for entry in detail if entry["totalCalledCount"]]
            if called:
                return str(called[0])
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return None
