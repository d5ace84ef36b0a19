"""One typed settings object for every process: worker, API, stack and command line.

Everything is read from environment variables with the prefix ``ISALES_`` (or a ``.env`` file),
so that the local stack, the tests, docker-compose and Kubernetes all speak the same names.
Services are addressed by DSN (``kafka://host:port``, ``redis://host:port/db``), not host/port
pairs: the stack derives the ports it listens on from the same DSNs the clients connect to.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_UTC_OFFSET = re.compile(r"^(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})$")


def parse_time_zone(text: str) -> tzinfo:
    """A zone from ``+08:00``, ``GMT+08:00``, ``UTC-0530`` or an IANA name (``Asia/Tokyo``)."""
    text = text.strip()
    match = _UTC_OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-offset if sign == "-" else offset)
    return ZoneInfo(text)


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
    redis_url: str = "redis://127.0.0.1:6379/0"

    # --- the stream -----------------------------------------------------------------------
    call_events_topic: str = "isales.call-events"
    dead_letter_topic: str = "isales.call-events.dead-letter"
    # Twelve partitions let up to twelve workers share the load; one campaign stays on one.
    call_events_partitions: int = 12
    # The consumer group (Faust app id); two deployments sharing a broker need different ones.
    worker_group: str = "isales-stats"
    # Events counted per Redis round trip: the lever for throughput (see docs/benchmarks.md).
    worker_batch_size: int = 2000
    # How long a batch may wait to fill up: the floor of freshness at low traffic.
    worker_batch_seconds: float = 0.05
    # A worker that stops heartbeating is replaced after this long (Faust's 60 s default
    # leaves a crashed worker's partitions idle for a minute).
    worker_session_timeout_seconds: float = 10.0
    # Prometheus metrics of the worker on this port (0: none, e.g. several workers in tests).
    worker_metrics_port: int = 9102

    # --- counting -------------------------------------------------------------------------
    # Prefix of every Redis key; tests give each test its own.
    key_prefix: str = "isales"
    # "Today" of a VDN is a date in its zone; iSales tenants in China run on GMT+08:00.
    default_time_zone: str = "+08:00"
    # Per-VDN overrides: "7=+05:30,12=Asia/Tokyo".
    vdn_time_zones: Annotated[dict[int, str], NoDecode] = Field(default_factory=dict)
    # Daily counters are kept this many days after their day ends, then expire.
    daily_retention_days: int = 40
    # An event stamped further in the future than this is refused (clock skew allowance).
    future_tolerance_seconds: int = 300

    # --- the API --------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # --- the local stack ------------------------------------------------------------------
    # Jars, data and logs of the local stack live outside the repository.
    stack_dir: Path = Path.home() / ".cache" / "isales-stats"
    kafka_version: str = "4.3.1"

    @field_validator("vdn_time_zones", mode="before")
    @classmethod
    def _split_vdn_time_zones(cls, value: object) -> object:
        return _parse_vdn_zones(value) if isinstance(value, str) else value

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

    # --- derived values -------------------------------------------------------------------
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
            environment[f"ISALES_{name.upper()}"] = str(value)
        return environment

    def time_zone_of(self, vdn_id: int) -> tzinfo:
        return _zone(self.vdn_time_zones.get(vdn_id, self.default_time_zone))


@lru_cache(maxsize=64)
def _zone(text: str) -> tzinfo:
    return parse_time_zone(text)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
