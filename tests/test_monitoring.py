"""deploy/prometheus and the pipeline dashboard: they query what a worker exports, where it is.

What needs no workload: every metric a panel or an alert names is one the process it is scraped
from registers (the worker: engine/metrics.py, engine/lag.py; a notifier, job isales-notifier:
engine/notifications/metrics.py), the dashboard reads the provisioned Prometheus, and the compose
Prometheus scrapes the ports the workers and notifiers listen on with the rules it is given.
tests/test_consumer_group.py reads the same names from a running worker's metrics page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client import REGISTRY, Metric
from prometheus_client.metrics import MetricWrapperBase

import isales_stats.engine.metrics  # noqa: F401  # registers the worker's metrics
from isales_stats.core.settings import Settings
from isales_stats.engine.notifications import metrics as notifier_metrics
from tests.support.monitoring import (
    PIPELINE,
    PROMETHEUS,
    alert_rules,
    metrics_named,
    pipeline_expressions,
)

ROOT = Path(__file__).resolve().parent.parent
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"


NOTIFIER_JOB = "isales-notifier"
JOB = re.compile(r'\bjob="([a-z-]+)"')


def exported_names() -> set[str]:
    """Every metric and sample name the worker's registry has (``_total``, ``_bucket``...):
    the process's registry, less the notifier's metrics, which some other test may have
    imported into it."""
    return _names(REGISTRY.collect()) - notifier_names()


def notifier_names() -> set[str]:
    """Every metric and sample name a notifier exports of its own
    (engine/notifications/metrics.py)."""
    families = [
        family
        for metric in vars(notifier_metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.collect()
    ]
    assert families, "engine/notifications/metrics.py declares no metric"
    return _names(families)


def _names(families: Iterable[Metric]) -> set[str]:
    names = set()
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_every_panel_queries_metrics_a_worker_exports() -> None:
    exported = exported_names()
    expressions = pipeline_expressions()
    assert expressions
    for title, expression in expressions:
        named = metrics_named(expression)
        scrape_health = 'up{job="isales-worker"}' in expression  # Prometheus' own, per target
        assert named or scrape_health, f"{title}: {expression} names no isales metric"
        assert named <= exported, f"{title}: {named - exported} are not exported"
    lag = set().union(*(metrics_named(expression) for _, expression in expressions))
    assert {
        "isales_partition_uncounted_messages",
        "isales_partition_uncommitted_messages",
        "isales_partition_last_counted_event_age_seconds",
    } <= lag


def test_the_dashboard_reads_the_provisioned_prometheus() -> None:
    (source,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    board = json.loads(PIPELINE.read_text())
    assert board.get("id") is None
    assert "isales-stats" in board["tags"]
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
    assert source["url"] == "http://prometheus:9090"


def test_every_alert_names_metrics_its_job_exports_and_says_what_is_wrong() -> None:
    """A rule about notifications names the notifiers' job and only their metrics; every other
    rule only the worker's."""
    exported = {"isales-worker": exported_names(), NOTIFIER_JOB: notifier_names()}
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "IsalesCountingBehind",
        "IsalesCommitsFrozen",
        "IsalesWebhookDeliveryLagHigh",
        "IsalesWebhookDeadLetters",
        "IsalesNotificationsDueGrowing",
        "IsalesNotifierDown",
    }
    for rule in rules:
        named = metrics_named(rule["expr"])
        jobs = set(JOB.findall(rule["expr"])) or {"isales-worker"}
        assert len(jobs) == 1, f"{rule['alert']}: one job per rule, not {jobs}"
        (job,) = jobs
        if named & exported[NOTIFIER_JOB]:
            assert job == NOTIFIER_JOB, f"{rule['alert']}: notifier metrics without its job"
        assert named <= exported[job], f"{rule['alert']}: {named - exported[job]} are not {job}'s"
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_compose_prometheus_scrapes_the_workers_and_the_apis_operations_port() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in service["volumes"]
    assert service["ports"] == ["127.0.0.1:9090:9090"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    job, api_job, notifier_job = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    assert "worker" in compose["services"]
    assert discovery["port"] == Settings.model_fields["worker_metrics_port"].default
    assert 'job="isales-worker"' in " ".join(rule["expr"] for rule in alert_rules())
    assert job["job_name"] == "isales-worker"
    (api_discovery,) = api_job["dns_sd_configs"]
    assert (api_job["job_name"], api_discovery["names"]) == ("isales-api", ["api"])
    operations_port = compose["x-isales-environment"]["ISALES_OPERATIONS_PORT"]
    assert api_discovery["port"] == int(operations_port)
    (notifier_discovery,) = notifier_job["dns_sd_configs"]
    assert (notifier_job["job_name"], notifier_discovery["names"]) == (NOTIFIER_JOB, ["notifier"])
    assert "notifier" in compose["services"]
    notifier_port = compose["x-isales-environment"]["ISALES_NOTIFIER_METRICS_PORT"]
    assert notifier_discovery["port"] == int(notifier_port)
