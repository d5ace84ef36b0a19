"""One typed settings object for every process: worker, API, stack and command line.

Everything is read from environment variables with the prefix ``ISALES_`` (or a ``.env`` file),
so that the local stack, the tests, docker-compose and Kubernetes all speak the same names.
Services are addressed by DSN (``kafka://host:port``, ``redis://host:port/db``), not host/port
pairs: the stack derives the ports it listens on from the same DSNs the clients connect to.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.keys import ABANDON_FAIL_CODES

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_UTC_OFFSET = re.compile(r"^(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})$")
# ISALES_DECISION_METRICS_VDNS: each listed VDN is read at every scrape.
MAX_METRICS_VDNS = 100


def parse_time_zone(text: str) -> tzinfo:
    """A zone from ``+08:00``, ``GMT+08:00``, ``UTC-0530`` or an IANA name (``Asia/Tokyo``)."""
    text = text.strip()
    match = _UTC_OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-offset if sign == "-" else offset)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as error:  # not found is a KeyError
        raise ValueError(
            f"no time zone {text!r}: give an offset (+08:00) or an IANA name (Asia/Shanghai)"
        ) from error


def _parse_vdn_limits(text: str) -> dict[int, float]:
    limits: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        vdn, _, limit = item.partition("=")
        try:
            percent = float(limit)
        except ValueError:
            raise ValueError(f"expected VDN=PERCENT, got {item!r}") from None
        if not 0 < percent <= 100:
            raise ValueError(f"an abandon limit is a percent above 0, at most 100: {item!r}")
        limits[int(vdn)] = percent
    return limits


def _parse_vdn_list(text: str) -> tuple[int, ...]:
    vdns: list[int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if not item.isdigit() or not MIN_VDN_ID <= int(item) <= MAX_VDN_ID:
            raise ValueError(f"expected VDN ids from {MIN_VDN_ID} to {MAX_VDN_ID}, got {item!r}")
        vdns.append(int(item))
    if len(set(vdns)) > MAX_METRICS_VDNS:
        raise ValueError(f"at most {MAX_METRICS_VDNS} VDNs, got {len(set(vdns))}")
    return tuple(sorted(set(vdns)))


def _parse_vdn_zones(text: str) -> dict[int, str]:
    zones: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        vdn, _, zone = item.partition("=")
        if not zone:
            raise ValueError(f"expected VDN=ZONE, got {item!r}")
        parse_time_zone(zone)  # fail at start-up, not at the first event of that VDN
        zones[int(vdn)] = zone.strip()
    return zones


class Settings(BaseSettings):
    """Settings shared by the worker, the API, the local stack and the command line."""

    model_config = SettingsConfigDict(env_prefix="ISALES_", env_file=".env", extra="ignore")

    # --- services -------------------------------------------------------------------------
    kafka_url: str = "kafka://127.0.0.1:9092"
    # Kafka with TLS and SASL (docs/operations.md, "Kafka with TLS and SASL"): every Kafka
    # client of the project connects with these (core/kafka_connection.py). SSL and SASL_SSL
    # verify the broker's certificate against the CA file (the system's CAs without one, as a
    # managed service needs) and its host name unless switched off; the certificate and key
    # are the client's for mutual TLS. SASL needs a user and a password (or a mounted file).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_password_file: Path | None = None
    kafka_ca_file: Path | None = None
    kafka_cert_file: Path | None = None
    kafka_key_file: Path | None = None
    kafka_check_hostname: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis with TLS and an ACL user (docs/operations.md, "Redis with TLS and a password"):
    # ``rediss://`` switches TLS on; the CA file is what the server's certificate must chain
    # to, the certificate and key are the client's for mutual TLS. The user and password may be
    # in the URL; here (or in a mounted file) the password stays out of a URL that gets shown.
    redis_username: str = ""
    redis_password: SecretStr = SecretStr("")
    redis_password_file: Path | None = None
    redis_ca_file: Path | None = None
    redis_cert_file: Path | None = None
    redis_key_file: Path | None = None
    # Bounds on a Redis that does not answer: to connect, and to any one reply. The API then
    # answers 503 and the worker retries, instead of hanging.
    redis_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    redis_timeout_seconds: float = Field(default=10.0, gt=0)

    # --- the stream -----------------------------------------------------------------------
    call_events_topic: str = "isales.call-events"
    dead_letter_topic: str = "isales.call-events.dead-letter"
    # Twelve partitions let up to twelve workers share the load; one campaign stays on one.
    call_events_partitions: int = 12
    # Topics the project creates (engine/topics.py): replicas of each partition (3 on a
    # production cluster; 1 on the local one-node stack), min.insync.replicas is min(2, that).
    topic_replication_factor: int = Field(default=1, ge=1)
    # How long Kafka keeps call events: what can be counted again after Redis lost writes, and
    # the longest the workers may be down before events are deleted uncounted (reported by
    # isales_events_lost_to_retention_total). docs/operations.md, "Topics".
    call_events_retention_hours: int = Field(default=168, ge=1)
    # The consumer group (Faust app id); two deployments sharing a broker need different ones.
    worker_group: str = "isales-stats"
    # The most events one Kafka fetch hands the agent, counted in one Redis round trip: the
    # lever for throughput (docs/benchmarks.md, "Engine: one worker process"). Fetches are not
    # held back to fill up, so at low traffic an event is counted as soon as it is fetched.
    worker_batch_size: int = 10000
    # A worker that stops heartbeating is replaced after this long (Faust's 60 s default
    # leaves a crashed worker's partitions idle for a minute).
    worker_session_timeout_seconds: float = 10.0
    # Prometheus metrics of the worker on this port (0: none, e.g. several workers in tests),
    # on this address: loopback unless set, as the API's operations port (0.0.0.0 in compose
    # and Kubernetes, where Prometheus scrapes the container's address). engine/health.py.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9102

    # --- counting -------------------------------------------------------------------------
    # Prefix of every Redis key; tests give each test its own.
    key_prefix: str = "isales"
    # "Today" of a VDN is a date in its zone; iSales tenants in China run on GMT+08:00.
    default_time_zone: str = "+08:00"
    # Per-VDN overrides: "7=+05:30,12=Asia/Tokyo".
    vdn_time_zones: Annotated[dict[int, str], NoDecode] = Field(default_factory=dict)
    # Daily counters are kept this many days after their day ends, then expire. At least 30:
    # the rolling 30-day abandon rate counts the events of days still retained.
    daily_retention_days: int = Field(default=40, ge=30)
    # An event stamped further in the future than this is refused (clock skew allowance).
    future_tolerance_seconds: int = 300
    # What producers may open (0: no limit): events beyond go to the dead-letter topic
    # (category "limit"), never counted. The whole-VDN read walks every live campaign of a VDN
    # (released ones leave its index), so the campaign cap bounds it.
    max_campaigns_per_vdn: int = Field(default=5000, ge=0)
    max_batches_per_campaign: int = Field(default=1000, ge=0)

    # --- decisions: abandon rate and pacing (docs/api.md, "Abandon rate" and "Pacing") --
    # The failCodes of a call a person answered and no agent took (abandoned), comma-separated:
    # iSales' queue abandoned, queue timed out, no agent could be seized. Counted as the event
    # is counted: a change applies to the calls counted after it.
    abandon_fail_codes: str = ",".join(ABANDON_FAIL_CODES)
    # The most abandoned calls allowed, in percent of live calls (connected + abandoned): the
    # US rule's 3 %; per VDN overrides "7=2.5,12=5".
    abandon_limit_percent: float = Field(default=3.0, gt=0, le=100)
    vdn_abandon_limits: Annotated[dict[int, float], NoDecode] = Field(default_factory=dict)
    # A window's status is "warning" from this fraction of the limit on, "over" above it.
    abandon_warning_fraction: float = Field(default=0.8, gt=0, le=1)
    # A campaign with records left and no call for this many minutes is "stalled".
    stall_minutes: int = Field(default=10, ge=1, le=10_080)
    # The VDNs whose abandon rates and pacing the API's operations port exports per campaign
    # at each scrape (api/decision_metrics.py; docs/dashboards.md), "1,7"; empty: none. Each
    # costs a read per scrape and about 40 series per campaign, up to this many campaigns.
    decision_metrics_vdns: Annotated[tuple[int, ...], NoDecode] = ()
    decision_metrics_max_campaigns: int = Field(default=100, ge=0, le=5000)
    # Notifications (docs/notifications.md): on, counting and the sweep decide them and write
    # each campaign's outbox; off, they write nothing ("on" | "off").
    notifications: bool = True

    # --- a campaign's life (engine/lifecycle.py; docs/operations.md, "Campaigns that end") --
    # A campaign ends by a campaign.closed event, or after this many days without any event.
    campaign_idle_days: int = Field(default=30, ge=1)
    # Events still counted after the end (late call results); then the campaign's idempotence
    # state is released and its events go to the dead-letter topic (campaign-released).
    campaign_release_grace_hours: float = Field(default=24.0, ge=0)
    # How long a released campaign's final counters stay readable (0: deleted at release).
    campaign_retention_days: int = Field(default=90, ge=0)
    # A deleted campaign's tombstone refuses its late events this long, then expires.
    campaign_tombstone_days: int = Field(default=365, ge=1)
    # How often each worker looks for campaigns due to be released or deleted.
    campaign_sweep_seconds: float = Field(default=60.0, gt=0)

    # --- the API --------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # /metrics, /docs and /openapi.json are served here, never on the API's port (they name
    # authentication failures and every route's traffic): 0 serves them nowhere.
    operations_host: str = "127.0.0.1"
    operations_port: int = Field(default=9103, ge=0, le=65535)
    # What one connection may cost before a request reaches the app (api/http_limits.py): a
    # request line and headers past this many bytes get 431; a head not complete this long
    # after the connection opened (or its next request began) is closed; a request whose body
    # stops arriving for this long is closed; connections past this many open at once get 503
    # (push subscribers count: keep it above push_max_subscribers).
    api_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    api_header_timeout_seconds: float = Field(default=10.0, gt=0)
    api_body_idle_timeout_seconds: float = Field(default=10.0, gt=0)
    api_max_connections: int = Field(default=4096, ge=1)
    # AK/SK request signatures are checked unless switched off explicitly (the local demo).
    auth_enabled: bool = True
    # The signing keys operations issue: "ak1:sk1,ak2:sk2" and/or a file of such pairs (one per
    # line, '#' comments) for keys mounted as a secret; the API merges both at start-up.
    auth_keys: SecretStr = SecretStr("")
    auth_keys_file: Path | None = None
    # How old a signature's timestamp may be, and how far ahead of the server's clock (clock
    # skew only: a stamp far ahead would be replayable until long after it was made).
    auth_window_seconds: int = Field(default=900, ge=0)
    auth_future_skew_seconds: int = Field(default=60, ge=0)
    # A secret key shorter than this stops start-up (a short one can be guessed offline from
    # one signed request).
    auth_min_secret_key_length: int = Field(default=16, ge=1)
    # The host names (host or host:port) clients reach the API by: a signed Host outside them
    # is refused. Empty: any signed Host (set it in production: docs/operations.md).
    api_public_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Flow control: requests one caller (its AK; its address with auth off) may make for one VDN
    # in a window; 0 switches it off. The seed fixes the window at five minutes.
    rate_limit_requests: int = Field(default=300, ge=0)
    rate_limit_window_seconds: int = Field(default=300, ge=1)
    # ...and over all its VDNs together in the same window (0: no such budget).
    rate_limit_key_requests: int = Field(default=3000, ge=0)
    # With authentication off the caller is its address; X-Forwarded-For is believed only from
    # these proxies (addresses or CIDR networks, comma-separated). Empty: never.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # One JSON line per request on stderr (uvicorn's own access log stays off).
    access_log: bool = True
    # The live page at / and its JSON at /live/statistics/{vdnId}: counters of any VDN with no
    # signature, so off unless switched on (the demo; a trusted network). api/routes/live.py.
    live_page_enabled: bool = False

    # --- push: statistics as Server-Sent Events (api/push/, docs/api.md "Push") ------------
    # Changes kept per campaign in its change stream (written by counting, so the worker's
    # setting): how far back a subscriber may resume before it gets a snapshot. 0: none kept,
    # nothing pushed.
    push_changes_kept: int = Field(default=128, ge=0)
    # At most this many events per campaign and second to each subscriber; changes coming
    # faster are coalesced into the latest (each event carries all the counters). 0: every one.
    push_max_events_per_second: float = Field(default=4.0, ge=0)
    # A comment line on a quiet stream this often, so proxies and clients know it is alive.
    push_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Events waiting for one subscriber; a subscriber that lets more wait is dropped (it
    # reconnects and resumes), so that it never slows the others.
    push_queue_events: int = Field(default=1000, ge=1)
    # Subscribers one API process serves at once, and of those, per access key. 0: no cap.
    push_max_subscribers: int = Field(default=2000, ge=0)
    push_max_subscribers_per_key: int = Field(default=100, ge=0)
    # A VDN's subscriber resuming from an id gets the changes from this long before it:
    # changes of different campaigns are not announced in the exact order of their ids
    # (several API processes, Redis Cluster nodes' clocks). Repeats are told by changeId.
    push_resume_margin_ms: int = Field(default=5000, ge=0)
    # How often an API process reads every watched campaign's changes whether told or not
    # (Pub/Sub drops messages while a connection is down; it reads them all on reconnecting).
    push_sweep_seconds: float = Field(default=30.0, gt=0)

    # --- the client (isales-stats query) --------------------------------------------------
    client_access_key: str = ""
    client_secret_key: SecretStr = SecretStr("")

    # --- iSales result callbacks (api/routes/callbacks.py) ---------------------------------
    # Where iSales POSTs call results: the path to put in a campaign's callBackUrl.
    callback_path: str = "/rest/isales/v1/callbacks/call-results"
    # failCodes after which no retry policy dials the record again, so the call is final
    # (comma-separated). Default: 00538, empty or wrong number.
    callback_final_fail_codes: str = "00538"
    # Shared secrets for pushers that cannot sign (iSales only lets you set a URL), one per
    # tenant, each with the VDNs it may write: "TOKEN1 vdns=100-109,TOKEN2 vdns=200" (at least
    # 16 characters; vdns=* for every VDN). Sent as ?token=... in the callBackUrl or an
    # X-Callback-Token header. Empty: AK/SK signatures only.
    callback_tokens: SecretStr = SecretStr("")
    # The largest callback body read (413 beyond, before reading on: api/body_limit.py) and the
    # most results one body may hold (iSales pushes results in small arrays).
    callback_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    callback_max_results: int = Field(default=10_000, ge=1)
    # How long a callback waits for Kafka to acknowledge its events before answering 503.
    callback_ack_timeout_seconds: float = Field(default=10.0, gt=0)
    # Flow control of the callbacks: bodies one token or key (the address on an open receiver)
    # may push in ISALES_RATE_LIMIT_WINDOW_SECONDS, then 429; 0 switches it off. Size it to a
    # tenant's call results per window: the default is 100 a second.
    callback_rate_limit_requests: int = Field(default=30_000, ge=0)

    # --- notifications: webhooks (engine/notifications/; docs/notifications.md) -----------
    # Subscription addresses: https only unless http is allowed; private, loopback,
    # link-local and multicast addresses refused (at creation and at each delivery) unless
    # allowed (tests, a trusted network).
    webhook_allow_http: bool = False
    webhook_allow_private_addresses: bool = False
    # One delivery attempt waits this long for the receiver's answer.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries: exponential backoff with full jitter from the first delay, doubling up to the
    # longest, for this long after the first attempt; then a dead letter and the next entry.
    webhook_retry_first_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=600.0, gt=0)
    webhook_retry_period_seconds: float = Field(default=24 * 3600.0, gt=0)
    # 410 Gone from a receiver disables its subscription (re-create it to resume).
    webhook_disable_on_gone: bool = True
    # Requests in flight at once, per notifier and per subscription (one slow receiver holds
    # at most its own share).
    notifier_max_in_flight: int = Field(default=256, ge=1)
    notifier_max_in_flight_per_subscription: int = Field(default=16, ge=1)
    # The due set is split in this many shards, each delivered by one notifier holding its
    # lease; a lease not renewed for the lease time is taken over by another notifier.
    notifier_shards: int = Field(default=16, ge=1, le=1024)
    notifier_lease_seconds: float = Field(default=10.0, gt=0)
    # How often a notifier looks at the due set without being woken (a missed wake-up).
    notifier_poll_seconds: float = Field(default=1.0, gt=0)
    # Prometheus metrics of the notifier (0: none), as the worker's.
    notifier_metrics_host: str = "127.0.0.1"
    notifier_metrics_port: int = Field(default=9104, ge=0, le=65535)

    # --- the local stack ------------------------------------------------------------------
    # Jars, data and logs of the local stack live outside the repository.
    stack_dir: Path = Path.home() / ".cache" / "isales-stats"
    kafka_version: str = "4.3.1"

    @field_validator("vdn_time_zones", mode="before")
    @classmethod
    def _split_vdn_time_zones(cls, value: object) -> object:
        return _parse_vdn_zones(value) if isinstance(value, str) else value

    @field_validator("vdn_abandon_limits", mode="before")
    @classmethod
    def _split_vdn_abandon_limits(cls, value: object) -> object:
        return _parse_vdn_limits(value) if isinstance(value, str) else value

    @field_validator("decision_metrics_vdns", mode="before")
    @classmethod
    def _split_decision_metrics_vdns(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):  # given in code: held to the same rules
            value = ",".join(str(item) for item in value)
        return _parse_vdn_list(value) if isinstance(value, str) else value

    @field_validator("abandon_fail_codes")
    @classmethod
    def _check_abandon_fail_codes(cls, value: str) -> str:
        codes = [code.strip() for code in value.split(",") if code.strip()]
        if not codes or any(not re.fullmatch(r"[0-9A-Za-z]{1,16}", code) for code in codes):
            raise ValueError("abandon_fail_codes: failCodes separated by commas, e.g. 00701,00702")
        return ",".join(codes)

    @field_validator(
        "auth_keys_file",
        "kafka_password_file",
        "kafka_ca_file",
        "kafka_cert_file",
        "kafka_key_file",
        "redis_password_file",
        "redis_ca_file",
        "redis_cert_file",
        "redis_key_file",
        mode="before",
    )
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        # as_environment() writes an unset path as "", which must read back as unset.
        return None if value == "" else value

    @field_validator("api_public_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        parse_time_zone(value)
        return value

    @field_validator("kafka_url")
    @classmethod
    def _check_kafka_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"kafka", "aiokafka"}:
            raise ValueError("kafka_url must look like kafka://host:port[;host:port...]")
        return value

    @field_validator("callback_path")
    @classmethod
    def _check_callback_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("callback_path must start with '/'")
        return value

    @property
    def final_fail_codes(self) -> frozenset[str]:
        """``callback_final_fail_codes`` as a set of failCodes."""
        codes = (code.strip() for code in self.callback_final_fail_codes.split(","))
        return frozenset(code for code in codes if code)

    # --- derived values -------------------------------------------------------------------
    @property  # not cached: model_copy(update=...) would carry a cached value along
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies)

    @property
    def kafka_bootstrap_servers(self) -> list[str]:
        """``kafka://a:9092;b:9092`` (Faust's own syntax) as kafka-python's list of host:port."""
        netloc = self.kafka_url.split("://", 1)[1].rstrip("/")
        return [server for server in re.split(r"[;,]", netloc) if server]

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap_servers[0].rsplit(":", 1)[1])

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    def as_environment(self) -> dict[str, str]:
        """These settings as ISALES_* variables: how a parent hands them to a child process."""
        environment = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, dict):
                value = ",".join(f"{key}={zone}" for key, zone in value.items())
            elif isinstance(value, (list, tuple)):
                value = ",".join(str(item) for item in value)
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()  # str() would hand the child "**********"
            elif value is None:
                value = ""
            environment[f"ISALES_{name.upper()}"] = str(value)
        return environment

    @model_validator(mode="after")
    def _tls_files_need_rediss(self) -> Settings:
        tls_files = {
            "ISALES_REDIS_CA_FILE": self.redis_ca_file,
            "ISALES_REDIS_CERT_FILE": self.redis_cert_file,
            "ISALES_REDIS_KEY_FILE": self.redis_key_file,
        }
        given = [name for name, path in tls_files.items() if path is not None]
        if given and not urlsplit(self.redis_url).scheme.startswith("rediss"):
            raise ValueError(
                f"{', '.join(given)} set, but ISALES_REDIS_URL is not rediss:// (TLS is off)"
            )
        if (self.redis_cert_file is None) != (self.redis_key_file is None):
            raise ValueError("ISALES_REDIS_CERT_FILE and ISALES_REDIS_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        protocol = self.kafka_security_protocol
        tls_files = {
            "ISALES_KAFKA_CA_FILE": self.kafka_ca_file,
            "ISALES_KAFKA_CERT_FILE": self.kafka_cert_file,
            "ISALES_KAFKA_KEY_FILE": self.kafka_key_file,
        }
        given = [name for name, path in tls_files.items() if path is not None]
        if given and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"{', '.join(given)} set, but ISALES_KAFKA_SECURITY_PROTOCOL is {protocol} "
                "(TLS is off; use SSL or SASL_SSL)"
            )
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("ISALES_KAFKA_CERT_FILE and ISALES_KAFKA_KEY_FILE go together")
        has_password = bool(self.kafka_password.get_secret_value()) or bool(
            self.kafka_password_file
        )
        if protocol.startswith("SASL") and not (self.kafka_username and has_password):
            raise ValueError(
                f"ISALES_KAFKA_SECURITY_PROTOCOL={protocol} needs ISALES_KAFKA_USERNAME and "
                "ISALES_KAFKA_PASSWORD (or ISALES_KAFKA_PASSWORD_FILE)"
            )
        return self

    def redis_password_value(self) -> str:
        """The Redis password: ISALES_REDIS_PASSWORD, else the first line of the file named by
        ISALES_REDIS_PASSWORD_FILE (a mounted secret), else none (the URL's, if any)."""
        return _secret(self.redis_password, self.redis_password_file, "ISALES_REDIS_PASSWORD_FILE")

    def kafka_password_value(self) -> str:
        """The SASL password: ISALES_KAFKA_PASSWORD, else the first line of the file named by
        ISALES_KAFKA_PASSWORD_FILE (a mounted secret), else none."""
        return _secret(self.kafka_password, self.kafka_password_file, "ISALES_KAFKA_PASSWORD_FILE")

    def time_zone_of(self, vdn_id: int) -> tzinfo:
        return _zone(self.vdn_time_zones.get(vdn_id, self.default_time_zone))

    @property
    def abandon_fail_code_set(self) -> frozenset[str]:
        return frozenset(self.abandon_fail_codes.split(","))

    def abandon_limit_of(self, vdn_id: int) -> float:
        """The VDN's abandon limit, in percent of the live calls."""
        return self.vdn_abandon_limits.get(vdn_id, self.abandon_limit_percent)

    def time_zone_name_of(self, vdn_id: int) -> str:
        """The VDN's zone as configured: "+08:00", or an IANA name such as "Asia/Shanghai"."""
        return self.vdn_time_zones.get(vdn_id, self.default_time_zone)


def _secret(value: SecretStr, file: Path | None, file_setting: str) -> str:
    """A password given directly, else the first line of its file, else none."""
    if value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        try:
            lines = file.read_text().splitlines()
        except OSError as error:
            raise ValueError(f"{file_setting}: {error}") from error
        return lines[0].strip() if lines else ""
    return ""


@lru_cache(maxsize=64)
def _zone(text: str) -> tzinfo:
    return parse_time_zone(text)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
