"""Runs the runnel-streams example applications (`weather`, `payments`) as real processes and
reads what they wrote with third-party clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition

from conftest import REPO_ROOT
from groups import committed_offsets
from helpers import http_get, wait_until

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HTTP_RE = re.compile(r"interactive queries served address=(\S+)")


def examples_dir() -> Path:
    return Path(os.environ.get("RUNNEL_STREAMS_EXAMPLES_DIR", REPO_ROOT / "target" / "debug" / "examples"))


class StreamsApp:
    """One process of an example application; its stderr goes to a file per start."""

    def __init__(self, example: str, args: list[str], log_dir: Path):
        self.binary = str(examples_dir() / example)
        self.args = list(args)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.http: str | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{Path(self.binary).name}-{self.starts}.log"

    def start(self) -> "StreamsApp":
        assert os.access(self.binary, os.X_OK), (
            f"{self.binary} not found; build with `cargo build -p runnel-streams --examples`")
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([self.binary, *self.args], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env)
        if any(a == "--http" for a in self.args):
            m = wait_until(lambda: HTTP_RE.search(self.log()), timeout=60,
                           what=f"the HTTP address in {self.log_path}")
            self.http = m.group(1)
        return self

    def log(self) -> str:
        return ANSI.sub("", self.log_path.read_text(errors="replace")) if self.log_path.exists() else ""

    def all_logs(self) -> str:
        return "".join(ANSI.sub("", (self.log_dir / f"{Path(self.binary).name}-{i}.log").read_text(errors="replace"))
                       for i in range(1, self.starts + 1))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def get(self, path: str) -> tuple[int, object]:
        status, body = http_get(f"http://{self.http}{path}")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def tasks(self) -> list[str]:
        status, body = self.get("/tasks")
        return body if status == 200 else []

    def metric(self, name: str) -> float:
        """The sum of every series of metric `name` on /metrics."""
        _, text = http_get(f"http://{self.http}/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


def read_committed(bootstrap: str, topic: str, partitions: int, timeout: float = 120.0) -> dict[int, list]:
    """Every committed record of `topic` (read_committed, up to the end of each partition)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-streams-reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: dict[int, list] = {p: [] for p in range(partitions)}
        at_end: set[int] = set()
        end = time.monotonic() + timeout
        while len(at_end) < partitions:
            assert time.monotonic() < end, f"reading {topic} timed out; at end: {sorted(at_end)}"
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out[m.partition()].append((m.key(), m.value(), m.offset()))
        return out
    finally:
        c.close()


def data_ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """One past the offset of the last committed data record of each partition (a transactional
    writer's last commit marker comes after it; a consumer's committed offset stops before it)."""
    return {p: (recs[-1][2] + 1 if recs else 0)
            for p, recs in read_committed(bootstrap, topic, partitions).items()}


def wait_consumed(bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 180.0,
                  apps: list[StreamsApp] = ()) -> None:
    """Wait until `group` committed, on every partition of `topic`, the offset after its last
    committed data record."""
    ends = data_ends(bootstrap, topic, partitions)

    def done():
        for app in apps:
            assert app.alive() or app.proc.returncode == 0, f"app exited with {app.proc.returncode}:\n{app.log()[-4000:]}"
        got = committed_offsets(bootstrap, group, topic, partitions)
        return all(got.get(p, -1) >= ends[p] for p in range(partitions) if ends[p] > 0)

    wait_until(done, timeout=timeout, interval=1.0, what=f"{group} to commit the end of {topic} ({ends})")
