"""A Redis Cluster of the test's own: 3 masters and 3 replicas from the local ``redis-server``.

Every node listens on a free port (and a free cluster-bus port, ``--cluster-port``)
with its files in its own folder under a temporary directory; ``redis-cli --cluster
create`` joins them. Nodes are stopped by their pids, never by name. The shared
Redis on 6379 is never touched.

:meth:`Cluster.kill` SIGKILLs one node (a failover test's master) and
:meth:`Cluster.restart` starts it again from its own folder, where its
``nodes.conf`` makes it rejoin, as a replica of whichever node took over.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _servers import free_port, start_redis, stop_server

NODE_TIMEOUT_MS = 1000
"""How long a master may be unreachable before its replica takes over (the failover)."""


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


@dataclass
class Cluster:
    """The running nodes: port -> (bus port, process)."""

    directory: Path
    nodes: dict[int, tuple[int, subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The store URL naming every node (redis-py reads the slot map from any)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.nodes)

    def client(self) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode("127.0.0.1", port) for port in self.alive()]
        return RedisCluster(startup_nodes=nodes)

    def alive(self) -> list[int]:
        return [port for port, (_, proc) in self.nodes.items() if proc.poll() is None]

    def start_node(self, port: int, bus: int) -> None:
        folder = self.directory / str(port)
        proc = start_redis(
            folder,
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--cluster-port",
            str(bus),
        )
        self.nodes[port] = (bus, proc)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (by its pid)."""
        proc = self.nodes[port][1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def restart(self, port: int) -> None:
        self.start_node(port, self.nodes[port][0])

    def info(self, port: int, section: str) -> dict[str, str]:
        import redis

        with redis.Redis(port=port, socket_timeout=2) as node:
            if section == "cluster":
                raw = node.execute_command("CLUSTER", "INFO")
            else:
                raw = node.execute_command("INFO", section)
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line[1:])

    def master_of(self, name: str) -> int:
        """The port of the master serving key ``name`` now."""
        client = self.client()
        try:
            return int(client.get_node_from_key(name).port)
        finally:
            client.close()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every live node says the cluster is ok and every master has an online replica."""
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            try:
                problem = self._problem()
            except Exception as exc:  # a node still starting
                problem = repr(exc)
            if not problem:
                return
            time.sleep(0.1)
        raise AssertionError(f"the cluster did not become healthy in {timeout}s: {problem}")

    def _problem(self) -> str:
        masters = 0
        for port in self.alive():
            if self.info(port, "cluster").get("cluster_state") != "ok":
                return f"node {port} is not ok"
            replication = self.info(port, "replication")
            if replication.get("role") == "master":
                masters += 1
                if replication.get("connected_slaves") != "1" or "online" not in replication.get(
                    "slave0", ""
                ):
                    return f"master {port} has no online replica"
        return "" if masters == 3 else f"{masters} masters"

    def stop(self) -> None:
        for _, proc in self.nodes.values():
            stop_server(proc)


def start_cluster(directory: Path) -> Cluster:
    """Six nodes, joined as 3 masters with one replica each, healthy; stop() ends them."""
    cli = shutil.which("redis-cli")
    if shutil.which("redis-server") is None or cli is None:
        unavailable("redis-server and redis-cli are needed for the Redis Cluster tests")
    assert cli is not None
    cluster = Cluster(directory)
    try:
        for _ in range(6):
            cluster.start_node(free_port(), free_port())
        done = subprocess.run(
            [
                *(cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster.nodes)),
                *("--cluster-replicas", "1", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster
