"""docker-compose.yml and deploy/Dockerfile: the containerised stack says what the local one says.

The structure is checked with PyYAML everywhere. The file is also loaded the way compose loads it
(schema validation, interpolation, normalisation, consistency checks): by ``docker compose config``
where the compose plugin is installed, and elsewhere by deploy/compose-check, a small Go command
over compose-go, the library the plugin itself uses. It is built here with ``go build`` into the
user's cache and rebuilt when its sources change (there is no Docker engine where this project is
built, and neither validator needs one).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from isales_stats.commands.stack.kafka import broker_properties
from isales_stats.commands.stack.redis import LOCAL_MAXMEMORY, REDIS_MEMORY, REDIS_PERSISTENCE
from isales_stats.core.settings import Settings
from tests.support.compose import (
    COMPOSE_FILE,
    command_of,
    depends_on,
    environment_of,
    load_compose,
    services,
    with_defaults,
)
from tests.support.grafana import REDIS_PLUGIN_VERSION

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_CHECK = ROOT / "deploy" / "compose-check"
COMPOSE_CHECK_SOURCES = ("go.mod", "go.sum", "main.go")
GO_BUILD_TIMEOUT = 300

KAFKA_IMAGE = "apache/kafka:4.3.1"
SERVICES = {"kafka", "redis", "topics-init", "worker", "api", "notifier", "prometheus", "grafana"}
# The services that run the project's own image with its settings.
ISALES_SERVICES = ("worker", "api", "notifier")
DEPENDENCY_CONDITIONS = {"service_healthy", "service_completed_successfully"}
# Variables whose values must come from the operator, never from a default in the file.
SECRETS = {"ISALES_AUTH_KEYS"}
GRAFANA_PASSWORD = "GRAFANA_ADMIN_PASSWORD"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
# ISALES_* names docker-compose.yml may set before Settings reads them; the issue that adds
# each field to Settings removes its name here (auth_keys and auth_enabled have arrived).
SETTINGS_ADDED_BY_LATER_ISSUES: set[str] = set()
# Properties of the local broker that name its own addresses and directories, not its behaviour.
ADDRESS_PROPERTIES = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
}


def one_shot_services() -> set[str]:
    """Services others wait to *finish*: they run once and exit, so they need no healthcheck."""
    return {
        name
        for service in services().values()
        for name, spec in depends_on(service).items()
        if spec.get("condition") == "service_completed_successfully"
    }


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings from their defaults alone: no ISALES_* variable or .env file of the developer's."""
    for name in list(os.environ):
        if name.upper().startswith("ISALES_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # Settings reads .env from the working directory
    return Settings()


def test_every_service_is_declared() -> None:
    assert set(services()) >= SERVICES


def test_kafka_is_the_local_stacks_broker() -> None:
    kafka = services()["kafka"]
    environment = environment_of(kafka)
    assert kafka["image"] == KAFKA_IMAGE
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert environment[name] == "1", name
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"


def test_kafka_environment_matches_every_local_broker_property() -> None:
    """Each property of the local stack's broker, spelled as the image's KAFKA_* variable."""
    environment = environment_of(services()["kafka"])
    local = broker_properties(
        node_id=1,
        broker_port=9092,
        controller_port=9093,
        voters="1@127.0.0.1:9093",
        log_dir=Path("/unused"),
    )
    expected = {
        "KAFKA_" + key.replace(".", "_").upper(): value
        for key, value in local.items()
        if key not in ADDRESS_PROPERTIES
    }
    declared = {name: environment.get(name) for name in expected}
    assert declared == expected


def test_redis_persists_and_fills_like_the_local_stack() -> None:
    redis = services()["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = command_of(redis)
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    # maxmemory is the host's to size (REDIS_MAXMEMORY), the local stack's by default.
    assert with_defaults(options.pop("--maxmemory")) == LOCAL_MAXMEMORY
    assert options == {
        f"--{name}": "" if value == '""' else value
        for name, value in (REDIS_PERSISTENCE | REDIS_MEMORY).items()
    }


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                host_ip = str(port).rsplit(":", 2)[0] if str(port).count(":") == 2 else None
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond 127.0.0.1"


def test_topics_init_creates_the_settings_topics(default_settings: Settings) -> None:
    topics_init = services()["topics-init"]
    assert topics_init["image"] == KAFKA_IMAGE
    script = with_defaults(command_of(topics_init)[-1]).replace("\\\n", " ")
    creations = [shlex.split(line) for line in script.splitlines() if "kafka-topics.sh" in line]
    for words in creations:
        assert words[0] == "/opt/kafka/bin/kafka-topics.sh"
        assert {"--create", "--if-not-exists"} <= set(words), words
    by_topic = {options["--topic"]: options for options in map(_options, creations)}
    assert set(by_topic) == {default_settings.call_events_topic, default_settings.dead_letter_topic}
    call_events = by_topic[default_settings.call_events_topic]
    assert call_events["--partitions"] == str(default_settings.call_events_partitions)
    retention_ms = default_settings.call_events_retention_hours * 3_600_000
    assert call_events["--config"] == f"retention.ms={retention_ms}"  # engine/topics.py's
    for options in by_topic.values():
        assert options["--replication-factor"] == "1"
        assert options["--bootstrap-server"] == "kafka:9092"


def _options(words: list[str]) -> dict[str, str]:
    """``--name value`` pairs of a command line; flags without a value are left out."""
    found: dict[str, str] = {}
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word.startswith("--") and following and not following.startswith("--"):
            found[word] = following
    return found


def test_worker_runs_two_replicas() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert command_of(worker) == ["worker"]


def test_notifiers_run_two_replicas_on_redis_alone() -> None:
    """Two share the due set's shards by lease (as in deploy/k8s); a notifier has no Kafka, so
    it waits for Redis only, and its healthcheck asks its /readyz on its metrics port."""
    notifier = services()["notifier"]
    assert notifier["deploy"]["replicas"] >= 2
    assert command_of(notifier)[0] == "notifier"
    assert depends_on(notifier) == {"redis": {"condition": "service_healthy"}}
    assert "ports" not in notifier, "a notifier takes no request from outside"
    environment = environment_of(notifier)
    assert environment["ISALES_NOTIFIER_METRICS_HOST"] == "0.0.0.0"
    port = environment["ISALES_NOTIFIER_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(notifier["healthcheck"]["test"])
    assert int(port) == Settings.model_fields["notifier_metrics_port"].default


def test_long_running_services_have_healthchecks() -> None:
    one_shot = one_shot_services()
    assert "topics-init" in one_shot
    for name, service in services().items():
        if name in one_shot:
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert healthcheck.get("test"), f"{name}'s healthcheck tests nothing"
        assert not healthcheck.get("disable"), f"{name}'s healthcheck is disabled"


def test_every_dependency_waits_on_a_condition() -> None:
    declared = services()
    for name, service in declared.items():
        for dependency, spec in depends_on(service).items():
            assert dependency in declared, f"{name} depends on unknown {dependency}"
            condition = spec.get("condition")
            assert condition in DEPENDENCY_CONDITIONS, f"{name} -> {dependency}: {condition}"
            if condition == "service_healthy":
                assert declared[dependency].get("healthcheck"), f"{dependency} has no healthcheck"


def test_worker_and_api_wait_for_what_they_use() -> None:
    conditions = {
        name: {dependency: spec["condition"] for dependency, spec in depends_on(service).items()}
        for name, service in services().items()
    }
    assert conditions["worker"] == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "topics-init": "service_completed_successfully",
    }
    assert conditions["api"]["redis"] == "service_healthy"


def test_worker_api_and_notifier_share_the_isales_environment() -> None:
    shared = load_compose()["x-isales-environment"]
    assert isinstance(shared, dict)
    for name in ISALES_SERVICES:
        assert environment_of(services()[name]) == environment_of({"environment": shared}), name


def test_service_urls_use_the_local_stack_ports(default_settings: Settings) -> None:
    """Hosts differ (service names in compose, 127.0.0.1 locally); the ports must not."""
    for name in ISALES_SERVICES:
        environment = environment_of(services()[name])
        in_compose = Settings(
            kafka_url=environment["ISALES_KAFKA_URL"],
            redis_url=environment["ISALES_REDIS_URL"],
        )
        assert in_compose.kafka_port == default_settings.kafka_port == 9092, name
        assert in_compose.redis_port == default_settings.redis_port == 6379, name


def test_every_isales_variable_is_a_setting() -> None:
    named = set(re.findall(r"\bISALES_[A-Z0-9_]+", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert named
    unknown = {
        name
        for name in named
        if (field := name.removeprefix("ISALES_").lower()) not in Settings.model_fields
        and field not in SETTINGS_ADDED_BY_LATER_ISSUES
    }
    assert not unknown, f"not fields of Settings: {sorted(unknown)}"


def test_the_later_settings_allow_list_is_still_needed() -> None:
    arrived = SETTINGS_ADDED_BY_LATER_ISSUES & set(Settings.model_fields)
    assert not arrived, f"now in Settings, drop from SETTINGS_ADDED_BY_LATER_ISSUES: {arrived}"


def test_secrets_must_be_supplied() -> None:
    for name in ISALES_SERVICES:
        environment = environment_of(services()[name])
        for secret in SECRETS:
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", environment[secret]), (
                f"{name}: {secret} must be written ${{{secret}:?message}}"
            )


def test_grafana_is_pinned_with_the_redis_plugin() -> None:
    grafana = services()["grafana"]
    image, _, tag = str(grafana["image"]).partition(":")
    assert image == "grafana/grafana-oss"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a Grafana release, not {tag!r}"
    environment = environment_of(grafana)
    plugins = dict(item.split() for item in environment["GF_INSTALL_PLUGINS"].split(","))
    # The version whose queries tests/support/grafana.py emulates, not whatever is newest.
    assert plugins["redis-datasource"] == REDIS_PLUGIN_VERSION
    assert re.fullmatch(
        rf"\$\{{{GRAFANA_PASSWORD}:\?[^}}]+\}}", environment["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert depends_on(grafana) == {"redis": {"condition": "service_healthy"}}


def _bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (sources starting with ./)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_grafana_mounts_the_provisioning_of_deploy_grafana() -> None:
    grafana = services()["grafana"]
    mounts = _bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    provider_file = GRAFANA_PROVISIONING / "dashboards" / "isales-stats.yaml"
    providers = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
    assert providers
    for provider in providers:
        source = mounts[provider["options"]["path"]]
        assert sorted(source.glob("*.json")), f"no dashboards in {source}"
    home = environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, _, file = home.rpartition("/")
    assert (mounts[folder] / file).is_file(), home


def test_grafana_reads_the_redis_the_workers_write() -> None:
    datasources_file = GRAFANA_PROVISIONING / "datasources" / "redis.yaml"
    declared = yaml.safe_load(datasources_file.read_text(encoding="utf-8"))
    assert declared["apiVersion"] == 1
    (source,) = [item for item in declared["datasources"] if item["type"] == "redis-datasource"]
    assert source["access"] == "proxy"
    assert source["jsonData"]["client"] == "standalone"
    grafana_url = urlsplit(source["url"])
    worker_url = urlsplit(environment_of(services()["worker"])["ISALES_REDIS_URL"])
    assert grafana_url.scheme == worker_url.scheme == "redis"
    assert (grafana_url.hostname, grafana_url.port) == (worker_url.hostname, worker_url.port)
    assert worker_url.path in {"", "/", "/0"}, "the plugin reads database 0"


def test_the_image_ships_the_live_page() -> None:
    """The wheel the Dockerfile builds carries api/static (package data), and the context too."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["isales_stats.api"]
    static = sorted((ROOT / "api" / "static").iterdir())
    assert static
    for path in static:
        assert any(path.match(pattern) for pattern in patterns), f"{path} is not package data"
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    assert not {"api", "api/static", "api/static/*", "*.html", "isales_stats"} & set(ignored)


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    instructions = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    users = [line.split(None, 1)[1] for line in instructions if line.upper().startswith("USER ")]
    assert len(froms) >= 2
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["isales-stats"]' in instructions


def test_dockerignore_keeps_secrets_and_history_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".env", "tests", "docs"} <= patterns


AUTH_KEYS = "ak1:sk1 vdns=1;7,ak2:sk2 vdns=*"
ADMIN_PASSWORD = "grafana-admin-password"
# Every variable compose requires (${VAR:?message}), with a value for the runs that supply them.
REQUIRED = {"ISALES_AUTH_KEYS": AUTH_KEYS, GRAFANA_PASSWORD: ADMIN_PASSWORD}

# The command line that loads a compose file and prints the resolved project as YAML.
Validator = Callable[[Path], list[str]]


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return docker if probe.returncode == 0 else None


def _go() -> str:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        pytest.fail(
            "neither the docker compose plugin nor Go (1.19 or newer) is installed: Go is needed "
            "to build deploy/compose-check, which validates docker-compose.yml without Docker "
            "(`make install` installs Debian's golang-go)"
        )
    return go


def _compose_check() -> Path:
    """deploy/compose-check built into the user's cache, once for each version of its sources."""
    digest = hashlib.sha256()
    for name in COMPOSE_CHECK_SOURCES:
        digest.update(name.encode() + b"\0" + (COMPOSE_CHECK / name).read_bytes() + b"\0")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = cache / "isales-stats" / "compose-check"
    binary = directory / f"compose-check-{digest.hexdigest()[:16]}"
    if os.access(binary, os.X_OK):
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{binary.name}.{os.getpid()}.partial"
    result = subprocess.run(
        [_go(), "build", "-mod=readonly", "-trimpath", "-buildvcs=false", "-o", str(partial), "."],
        cwd=COMPOSE_CHECK,
        # GOTOOLCHAIN=local: build with the installed Go rather than download another one.
        env={**os.environ, "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        timeout=GO_BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"go build of deploy/compose-check failed:\n{result.stderr}"
    partial.replace(binary)  # atomic: a concurrent run sees the whole binary or none
    for stale in directory.glob("compose-check-*"):
        if stale.name != binary.name and not stale.name.endswith(".partial"):
            stale.unlink(missing_ok=True)
    return binary


@pytest.fixture(scope="module")
def validator() -> Validator:
    """``docker compose config`` where the plugin is installed, else deploy/compose-check."""
    docker = _compose_plugin()
    if docker is not None:
        return lambda file: [docker, "compose", "-f", str(file), "config"]
    binary = _compose_check()
    return lambda file: [str(binary), str(file)]


def _validate(
    command: list[str], environment: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_accepts_the_file(validator: Validator) -> None:
    environment = {**os.environ, **REQUIRED}
    result = _validate(validator(COMPOSE_FILE), environment, ROOT)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert isinstance(resolved, dict), result.stdout
    assert set(resolved["services"]) == set(services())
    for name in ISALES_SERVICES:
        assert environment_of(resolved["services"][name])["ISALES_AUTH_KEYS"] == AUTH_KEYS, name
    grafana = environment_of(resolved["services"]["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == ADMIN_PASSWORD


def test_compose_requires_exactly_the_known_secrets() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert required == set(REQUIRED)


@pytest.mark.parametrize("secret", sorted(REQUIRED))
def test_compose_refuses_the_file_without_a_secret(
    validator: Validator, tmp_path: Path, secret: str
) -> None:
    """The ``:?`` of a secret is interpolated: unset, compose stops with the file's message.

    The file is validated from an empty directory, so that no .env of the developer's supplies the
    variable; the other secrets are given, so that this one is the reason.
    """
    copy = tmp_path / COMPOSE_FILE.name
    copy.write_text(COMPOSE_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if name != secret}
    environment.update({name: value for name, value in REQUIRED.items() if name != secret})
    result = _validate(validator(copy), environment, tmp_path)
    assert result.returncode != 0, result.stdout
    # What compose says when a ${VAR:?message} variable is unset: the message from the file.
    missing = re.search(rf"\$\{{{secret}:\?([^}}]+)\}}", COMPOSE_FILE.read_text(encoding="utf-8"))
    assert missing is not None, f"{secret} is not written ${{{secret}:?message}}"
    assert secret in result.stderr, result.stderr
    assert missing.group(1) in result.stderr, result.stderr


def test_the_image_runs_the_newest_python_the_project_supports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    newest = max(
        (
            classifier.rsplit(" :: ", 1)[1]
            for classifier in project["classifiers"]
            if classifier.startswith("Programming Language :: Python :: 3.")
        ),
        key=lambda version: int(version.split(".")[1]),
    )
    assert f"<3.{int(newest.split('.')[1]) + 1}" in project["requires-python"]
    froms = [
        line.split()[1]
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    ]
    assert froms == [f"python:{newest}-slim"] * 2
