"""deploy/k8s: every manifest is valid Kubernetes, and together they run what compose runs.

The schemas are those the PyPI package kubernetes-validate ships (the OpenAPI schemas of each
Kubernetes release as JSON Schema), so no cluster and no network are needed. Validation is
strict (an unknown field is an error) and runs against the oldest and the newest release the
package knows; a manifest of a kind it has no schema for fails here rather than being skipped.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from redis import Redis
from redis import exceptions as redis_errors

from isales_stats.commands.stack.redis import REDIS_MEMORY, REDIS_PERSISTENCE
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import refused_address
from tests.support.compose import environment_of, load_compose, services, with_defaults
from tests.support.ports import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBERNETES_VERSIONS = sorted({all_versions()[0], all_versions()[-1]})

Manifest = dict[str, Any]


def manifests() -> Iterator[tuple[Path, Manifest]]:
    """Every Kubernetes object of deploy/k8s (the kustomization is kustomize's, not the API's)."""
    for path in sorted(K8S.glob("*.yaml")):
        if path == KUSTOMIZATION:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                yield path, document


def objects() -> dict[tuple[str, str], Manifest]:
    """(kind, name) -> manifest."""
    found = {}
    for path, manifest in manifests():
        key = (manifest["kind"], manifest["metadata"]["name"])
        assert key not in found, f"{path.name}: {key} is declared twice"
        found[key] = manifest
    return found


def deployment(component: str) -> Manifest:
    return objects()[("Deployment", f"isales-stats-{component}")]


def container(component: str) -> Manifest:
    (only,) = deployment(component)["spec"]["template"]["spec"]["containers"]
    return dict(only)


def pod_labels(component: str) -> dict[str, str]:
    labels: dict[str, str] = deployment(component)["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    checked = []
    for path, manifest in manifests():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{path.name} ({manifest['kind']}) at {where}: {error.message}")
        checked.append(manifest["kind"])
    assert sorted(set(checked)) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "StatefulSet",
    ]


def test_the_validator_rejects_a_broken_manifest() -> None:
    """Not a vacuous pass: a wrong type and an unknown field are both caught."""
    broken = yaml.safe_load((K8S / "api-deployment.yaml").read_text(encoding="utf-8"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    unknown = yaml.safe_load((K8S / "api-deployment.yaml").read_text(encoding="utf-8"))
    unknown["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_applies_everything_but_the_empty_secret() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    files = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert set(kustomization["resources"]) == files - {"secret.yaml"}
    assert [image["name"] for image in kustomization["images"]] == ["isales-stats"]


def test_api_probes_are_readyz_and_healthz() -> None:
    api = container("api")
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    operations_port = int(
        objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_OPERATIONS_PORT"]
    )
    assert ports == {"http": 8000, "operations": operations_port}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["args"] == ["api", "--host", "0.0.0.0", "--port", "8000"]


def test_worker_probes_its_metrics_port() -> None:
    worker = container("worker")
    metrics_port = int(
        objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_WORKER_METRICS_PORT"]
    )
    assert {port["name"]: port["containerPort"] for port in worker["ports"]} == {
        "metrics": metrics_port
    }
    for probe in ("readinessProbe", "livenessProbe"):
        assert worker[probe]["httpGet"]["port"] == "metrics", probe
    assert worker["args"] == ["worker"]
    # More workers than partitions would idle.
    partitions = int(
        objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_CALL_EVENTS_PARTITIONS"]
    )
    assert 1 <= deployment("worker")["spec"]["replicas"] <= partitions


@pytest.mark.parametrize("component", ["api", "worker", "notifier"])
def test_containers_have_resources_and_run_as_the_images_user(component: str) -> None:
    resources = container(component)["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"{component}: {kind}"
    pod = deployment(component)["spec"]["template"]["spec"]
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert container(component)["securityContext"]["allowPrivilegeEscalation"] is False


# Only the API checks signatures; the worker and the notifier get no key. Each may get a Redis
# password; the notifier has no Kafka, so no Kafka password either.
SECRETS_OF = {
    "api": ["isales-stats-auth", "isales-stats-redis", "isales-stats-kafka"],
    "worker": ["isales-stats-redis", "isales-stats-kafka"],
    "notifier": ["isales-stats-redis"],
}


@pytest.mark.parametrize("component", sorted(SECRETS_OF))
def test_settings_come_from_the_config_map_and_the_secret(component: str) -> None:
    sources = container(component)["envFrom"]
    config_maps = [source["configMapRef"]["name"] for source in sources if "configMapRef" in source]
    secrets = [source["secretRef"]["name"] for source in sources if "secretRef" in source]
    assert config_maps == ["isales-stats"]
    assert secrets == SECRETS_OF[component]
    optional = {s["secretRef"]["name"] for s in sources if s.get("secretRef", {}).get("optional")}
    no_password_no_secret = {"isales-stats-redis", "isales-stats-kafka"} & set(secrets)
    assert optional == no_password_no_secret
    for name in config_maps:
        assert ("ConfigMap", name) in objects()
    for name in secrets:
        assert ("Secret", name) in objects()


def test_the_secret_holds_the_auth_keys_and_nothing_is_secret_in_the_config_map() -> None:
    secret = objects()[("Secret", "isales-stats-auth")]
    assert set(secret["stringData"]) == {"ISALES_AUTH_KEYS"}
    assert secret["stringData"]["ISALES_AUTH_KEYS"] == "", "no real key in the repository"
    assert "ISALES_AUTH_KEYS" not in objects()[("ConfigMap", "isales-stats")]["data"]
    redis = objects()[("Secret", "isales-stats-redis")]
    assert redis["stringData"] == {"ISALES_REDIS_PASSWORD": ""}, "no real password in the repo"
    kafka = objects()[("Secret", "isales-stats-kafka")]
    assert kafka["stringData"] == {"ISALES_KAFKA_PASSWORD": ""}, "no real password in the repo"
    secret_settings = {"PASSWORD", "SECRET", "KEYS", "TOKEN"}
    for name in objects()[("ConfigMap", "isales-stats")]["data"]:
        assert not secret_settings & set(name.split("_")), f"{name} is a secret: use a Secret"


# Settings both set, to values that name where each deployment is reached: they differ.
NAMES_THE_DEPLOYMENT = {"ISALES_API_PUBLIC_HOSTS"}


def test_signatures_are_bound_to_where_each_deployment_is_reached() -> None:
    """With ISALES_API_PUBLIC_HOSTS empty a signature made for one deployment passes at any
    other holding the key: compose names its published port, Kubernetes its Service."""
    service = objects()[("Service", "isales-stats-api")]
    (port,) = (entry["port"] for entry in service["spec"]["ports"] if entry["name"] == "http")
    in_cluster = objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_API_PUBLIC_HOSTS"]
    assert f"isales-stats-api:{port}" in in_cluster.split(",")
    compose = with_defaults(load_compose()["x-isales-environment"]["ISALES_API_PUBLIC_HOSTS"])
    published = {str(entry).rsplit(":", 1)[0] for entry in services()["api"]["ports"]}
    assert "127.0.0.1:8000" in published
    assert "127.0.0.1:8000" in compose.split(",")


def test_config_map_speaks_the_settings_names_of_compose() -> None:
    """Every key is a setting; those compose sets too have compose's values (its defaults)."""
    data: dict[str, str] = objects()[("ConfigMap", "isales-stats")]["data"]
    for name in data:
        assert name.startswith("ISALES_"), name
        assert name.removeprefix("ISALES_").lower() in Settings.model_fields, name
        assert isinstance(data[name], str), f"{name}: ConfigMap values are strings"
    compose = {
        name: with_defaults(value)
        for name, value in environment_of(
            {"environment": load_compose()["x-isales-environment"]}
        ).items()
    }
    shared = set(data) & set(compose) - NAMES_THE_DEPLOYMENT
    assert shared >= {"ISALES_KAFKA_URL", "ISALES_REDIS_URL", "ISALES_CALL_EVENTS_TOPIC"}
    assert {name: data[name] for name in shared} == {name: compose[name] for name in shared}
    assert set(compose) - set(data) == {"ISALES_AUTH_KEYS"}
    assert services()["worker"]["deploy"]["replicas"] == deployment("worker")["spec"]["replicas"]


@pytest.mark.parametrize("component", ["api", "worker", "notifier"])
def test_disruption_budget_covers_the_pods(component: str) -> None:
    budget = objects()[("PodDisruptionBudget", f"isales-stats-{component}")]
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == deployment(component)["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels(component).items()
    # A budget that allows no disruption at all would block every node drain.
    spec = budget["spec"]
    assert spec.get("maxUnavailable", 1) >= 1
    assert spec.get("minAvailable", 0) < deployment(component)["spec"]["replicas"]


def test_api_autoscaler_targets_the_api_deployment() -> None:
    autoscaler = objects()[("HorizontalPodAutoscaler", "isales-stats-api")]["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "isales-stats-api",
    }
    assert autoscaler["minReplicas"] >= 2
    assert autoscaler["maxReplicas"] > autoscaler["minReplicas"]
    (metric,) = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilisation is measured against the request: the container must have one.
    assert "cpu" in container("api")["resources"]["requests"]


def test_api_service_selects_the_api_pods() -> None:
    service = objects()[("Service", "isales-stats-api")]["spec"]
    assert service["selector"].items() <= pod_labels("api").items()
    assert [port["targetPort"] for port in service["ports"]] == ["http"]


def test_the_operations_port_is_reachable_from_the_cluster_only() -> None:
    """/metrics and /docs (api/operations.py) are on the operations port: the NetworkPolicy
    admits anyone on the API port and only the cluster's pods on the operations port, and the
    Service (what an Ingress routes to) exposes the API port alone."""
    policy = objects()[("NetworkPolicy", "isales-stats-api")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels("api").items()
    assert policy["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["ingress"]}
    assert rules == {"http": None, "operations": [{"namespaceSelector": {}}]}
    service = objects()[("Service", "isales-stats-api")]["spec"]
    assert [port["targetPort"] for port in service["ports"]] == ["http"]
    annotations = deployment("api")["spec"]["template"]["metadata"]["annotations"]
    data = objects()[("ConfigMap", "isales-stats")]["data"]
    assert annotations["prometheus.io/port"] == data["ISALES_OPERATIONS_PORT"]
    assert data["ISALES_OPERATIONS_HOST"] == "0.0.0.0"


def test_redis_persists_and_fills_like_the_local_stack() -> None:
    """The local stack's persistence and memory policy; maxmemory set, below the container's
    memory limit with room for the AOF rewrite's fork and the buffers."""
    config = objects()[("ConfigMap", "isales-stats-redis")]["data"]["redis.conf"]
    settings = dict(
        line.split(" ", 1) for line in config.splitlines() if line.strip() and line[0] != "#"
    )
    assert settings.pop("dir") == "/data"
    maxmemory = bytes_of(settings.pop("maxmemory"))
    assert settings == REDIS_PERSISTENCE | REDIS_MEMORY
    (redis,) = objects()[("StatefulSet", "isales-stats-redis")]["spec"]["template"]["spec"][
        "containers"
    ]
    assert redis["args"] == ["/etc/redis/redis.conf"]
    limit = bytes_of(redis["resources"]["limits"]["memory"])
    assert 0.5 * limit <= maxmemory <= 0.8 * limit, (maxmemory, limit)


def bytes_of(size: str) -> int:
    """Redis' ("3gb") and Kubernetes' ("4Gi") sizes in bytes."""
    units = {"gb": 2**30, "mb": 2**20, "gi": 2**30, "mi": 2**20}
    return int(float(size[:-2]) * units[size[-2:].lower()])


def redis_container() -> Manifest:
    (redis,) = objects()[("StatefulSet", "isales-stats-redis")]["spec"]["template"]["spec"][
        "containers"
    ]
    return dict(redis)


def test_redis_takes_its_user_from_the_config_map_and_its_password_from_the_secret() -> None:
    """The same user and password the workers and the API connect with; no Secret, no Redis
    (not optional, unlike the workers' and the API's reference, which a managed Redis may not
    need)."""
    environment = {item["name"]: item["valueFrom"] for item in redis_container()["env"]}
    assert environment["ISALES_REDIS_USERNAME"] == {
        "configMapKeyRef": {"name": "isales-stats", "key": "ISALES_REDIS_USERNAME"}
    }
    for name in ("ISALES_REDIS_PASSWORD", "REDISCLI_AUTH"):  # the server's; the probe's
        assert environment[name] == {
            "secretKeyRef": {"name": "isales-stats-redis", "key": "ISALES_REDIS_PASSWORD"}
        }, name
    assert objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_REDIS_USERNAME"]
    probe = " ".join(redis_container()["readinessProbe"]["exec"]["command"])
    assert '--user "$ISALES_REDIS_USERNAME"' in probe


@pytest.mark.parametrize("password", ["a-password-of-the-secret", ""])
def test_redis_as_deployed_admits_only_its_acl_user(tmp_path: Path, password: str) -> None:
    """The StatefulSet's command line run on a real redis-server, with the ConfigMap's redis.conf
    (its directory and port this test's): nobody gets in without the user and password; an
    empty password (the repository's Secret applied as it is) stops Redis from starting."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server (the local stack installs it)")
    port = free_port()
    config = objects()[("ConfigMap", "isales-stats-redis")]["data"]["redis.conf"]
    config_file = tmp_path / "redis.conf"
    config_file.write_text(
        config.replace("dir /data", f"dir {tmp_path}") + f"port {port}\nbind 127.0.0.1\n"
    )
    redis = redis_container()
    user = objects()[("ConfigMap", "isales-stats")]["data"]["ISALES_REDIS_USERNAME"]
    environment = {
        "PATH": os.environ["PATH"],
        "ISALES_REDIS_USERNAME": user,
        "ISALES_REDIS_PASSWORD": password,
    }
    command = [*redis["command"], *[str(config_file) for _ in redis["args"]]]
    with subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as server:
        try:
            if not password:
                assert server.wait(10) != 0
                assert server.stdout is not None
                assert b"ISALES_REDIS_PASSWORD" in server.stdout.read()
                return
            assert wait_for(lambda: redis_answers(port, user, password), timeout=10)
            with pytest.raises(redis_errors.AuthenticationError):  # the default user is off
                Redis(port=port).ping()
            with pytest.raises(redis_errors.AuthenticationError):
                Redis(port=port, username=user, password="not-the-password").ping()
            with pytest.raises(redis_errors.AuthenticationError):
                Redis(port=port, username="default", password=password).ping()
            # The product's user runs its scripts and INFO, not Redis' own administration: a
            # leaked password cannot turn the default user back on or reconfigure Redis.
            app = Redis(port=port, username=user, password=password)
            assert app.info("memory")["used_memory"] > 0
            with pytest.raises(redis_errors.NoPermissionError):
                app.acl_setuser("default", enabled=True)
            with pytest.raises(redis_errors.NoPermissionError):
                app.config_set("appendonly", "no")
        finally:
            server.terminate()
            server.wait(10)


def redis_answers(port: int, user: str, password: str) -> bool:
    try:
        return bool(Redis(port=port, username=user, password=password).ping())
    except redis_errors.ConnectionError:
        return False


REDIS_CLIENTS = ("worker", "api", "notifier")


def test_only_the_worker_api_and_notifier_pods_reach_redis() -> None:
    policy = objects()[("NetworkPolicy", "isales-stats-redis")]["spec"]
    redis_pods = objects()[("StatefulSet", "isales-stats-redis")]["spec"]["template"]["metadata"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_pods["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "redis", "protocol": "TCP"}]
    # Pod selectors alone: pods of this namespace, no namespaceSelector or ipBlock.
    assert all(set(peer) == {"podSelector"} for peer in rule["from"])
    admitted = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert len(admitted) == len(REDIS_CLIENTS)
    for component in REDIS_CLIENTS:
        assert any(labels.items() <= pod_labels(component).items() for labels in admitted)
    # Each selector picks one component: none matches another's pods nor Redis'.
    for labels in admitted:
        matching = [c for c in REDIS_CLIENTS if labels.items() <= pod_labels(c).items()]
        assert len(matching) == 1, labels
        assert not labels.items() <= redis_pods["labels"].items()


def test_worker_metrics_listen_on_the_pods_address_in_the_cluster_only() -> None:
    """Loopback by default (Settings); the pod's address here, for Prometheus and the kubelet."""
    assert Settings.model_fields["worker_metrics_host"].default == "127.0.0.1"
    data = objects()[("ConfigMap", "isales-stats")]["data"]
    assert data["ISALES_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_only_pods_of_the_cluster_reach_the_workers_and_only_their_metrics_port() -> None:
    policy = objects()[("NetworkPolicy", "isales-stats-worker")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels("worker").items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {}}]  # no address from outside the cluster
    ports = {port["name"] for port in container("worker")["ports"]}
    assert ports == {"metrics"}


def test_notifier_runs_two_or_more_and_probes_its_metrics_port() -> None:
    """Notifiers share the due set's shards by lease: one alone would leave every campaign
    undelivered while it restarts. Its /readyz says whether Redis answers it (no Kafka)."""
    notifier = container("notifier")
    data = objects()[("ConfigMap", "isales-stats")]["data"]
    metrics_port = int(data["ISALES_NOTIFIER_METRICS_PORT"])
    assert {port["name"]: port["containerPort"] for port in notifier["ports"]} == {
        "metrics": metrics_port
    }
    assert notifier["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert notifier["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert notifier["args"][0] == "notifier"
    assert deployment("notifier")["spec"]["replicas"] >= 2
    annotations = deployment("notifier")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == data["ISALES_NOTIFIER_METRICS_PORT"]
    assert Settings.model_fields["notifier_metrics_host"].default == "127.0.0.1"
    assert data["ISALES_NOTIFIER_METRICS_HOST"] == "0.0.0.0"


def notifier_policy() -> Manifest:
    spec: Manifest = objects()[("NetworkPolicy", "isales-stats-notifier")]["spec"]
    return spec


def test_only_pods_of_the_cluster_reach_the_notifiers_and_only_their_metrics_port() -> None:
    policy = notifier_policy()
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels("notifier").items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {}}]


def test_notifiers_reach_redis_dns_and_public_addresses_on_443_only() -> None:
    redis_rule, dns_rule, internet_rule = notifier_policy()["egress"]
    redis_pods = objects()[("StatefulSet", "isales-stats-redis")]["spec"]["template"]["metadata"]
    (redis_peer,) = redis_rule["to"]
    assert set(redis_peer) == {"podSelector"}
    assert redis_peer["podSelector"]["matchLabels"].items() <= redis_pods["labels"].items()
    assert redis_rule["ports"] == [{"port": "redis", "protocol": "TCP"}]
    (dns_peer,) = dns_rule["to"]
    assert dns_peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {(p["port"], p["protocol"]) for p in dns_rule["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert internet_rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    blocks = [peer["ipBlock"] for peer in internet_rule["to"]]
    assert all(set(peer) == {"ipBlock"} for peer in internet_rule["to"])
    assert sorted(block["cidr"] for block in blocks) == ["0.0.0.0/0", "::/0"]
    excepted = [ipaddress.ip_network(cidr) for block in blocks for cidr in block["except"]]

    def reachable(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return not any(ip in network for network in excepted if network.version == ip.version)

    # What the notifier refuses to call (isales_stats/core/webhooks.py), the policy blocks too:
    # the ranges of a cluster's pods, services and nodes, and the cloud's metadata address.
    for address in (
        "10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1",
        "127.0.0.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "fd00::1", "fe80::1",
    ):  # fmt: skip
        assert not reachable(address), address
        if not address.startswith("100.64."):  # shared space: refused by the policy alone
            assert refused_address(address) is not None, address
    for address in ("8.8.8.8", "1.1.1.1", "93.184.216.34", "2001:4860:4860::8888"):
        assert reachable(address), address
