"""Redis for the local stack: Debian's redis-server, installed with apt-get when missing.

One server, as the product runs it. The Redis Cluster that tests/test_redis_cluster.py counts
on is made of these servers with cluster mode on (tests/support/redis_cluster.py).
"""

from __future__ import annotations

import shutil
import subprocess

import redis

from isales_stats.commands.stack.processes import (
    ManagedProcess,
    ServiceStatus,
    StackError,
    port_is_open,
    wait_until,
)
from isales_stats.core.settings import Settings

# Persistence for a write-heavy workload, the same in docker-compose.yml and deploy/k8s (tests
# compare them with this table; docs/operations.md, "Redis persistence", gives the reasoning):
# - the append-only file, fsynced every second: a restart keeps the counters; a power cut
#   loses at most about a second of writes, and the worker heals that by reading Kafka again
#   from the resume points that were lost with them (docs/architecture.md, "Exactly once");
# - no RDB snapshots: the AOF's base is one (aof-use-rdb-preamble), written at each rewrite;
# - a rewrite forks and writes the whole dataset to shrink what a restart replays. The default
#   threshold (64 MB) made the counting workload rewrite far too often
#   (docs/adr/0004-write-amplification.md; the rewrites per minute with these settings are in
#   docs/benchmarks.md, "Engine: one worker process"): rewrite when the AOF has doubled since
#   the last one and is at least 1 GB;
# - during a rewrite, no fsync of the growing AOF: the child's write of the dataset and the
#   parent's fsync compete for the disk, and the parent's would stall Redis' one thread. The
#   writes at risk are then those of the rewrite's duration, healed like a power cut's.
REDIS_PERSISTENCE = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": '""',
    "aof-use-rdb-preamble": "yes",
    "auto-aof-rewrite-percentage": "100",
    "auto-aof-rewrite-min-size": "1gb",
    "no-appendfsync-on-rewrite": "yes",
}


# Memory, the same in docker-compose.yml and deploy/k8s (tests compare them too): the counters
# must never be evicted (an evicted counter is a wrong answer, not a cache miss), so a full
# Redis refuses writes instead (noeviction). Counting then waits and retries, the events wait
# in Kafka, and nothing is lost (tests/test_redis_memory.py); the workers export how full Redis
# is, for the alert that comes first (docs/operations.md, "What to watch"). maxmemory is each
# deployment's own, sized to its machine (docs/capacity.md): the local stack's is this one.
REDIS_MEMORY = {"maxmemory-policy": "noeviction"}
LOCAL_MAXMEMORY = "2gb"

_CONFIG = (
    """\
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
dir {data_dir}
"""
    + "".join(f"{name} {value}\n" for name, value in REDIS_PERSISTENCE.items())
    + "".join(f"{name} {value}\n" for name, value in REDIS_MEMORY.items())
    + f"maxmemory {LOCAL_MAXMEMORY}\n"
)


class RedisServer:
    name = "redis"

    def __init__(self, settings: Settings, extra_config: str = "") -> None:
        self.extra_config = extra_config
        self.port = settings.redis_port
        self.home = settings.stack_dir / f"redis-{self.port}"
        self.process = ManagedProcess(
            pid_file=self.home / "redis.pid",
            log_file=self.home / "redis.log",
            marker=f"127.0.0.1:{self.port}",
        )

    def answering(self) -> bool:
        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
            with client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            self.name,
            f"redis://127.0.0.1:{self.port}",
            self.process.pid(),
            self.answering(),
            self.process.log_file,
        )

    def ensure_running(self) -> bool:
        """Start Redis unless something already answers there. True when we started it."""
        if self.answering():
            return False
        if port_is_open("127.0.0.1", self.port):
            raise StackError(f"port {self.port} is taken by something that is not Redis")
        binary = install_redis_server()
        data_dir = self.home / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = self.home / "redis.conf"
        config.write_text(_CONFIG.format(port=self.port, data_dir=data_dir) + self.extra_config)
        self.process.start([binary, str(config)])
        if not wait_until(self.answering, timeout=30, still_starting=self._starting):
            self.process.stop()
            raise StackError(
                f"Redis did not answer PING on port {self.port}; see {self.process.log_file}:\n"
                + self.process.tail()
            )
        return True

    def stop(self) -> bool:
        return self.process.stop()

    def _starting(self) -> bool:
        return self.process.pid() is not None


def install_redis_server() -> str:
    """The redis-server binary, installed from Debian's packages when it is missing."""
    binary = shutil.which("redis-server")
    if binary:
        return binary
    print("redis-server is missing: installing Debian's package (apt-get)...", flush=True)
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "redis-server"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    binary = shutil.which("redis-server")
    if not binary:
        raise StackError("redis-server is still missing after apt-get install redis-server")
    return binary
