"""``isales-stats webhooks add|list|remove|replay`` on the real stack: a real API process with
authentication on, the local stack's Redis, a real notifier process and a real receiver process
(tests/support/webhook_receiver.py) that refuses until the test lets it accept.

A delivery the receiver refused for the whole (shrunk) retry period becomes a dead letter;
``replay`` sends it again, with its notification id, once the receiver accepts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from isales_stats.commands.exit_status import EXIT_OK, EXIT_SOME_NOT_SENT
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.notifications.outbox import append_notification
from isales_stats.engine.redis_connection import connect
from tests.support.api_process import ApiProcess
from tests.support.credentials import (
    ACCESS_KEY,
    SECRET_KEY,
    TENANT_B_KEY,
    TENANT_B_SECRET,
    TEST_KEYS,
)
from tests.support.notifications import notifier_settings
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.stack]

VDN = 7
CAMPAIGN = "c-refused"


def _signed(settings: Settings, access_key: str, secret_key: str) -> Settings:
    return settings.model_copy(
        update={"client_access_key": access_key, "client_secret_key": SecretStr(secret_key)}
    )


def _notify(settings: Settings) -> str:
    """One notification in the campaign's outbox, as counting writes it; its id."""

    async def append() -> str:
        redis = connect(settings)
        try:
            notification_id, _ = await append_notification(
                redis, KeyLayout(settings.key_prefix), VDN, CAMPAIGN, "campaign.finished",
                {"totalCount": 3, "finishCount": 3},
            )  # fmt: skip
            return notification_id
        finally:
            await redis.aclose()

    return asyncio.run(append())


def _dead_letters(settings: Settings) -> list[dict[str, str]]:
    async def read() -> list[dict[str, str]]:
        redis = connect(settings)
        try:
            entries = await redis.xrange(KeyLayout(settings.key_prefix).webhook_dead_letters())
        finally:
            await redis.aclose()
        return [
            {_text(name): _text(value) for name, value in fields.items()}
            for _, fields in entries or []
            if fields is not None
        ]

    return asyncio.run(read())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_a_dead_letter_is_replayed_with_its_id_once_the_receiver_accepts(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = notifier_settings(
        test_settings,
        auth_enabled=True,
        auth_keys=SecretStr(TEST_KEYS),
        webhook_retry_period_seconds=2.0,  # a refusal this long makes a dead letter
    )
    operator = _signed(settings, ACCESS_KEY, SECRET_KEY)
    receiver = Receiver(settings, tmp_path, "refusing").start()
    receiver.behave("fail")
    notifier: ServiceProcess | None = None
    with ApiProcess(settings, log_dir=tmp_path) as api:
        try:
            api_options = ("--url-api", api.url)
            added = run_cli(
                operator, "webhooks", "add", "--url", receiver.url, "--vdn", str(VDN),
                "--kind", "campaign.finished", *api_options,
            )  # fmt: skip
            assert added.returncode == EXIT_OK, (added.stderr, api.log())
            subscription = json.loads(added.stdout)
            assert subscription["url"] == receiver.url
            assert subscription["vdns"] == [VDN]
            assert subscription["kinds"] == ["campaign.finished"]
            assert subscription["secret"].startswith("whsec_")

            listed = run_cli(operator, "webhooks", "list", *api_options)
            assert listed.returncode == EXIT_OK, listed.stderr
            (shown,) = json.loads(listed.stdout)
            assert shown["id"] == subscription["id"]
            assert "secret" not in shown, "the secret is shown once, at creation"

            # Another tenant's key neither sees it nor subscribes to a VDN not its own.
            tenant = _signed(settings, TENANT_B_KEY, TENANT_B_SECRET)
            theirs = run_cli(tenant, "webhooks", "list", *api_options)
            assert theirs.returncode == EXIT_OK, theirs.stderr
            assert json.loads(theirs.stdout) == []
            refused = run_cli(
                tenant, "webhooks", "add", "--url", receiver.url, "--vdn", str(VDN), *api_options
            )
            assert refused.returncode == EXIT_SOME_NOT_SENT
            assert "02000401" in refused.stderr, refused.stderr

            notifier = ServiceProcess(settings, "notifier", "--loglevel", "info", log_dir=tmp_path)
            notifier.start()
            notification_id = _notify(settings)
            assert wait_for(lambda: bool(_dead_letters(settings)), 60), notifier.log()
            (letter,) = _dead_letters(settings)
            assert letter["id"] == notification_id
            assert letter["subscription"] == subscription["id"]
            refusals = receiver.requests()
            assert refusals, "the receiver was never called"
            assert {r["headers"]["webhook-id"] for r in refusals} == {notification_id}
            assert all(r["answered"] == "fail" for r in refusals)
            notifier.stop()

            # Still refused: the letter stays, and the command says so.
            still = run_cli(settings, "webhooks", "replay")
            assert still.returncode == EXIT_SOME_NOT_SENT, still.stderr
            assert "delivered 0, still dead 1" in still.stdout
            assert len(_dead_letters(settings)) == 1

            receiver.behave("ok")
            replayed = run_cli(settings, "webhooks", "replay", "--subscription", subscription["id"])
            assert replayed.returncode == EXIT_OK, replayed.stderr
            assert "delivered 1, still dead 0" in replayed.stdout
            assert _dead_letters(settings) == []
            (accepted,) = receiver.accepted()
            assert accepted["headers"]["webhook-id"] == notification_id  # the same id
            payload = Webhook(subscription["secret"]).verify(accepted["body"], accepted["headers"])
            assert payload["type"] == "campaign.finished"
            assert payload["data"] == {
                "vdnId": VDN, "campaignId": CAMPAIGN, "totalCount": 3, "finishCount": 3,
            }  # fmt: skip
            nothing_left = run_cli(settings, "webhooks", "replay")
            assert nothing_left.returncode == EXIT_OK
            assert "delivered 0, still dead 0" in nothing_left.stdout

            removed = run_cli(operator, "webhooks", "remove", subscription["id"], *api_options)
            assert removed.returncode == EXIT_OK, removed.stderr
            assert json.loads(removed.stdout) == {"removed": subscription["id"]}
            after = run_cli(operator, "webhooks", "list", *api_options)
            assert json.loads(after.stdout) == []
            again = run_cli(operator, "webhooks", "remove", subscription["id"], *api_options)
            assert again.returncode == EXIT_SOME_NOT_SENT
            assert f"no subscription '{subscription['id']}'" in again.stderr, again.stderr
        finally:
            if notifier is not None:
                notifier.stop()
            receiver.stop()
