"""The wheel as a user gets it: built, installed into a fresh venv outside the checkout, run.

Nothing the installed commands do may lean on the checkout: they run in a venv under the test's
temporary directory, from a working directory there, with no variable that leads back here
(PYTHONPATH, VIRTUAL_ENV, a PATH entry into .venv, ISALES_* of the developer). The stack they
start is a private one (its own directory and free ports): the developers' stack on the default
ports is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from isales_stats.client import CONTENT_TYPE, STATISTICS_PATH
from isales_stats.commands.stack.processes import port_is_open
from isales_stats.core.settings import Settings
from isales_stats.engine.scripts import COUNT_EVENTS_PARTS
from tests.support.ports import free_port, free_port_pair
from tests.support.waiting import wait_for, wait_for_http

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

# Every file of the package that is not Python: (package, resource) -> the file in the checkout.
PACKAGE_FILES = {
    ("isales_stats", "py.typed"): ROOT / "isales_stats" / "py.typed",
    **{
        ("isales_stats.engine", f"count_events/{part}"): ROOT / "engine" / "count_events" / part
        for part in COUNT_EVENTS_PARTS
    },
    ("isales_stats.engine", "read_statistics.lua"): ROOT / "engine" / "read_statistics.lua",
    ("isales_stats.engine.notifications", "sweep.lua"): (
        ROOT / "engine" / "notifications" / "sweep.lua"
    ),
    ("isales_stats.engine", "call-event.schema.json"): ROOT / "engine" / "call-event.schema.json",
    ("isales_stats.api", "static/live.html"): ROOT / "api" / "static" / "live.html",
    ("isales_stats.api", "static/counters.html"): ROOT / "api" / "static" / "counters.html",
    ("isales_stats.commands.stack", "pom.xml"): ROOT / "isales_stats/commands/stack/pom.xml",
}

# Left out of the copy the wheel is built from: what a build or a tool leaves behind. Building
# in the checkout itself would leave build/ and an egg-info there, and setuptools reuses build/
# on the next build, so a file deleted from the tree could still reach a later wheel.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "artifacts",
)  # fmt: skip


@dataclass(frozen=True)
class InstalledWheel:
    """A wheel of this tree installed into its own venv, and how to run what it installed."""

    wheel: Path
    venv: Path
    workdir: Path  # outside the checkout: the commands' working directory
    environment: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def command(self, *arguments: str) -> list[str]:
        """The console script the wheel installed, as a user on that venv types it."""
        return [str(self.venv / "bin" / "isales-stats"), *arguments]

    def run(
        self, command: list[str], settings: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.workdir, env={**self.environment, **(settings or {})},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def run_python(self, code: str, *arguments: str) -> Any:
        """Run ``code`` in the venv's interpreter; what it prints is JSON, returned decoded."""
        result = self.run([str(self.python), "-c", code, *arguments])
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def clean_environment(venv: Path) -> dict[str, str]:
    """This process's environment less everything that leads back to the checkout or its venv."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "VIRTUAL_ENV", "ISALES_", "COV_CORE_"))
        and str(ROOT) not in value
    }
    # java, mvn and redis-server are still found; no entry into the checkout's .venv is.
    path = [
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if str(ROOT) not in entry
    ]
    environment["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return environment


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT), "the venv must live outside the checkout"
    source, wheels, venv, workdir = (base / name for name in ("source", "wheels", "venv", "work"))
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    workdir.mkdir()
    environment = clean_environment(venv)

    def run(*command: str | Path, cwd: Path = workdir) -> None:
        result = subprocess.run(
            [str(part) for part in command], cwd=cwd, env=environment,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", ".", "-w", wheels, cwd=source)
    (wheel,) = wheels.glob("isales_stats-*.whl")
    # No pip inside (it would take longer than all the rest): this venv's pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    # The dependencies at the versions the checkout's venv has, from the same index: the test is
    # about what the wheel holds, not about a release of a dependency that came out today.
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    constraints = base / "constraints.txt"
    constraints.write_text(frozen.stdout)
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    run(*pip, "install", "--quiet", "--constraint", constraints, wheel)
    return InstalledWheel(wheel, venv, workdir, environment)


def test_the_wheel_holds_one_top_level_package(installed: InstalledWheel) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = archive.namelist()
    name, version = installed.wheel.name.split("-")[:2]
    assert {entry.split("/", 1)[0] for entry in names} == {name, f"{name}-{version}.dist-info"}
    for package, resource in PACKAGE_FILES:
        assert f"{package.replace('.', '/')}/{resource}" in names


# Run by the venv's interpreter: where each module named in argv imports from (null: nowhere).
WHERE_MODULES_ARE = """
import importlib, json, sys, sysconfig
found = {"site-packages": sysconfig.get_paths()["purelib"]}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.import_module(name).__file__
    except ModuleNotFoundError:
        found[name] = None
print(json.dumps(found))
"""

# Run by the venv's interpreter: the text of each [package, resource] of the JSON in argv.
READ_RESOURCES = """
import json, sys
from importlib.resources import files
wanted = json.loads(sys.argv[1])
texts = [files(package).joinpath(*name.split("/")).read_text() for package, name in wanted]
print(json.dumps(texts))
"""


def test_engine_and_api_exist_only_inside_the_package(installed: InstalledWheel) -> None:
    inside = ["isales_stats.engine.counting", "isales_stats.api.main"]
    found = installed.run_python(WHERE_MODULES_ARE, "engine", "api", *inside)
    assert found["engine"] is None
    assert found["api"] is None
    site_packages = Path(found["site-packages"]).resolve()
    assert site_packages.is_relative_to(installed.venv.resolve())
    for module in inside:
        location = Path(found[module]).resolve()
        assert location.is_relative_to(site_packages), location
        assert not location.is_relative_to(ROOT), location


def test_every_package_file_is_readable_through_importlib_resources(
    installed: InstalledWheel,
) -> None:
    read = installed.run_python(READ_RESOURCES, json.dumps(list(PACKAGE_FILES)))
    for (resource, checkout_file), text in zip(PACKAGE_FILES.items(), read, strict=True):
        assert text == checkout_file.read_text(), resource


def test_the_console_script_and_python_m_answer_help(installed: InstalledWheel) -> None:
    python_m = [str(installed.python), "-m", "isales_stats", "--help"]
    for command in (installed.command("--help"), python_m):
        result = installed.run(command)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: isales-stats")
        for subcommand in ("stack", "worker", "api", "publish"):
            assert subcommand in result.stdout


class Service:
    """An installed command left running (worker, api), its output kept in a log file."""

    def __init__(self, installed: InstalledWheel, settings: dict[str, str], log: Path) -> None:
        self.installed = installed
        self.settings = settings
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *arguments: str) -> Service:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.installed.command(*arguments), cwd=self.installed.workdir,
                env={**self.installed.environment, **self.settings},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def test_stack_worker_and_api_run_from_the_wheel(installed: InstalledWheel, tmp_path: Path) -> None:
    """stack up, an event published and counted by the worker, served by the API; stack down."""
    kafka_port, redis_port, api_port = free_port_pair(), free_port(), free_port()
    name = f"wheel{uuid.uuid4().hex[:8]}"
    settings = {
        "ISALES_STACK_DIR": str(tmp_path / "stack"),
        "ISALES_KAFKA_URL": f"kafka://127.0.0.1:{kafka_port}",
        "ISALES_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ISALES_CALL_EVENTS_TOPIC": f"{name}.call-events",
        "ISALES_DEAD_LETTER_TOPIC": f"{name}.dead-letter",
        "ISALES_WORKER_GROUP": f"{name}-group",
        "ISALES_KEY_PREFIX": f"test:{name}",
        "ISALES_WORKER_METRICS_PORT": "0",
        "ISALES_AUTH_ENABLED": "false",
        "ISALES_RATE_LIMIT_REQUESTS": "0",
        "ISALES_LIVE_PAGE_ENABLED": "true",  # live.html served from the installed package
    }
    developers = Settings()
    developers_ports = {port: port_is_open("127.0.0.1", port)
                        for port in (developers.kafka_port, developers.redis_port)}  # fmt: skip
    events = tmp_path / "events.jsonl"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    event = {"eventType": "data.added", "vdnId": 1, "campaignId": "C1", "batchId": "B1",
             "dataId": "d1", "occurredAt": now_ms}  # fmt: skip
    events.write_text(json.dumps(event) + "\n")
    url = f"http://127.0.0.1:{api_port}"
    worker = Service(installed, settings, tmp_path / "worker.log")
    api = Service(installed, settings, tmp_path / "api.log")

    def count_detail() -> list[dict[str, Any]]:
        answer = httpx.get(
            url + STATISTICS_PATH.format(vdn_id=1), headers={"Content-Type": CONTENT_TYPE}
        )
        detail: list[dict[str, Any]] = answer.json()["countDetail"]
        return detail

    try:
        up = installed.run(installed.command("stack", "up"), settings, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "redis: started" in up.stdout
        assert "kafka: started" in up.stdout
        status = installed.run(installed.command("stack", "status"), settings)
        assert status.returncode == 0, status.stdout  # 0: both answer (a PING, a metadata call)
        assert f"kafka://127.0.0.1:{kafka_port} running" in status.stdout
        assert f"redis://127.0.0.1:{redis_port} running" in status.stdout

        for command in (("topics",), ("publish", str(events))):
            result = installed.run(installed.command(*command), settings)
            assert result.returncode == 0, result.stdout + result.stderr
        worker.start("worker")
        api.start("api", "--port", str(api_port))
        wait_for_http(f"{url}/healthz", timeout=30)
        detail = wait_for(count_detail, timeout=60)
        assert detail, f"the worker did not count the event in time:\n{worker.log()}"
        campaign = detail[0]
        assert campaign["campaignId"] == "C1"
        assert (campaign["totalCount"], campaign["unCallCount"], campaign["dailyCount"]) == (
            1,
            1,
            1,
        )
        assert [batch["batchId"] for batch in campaign["batchDetail"]] == ["B1"]
        page = httpx.get(f"{url}/")
        assert page.status_code == 200
        assert page.content == PACKAGE_FILES["isales_stats.api", "static/live.html"].read_bytes()
    finally:
        api.stop()
        worker.stop()
        down = installed.run(installed.command("stack", "down"), settings, timeout=120)
    assert down.returncode == 0, down.stderr
    assert sorted(down.stdout.removeprefix("stopped: ").strip().split(", ")) == ["kafka", "redis"]
    assert not port_is_open("127.0.0.1", kafka_port)
    assert not port_is_open("127.0.0.1", redis_port)
    assert developers_ports == {port: port_is_open("127.0.0.1", port) for port in developers_ports}
