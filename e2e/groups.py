"""Helpers for the consumer-group tests: group members as separate processes (confluent-kafka,
kafka-python via group_member.py, or kcat -G), a sampler of committed offsets, and waits on
assignments.

Every member writes its observations to a file the test polls; nothing here sleeps to
synchronise, it waits on what the members report.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from helpers import admin, http_get, wait_until

MEMBER_SCRIPT = Path(__file__).resolve().parent / "group_member.py"

# Broker flags that make group tests fast: no initial rebalance delay, few offsets partitions.
GROUP_BROKER_ARGS = ("--group-initial-rebalance-delay-ms", "0", "--offsets-topic-num-partitions", "4",
                     "--log-cleaner-interval-ms", "300")


class MemberDied(AssertionError):
    """A member process ended without the test stopping it."""


def wait_for(cond, timeout: float, interval: float = 0.05, what: str = "condition"):
    """wait_until, except that a member dying fails at once instead of counting as "not yet"."""
    def guarded():
        try:
            return cond()
        except MemberDied as e:
            died.append(e)
            return True

    died: list[MemberDied] = []
    v = wait_until(guarded, timeout, interval=interval, what=what)
    if died:
        raise died[0]
    return v


class Member:
    """A group member process started with group_member.py; its JSON-line events are read from a file."""

    def __init__(self, out_dir: Path, name: str, bootstrap: str, topic: str, group: str, client: str = "confluent",
                 strategy: str = "range", instance_id: str | None = None, session_ms: int = 6000,
                 commit: str = "auto", rate: float = 0.0, batch: int = 500):
        cmd = [sys.executable, str(MEMBER_SCRIPT), "--client", client, "--bootstrap", bootstrap, "--topic", topic,
               "--group", group, "--client-id", f"e2e-{name}", "--strategy", strategy,
               "--session-ms", str(session_ms), "--commit", commit, "--rate", str(rate), "--batch", str(batch)]
        if instance_id:
            cmd += ["--instance-id", instance_id]
        self._spawn(cmd, Path(out_dir) / f"member-{name}.jsonl", Path(out_dir) / f"member-{name}.stderr", name)

    def _spawn(self, cmd: list[str], out_path: Path, err_path: Path, name: str) -> None:
        self.name = name
        self.out_path, self.err_path = out_path, err_path
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self._pos = 0
        self._buf = b""
        self.assignment: set[int] | None = None  # latest reported assignment
        self.n_assign = 0  # how many times partitions were assigned (rebalances seen)
        self.assignments: list[tuple[float, set[int]]] = []
        self.consumed: list[tuple[int, int, str | None]] = []
        self.commits: dict[int, int] = {}  # partition -> highest acknowledged commit
        self.closed = False
        self.stopped_by_test = False

    def _new_lines(self) -> list[bytes]:
        with open(self.out_path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        self._pos += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return lines

    def refresh(self) -> "Member":
        """Read events written since the last call."""
        for line in self._new_lines():
            if line.strip():
                self._event(json.loads(line))
        return self

    def _event(self, ev: dict) -> None:
        kind = ev["ev"]
        if kind == "assignment":
            self.assignment = set(ev["parts"])
            self.n_assign = ev["n_assign"]
            self.assignments.append((ev["t"], set(ev["parts"])))
        elif kind == "recs":
            self.consumed.extend((p, o, v) for p, o, v in ev["recs"])
        elif kind == "commit":
            for p, o in ev["offs"].items():
                self.commits[int(p)] = max(self.commits.get(int(p), -1), o)
        elif kind == "closed":
            self.closed = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 60.0) -> int:
        """SIGTERM: the member closes its consumer (commit + LeaveGroup) and exits."""
        self.stopped_by_test = True
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.refresh()
        return rc

    def kill9(self) -> None:
        self.stopped_by_test = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.refresh()

    def check_running(self) -> None:
        """Fail at once if the process ended without the test stopping it."""
        if not self.stopped_by_test and self.proc.poll() is not None:
            raise MemberDied(f"member {self.name} exited {self.proc.returncode} on its own; "
                             f"stderr:\n{self.stderr()[-3000:]}")

    def stop(self) -> None:
        self.stopped_by_test = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} alive={self.alive()} assignment={self.assignment}>"


class KcatMember(Member):
    """`kcat -G GROUP TOPIC`: records come from stdout, rebalances from kcat's stderr notices."""

    ASSIGN_RE = re.compile(rb"rebalanced[^\n]*?: (assigned|revoked): ([^\n]*)\n")  # whole lines only

    def __init__(self, out_dir: Path, name: str, bootstrap: str, topic: str, group: str, session_ms: int = 6000):
        cmd = ["kcat", "-b", bootstrap, "-G", group, "-u", "-f", "R\t%p\t%o\t%s\n",
               "-X", f"client.id=e2e-{name}", "-X", f"session.timeout.ms={session_ms}",
               "-X", "heartbeat.interval.ms=500", "-X", "auto.commit.interval.ms=200",
               "-X", "auto.offset.reset=earliest", "-X", "reconnect.backoff.max.ms=500", topic]
        self._spawn(cmd, Path(out_dir) / f"kcat-{name}.stdout", Path(out_dir) / f"kcat-{name}.stderr", name)
        self._err_pos = 0

    def refresh(self) -> "KcatMember":
        lines = self._new_lines()
        for line in lines:
            parts = line.split(b"\t", 3)
            if len(parts) == 4 and parts[0] == b"R":
                self.consumed.append((int(parts[1]), int(parts[2]), parts[3].decode()))
        err = self.err_path.read_bytes()
        for m in self.ASSIGN_RE.finditer(err, self._err_pos):
            parts = {int(x) for x in re.findall(rb"\[(\d+)\]", m.group(2))}
            if m.group(1) == b"assigned":
                self.n_assign += 1
                self.assignment = parts
            else:
                self.assignment = set()
            self.assignments.append((time.time(), set(self.assignment)))
            self._err_pos = m.end()
        return self


def disjoint_cover(members: list[Member], partitions: int) -> bool:
    """True when every live member reports a non-empty assignment, pairwise disjoint, covering all partitions."""
    for m in members:
        m.check_running()
    live = [m.refresh() for m in members if m.alive()]
    if not live or any(not m.assignment for m in live):
        return False
    total = sum(len(m.assignment) for m in live)
    union = set().union(*(m.assignment for m in live))
    return total == partitions and union == set(range(partitions))


def wait_disjoint_cover(members: list[Member], partitions: int, timeout: float = 60.0, what: str = "") -> float:
    """Wait until the live members split all partitions between them; returns the seconds it took."""
    t0 = time.monotonic()
    try:
        wait_for(lambda: disjoint_cover(members, partitions), timeout, interval=0.05,
                   what=f"{partitions} partitions split between {len([m for m in members if m.alive()])} "
                        f"members {what}")
    except MemberDied:
        raise
    except AssertionError as e:
        detail = "\n".join(f"  {m!r}\n    stderr tail: {m.stderr()[-600:]}" for m in members)
        raise AssertionError(f"{e}\nmembers:\n{detail}") from None
    return time.monotonic() - t0


def consumed_keys(members: list[Member]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for m in members:
        m.refresh()
        out.update((p, o) for p, o, _ in m.consumed)
    return out


def wait_all_consumed(members: list[Member], produced: set[tuple[int, int]], timeout: float = 90.0) -> None:
    def done():
        for m in members:
            m.check_running()
        return produced <= consumed_keys(members)

    try:
        wait_for(done, timeout, interval=0.1, what="every produced record to be consumed")
    except MemberDied:
        raise
    except AssertionError as e:
        missing = sorted(produced - consumed_keys(members))
        raise AssertionError(f"{e}; {len(missing)} missing, first {missing[:10]}; members {members}") from None


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 10.0
                      ) -> dict[int, int]:
    """The group's committed offsets (partition -> offset; -1001 = none) read with AdminClient."""
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    a = admin(bootstrap)  # keep the client alive until the future resolves
    res = a.list_consumer_group_offsets([req], request_timeout=timeout)[group].result(timeout)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.error is None}


class CommittedOffsetSampler:
    """Reads a group's committed offsets every `interval` seconds in a thread and records any
    partition whose committed offset went backwards."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int, interval: float = 0.2):
        self.bootstrap, self.group, self.topic, self.partitions = bootstrap, group, topic, partitions
        self.interval = interval
        self.samples = 0
        self.latest: dict[int, int] = {}
        self.regressions: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "CommittedOffsetSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                offs = committed_offsets(self.bootstrap, self.group, self.topic, self.partitions, timeout=5)
            except Exception:  # noqa: BLE001 - the broker may be restarting; try again
                offs = None
            if offs is not None:
                self.samples += 1
                for p, o in offs.items():
                    if o < 0:
                        continue
                    prev = self.latest.get(p)
                    if prev is not None and o < prev:
                        self.regressions.append((p, prev, o))
                    self.latest[p] = max(o, prev if prev is not None else o)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def metric_values(admin_url: str, name: str) -> dict[frozenset, float]:
    """Samples of one Prometheus metric: {frozenset of (label, value): value}."""
    status, text = http_get(f"{admin_url}/metrics")
    assert status == 200, f"/metrics answered {status}"
    out = {}
    pat = re.compile(r"^" + re.escape(name) + r"(?:\{([^}]*)\})?\s+(\S+)$")
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            out[labels] = float(m.group(2))
    return out


def metric(admin_url: str, name: str, **labels: str) -> float | None:
    want = set(labels.items())
    for ls, v in metric_values(admin_url, name).items():
        if want <= ls:
            return v
    return None
