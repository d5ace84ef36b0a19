"""Abandon rates and pacing per campaign as Prometheus gauges, worked out at each scrape.

Grafana's Redis data source runs one command per target and cannot add up a window's buckets
(docs/dashboards.md, "Abandon rate and pacing in Grafana"). So the operations port's /metrics
carries, for the VDNs listed in ISALES_DECISION_METRICS_VDNS, the figures the abandon-rate and
pacing interfaces answer: read by the same reader (engine/decisions.py), one read per VDN, and
worked out by the same arithmetic (isales_stats/core/decisions.py). The Prometheus that scrapes
the API keeps them over time; the decisions dashboard (deploy/grafana/dashboards/decisions/)
draws them.

The series are bounded: campaigns only (no batches), at most ISALES_DECISION_METRICS_MAX_CAMPAIGNS
per VDN (the first ones by campaignId; the VDN total counts every campaign, and those left out
are counted in ``isales_decisions_campaigns_left_out``), about 40 series per campaign. They are
built afresh at each scrape in a registry of their own, so that a released campaign leaves the
next scrape instead of lingering at its last value. A VDN whose read fails has
``isales_decisions_read_ok`` 0 and its error logged; the other VDNs and the process' own metrics
are served all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.decisions import (
    PACE_WINDOWS,
    AbandonLimit,
    AbandonRate,
    Basis,
    Pace,
    ScopeCounts,
    abandon_rates,
    pace,
    total_of,
)
from isales_stats.core.settings import Settings
from isales_stats.engine.decisions import DecisionCounts, DecisionsReader

log = logging.getLogger(__name__)

# The basis the rule is written for: calls a person answered (connected + abandoned).
BASIS: Basis = "live"
STATUS_VALUES = {"ok": 0, "warning": 1, "over": 2}
STATES = ("empty", "notStarted", "dialling", "stalled", "finished")
# A campaign's series carry these labels; the VDN's total has scope="vdn" and no campaign.
SCOPE_LABELS = ("vdn", "scope", "campaign")

# name -> (help, labels): every gauge this module exports, as the dashboard's tests read them.
DECISION_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "isales_decisions_read_ok": (
        "1 when this scrape read the VDN's abandon rates and pacing, 0 when Redis failed "
        "(the API's log says why)",
        ("vdn",),
    ),
    "isales_decisions_campaigns_left_out": (
        "Live campaigns of the VDN past ISALES_DECISION_METRICS_MAX_CAMPAIGNS, not exported "
        "one by one (the VDN total counts them)",
        ("vdn",),
    ),
    "isales_abandon_limit_percent": (
        "The VDN's abandon limit, percent of live calls (limitPercent)",
        ("vdn",),
    ),
    "isales_abandon_warning_percent": (
        "From this abandon rate on, a window's status is warning (warningPercent)",
        ("vdn",),
    ),
    "isales_abandoned_calls": (
        "Abandoned calls in a window: today, rolling24h, rolling30d, life (abandoned)",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_abandon_live_calls": (
        "Calls a person answered in a window, connected or abandoned (denominator, basis live)",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_abandon_rate_percent": (
        "Abandoned calls in percent of live calls in a window (ratePercent, basis live); "
        "absent while the window has no live call",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_abandon_status": (
        "A window's abandon rate against the limit (status): 0 ok, 1 warning, 2 over",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_pacing_records": (
        "Records: total (totalRecords), finished (finishedRecords), remaining (remainingRecords)",
        (*SCOPE_LABELS, "records"),
    ),
    "isales_pacing_percent_complete": (
        "Finished records in percent of the records (percentComplete); absent without records",
        SCOPE_LABELS,
    ),
    "isales_pacing_calls_per_minute": (
        "Calls per minute over the last 5, 15 or 60 minutes (callsPerMinute)",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_pacing_finished_per_minute": (
        "Records finished per minute over the last 5, 15 or 60 minutes (finishedPerMinute)",
        (*SCOPE_LABELS, "window"),
    ),
    "isales_pacing_connect_rate_percent": (
        "Connected calls in percent of calls, today or over the life (connectRate); absent "
        "without calls",
        (*SCOPE_LABELS, "period"),
    ),
    "isales_pacing_attempts_per_finished_record": (
        "Calls per finished record (attemptsPerFinishedRecord); absent before one finishes",
        SCOPE_LABELS,
    ),
    "isales_pacing_last_call_timestamp_seconds": (
        "Start of the minute of the latest call, Unix time (lastCallAt); absent before a call",
        SCOPE_LABELS,
    ),
    "isales_pacing_state": (
        "1 for the scope's state (empty, notStarted, dialling, stalled, finished), else 0",
        (*SCOPE_LABELS, "state"),
    ),
    "isales_pacing_eta_seconds": (
        "Seconds from the scrape until the remaining records are done, at the fastest "
        "(earliest) and slowest (latest) recent pace (eta); absent without an ETA (etaReason)",
        (*SCOPE_LABELS, "bound"),
    ),
}


@dataclass(frozen=True, slots=True)
class VdnRead:
    """One VDN's read at a scrape: its counts, or None when Redis failed."""

    vdn_id: int
    counts: DecisionCounts | None


async def decision_metrics(reader: DecisionsReader, settings: Settings) -> bytes:
    """The gauges of every VDN of ISALES_DECISION_METRICS_VDNS, in Prometheus' text format."""
    if not settings.decision_metrics_vdns:
        return b""
    reads = await read_vdns(reader, settings.decision_metrics_vdns)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(reads, settings)))
    return generate_latest(registry)


async def read_vdns(reader: DecisionsReader, vdn_ids: Sequence[int]) -> list[VdnRead]:
    """Each VDN read on its own, at the same time: one VDN's failure leaves the others."""
    answers = await asyncio.gather(
        *(reader.counts(vdn_id) for vdn_id in vdn_ids), return_exceptions=True
    )
    reads = []
    for vdn_id, answer in zip(vdn_ids, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer  # a cancellation, not a failed read
            log.warning("decision metrics of VDN %s not read: %r", vdn_id, answer)
            reads.append(VdnRead(vdn_id, None))
        else:
            reads.append(VdnRead(vdn_id, answer))
    return reads


def families(reads: Iterable[VdnRead], settings: Settings) -> list[GaugeMetricFamily]:
    """Every gauge of DECISION_METRICS, with a sample per VDN, campaign and window read."""
    gauges = {
        name: GaugeMetricFamily(name, help_text, labels=labels)
        for name, (help_text, labels) in DECISION_METRICS.items()
    }
    for read in reads:
        vdn = str(read.vdn_id)
        gauges["isales_decisions_read_ok"].add_metric([vdn], 0 if read.counts is None else 1)
        if read.counts is None:
            continue
        limit = AbandonLimit(
            settings.abandon_limit_of(read.vdn_id), settings.abandon_warning_fraction
        )
        gauges["isales_abandon_limit_percent"].add_metric([vdn], limit.limit_percent)
        gauges["isales_abandon_warning_percent"].add_metric([vdn], limit.warning_percent)
        campaigns = read.counts.campaigns
        shown = campaigns[: settings.decision_metrics_max_campaigns]
        gauges["isales_decisions_campaigns_left_out"].add_metric([vdn], len(campaigns) - len(shown))
        now_ms = read.counts.now_ms
        total = total_of(campaign.counts for campaign in campaigns)
        scopes = [((vdn, "vdn", ""), total)]
        scopes += [((vdn, "campaign", campaign.campaign_id), campaign.counts) for campaign in shown]
        for labels, counts in scopes:
            _abandon(gauges, labels, abandon_rates(counts, BASIS, limit))
            _pacing(gauges, labels, counts, pace(counts, now_ms, settings.stall_minutes), now_ms)
    return list(gauges.values())


def _abandon(
    gauges: dict[str, GaugeMetricFamily], labels: tuple[str, ...], rates: dict[str, AbandonRate]
) -> None:
    for window, rate in rates.items():
        at = [*labels, window]
        gauges["isales_abandoned_calls"].add_metric(at, rate.abandoned)
        gauges["isales_abandon_live_calls"].add_metric(at, rate.denominator)
        if rate.rate_percent is not None:
            gauges["isales_abandon_rate_percent"].add_metric(at, rate.rate_percent)
        gauges["isales_abandon_status"].add_metric(at, STATUS_VALUES[rate.status])


def _pacing(
    gauges: dict[str, GaugeMetricFamily],
    labels: tuple[str, ...],
    counts: ScopeCounts,
    paced: Pace,
    now_ms: int,
) -> None:
    records = {
        "total": paced.total_records,
        "finished": paced.finished_records,
        "remaining": paced.remaining_records,
    }
    for kind, number in records.items():
        gauges["isales_pacing_records"].add_metric([*labels, kind], number)
    _optional(gauges["isales_pacing_percent_complete"], list(labels), paced.percent_complete)
    for minutes in PACE_WINDOWS:
        window = [*labels, f"{minutes}m"]
        gauges["isales_pacing_calls_per_minute"].add_metric(window, paced.calls_per_minute[minutes])
        gauges["isales_pacing_finished_per_minute"].add_metric(
            window, paced.finished_per_minute[minutes]
        )
    connect_rates = {"today": paced.connect_rate_today, "life": paced.connect_rate_life}
    for period, rate in connect_rates.items():
        _optional(gauges["isales_pacing_connect_rate_percent"], [*labels, period], rate)
    _optional(
        gauges["isales_pacing_attempts_per_finished_record"],
        list(labels),
        paced.attempts_per_finished_record,
    )
    last = counts.last_call_minute
    _optional(
        gauges["isales_pacing_last_call_timestamp_seconds"],
        list(labels),
        None if last is None else last * MINUTE_MS // 1000,
    )
    for state in STATES:
        gauges["isales_pacing_state"].add_metric([*labels, state], int(paced.state == state))
    if paced.eta is not None:
        for bound, at_seconds in zip(("earliest", "latest"), paced.eta, strict=True):
            gauges["isales_pacing_eta_seconds"].add_metric(
                [*labels, bound], max(at_seconds - now_ms / 1000, 0)
            )


def _optional(gauge: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    """A sample only where the interface answers a number (null there: no series here)."""
    if value is not None:
        gauge.add_metric(labels, value)


class _Snapshot(Collector):
    """The families of one scrape, as a collector of a registry made for that scrape."""

    def __init__(self, found: list[GaugeMetricFamily]) -> None:
        self.found = found

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.found)
