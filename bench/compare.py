#!/usr/bin/env python3
"""Issue 16's table for one or two runnel-broker builds, side by side, with the native load
generator (bench/loadgen, `runnel-loadgen`).

    cargo build --release -p runnel-server -p runnel-loadgen
    python3 bench/compare.py --broker-bin target/release/runnel-broker \\
        --baseline-bin /path/to/previous/runnel-broker     # full run: minutes per build
    python3 bench/compare.py --broker-bin target/release/runnel-broker --quick   # shorter runs

For each broker binary, in this order (every broker on port 0, data in a temp dir deleted at
the end, every process stopped):

- single broker: dd's fsync'd sequential write rate in the data directory's filesystem, then
  `runnel-loadgen run` at full speed (acks=all, 1 KiB values, 3 partitions): produce MB/s and
  its ratio to dd; the same paced at 50 MB/s on a new topic: ack latency p50/p99 (send →
  delivery report, librdkafka); `runnel-loadgen consume` of the first topic with one consumer.
- three brokers (three runnel-broker processes; 1 and 2 join through 0's controller
  listener, as `runnel dev --brokers 3` does), topics with replication factor 3: produce at full
  speed and paced at 50 MB/s.
- scale: a fresh broker; N partitions as N/100 topics of 100 partitions created with librdkafka's
  AdminClient, --create-batch topics per CreateTopics request; open file descriptors
  (/proc/PID/fd) and RSS (VmRSS) after creating them and after one acks=all record to every
  partition; graceful stop (SIGTERM → exit); restart to ready (process start → the ready line,
  /readyz answering 200 and Metadata showing every partition with a leader); the same after
  kill -9. Restarts reuse the first start's ports.

Figures of one run are comparable with each other; the disk's fsync rate varies between runs,
which is why the produce row is also given as a ratio to dd measured just before it.
Needs `pip install -r e2e/requirements.txt` (confluent-kafka, for the admin and scale parts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import dd_write_rate, proc_status_kib  # noqa: E402

READY_RE = re.compile(r"runnel-broker ready kafka=(\S+) admin=(\S+) controller=(\S+)")


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Broker:
    """One runnel-broker process; `start` may be called again after a stop or a kill."""

    def __init__(self, binary: str, data_dir: Path, node_id: int | None = None, seeds: list[str] | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.node_id = node_id
        self.seeds = seeds or []
        self.proc: subprocess.Popen | None = None
        self.addrs: tuple[str, str, str] | None = None  # kafka, admin, controller
        self.starts = 0
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 300.0) -> float:
        """Starts the process and waits for its ready line; returns seconds from spawn to it."""
        self.starts += 1
        out = self.data_dir.parent / f"{self.data_dir.name}.stdout.{self.starts}"
        err = self.data_dir.parent / f"{self.data_dir.name}.stderr.{self.starts}"
        kafka, admin, ctrl = self.addrs or ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
        cmd = [self.binary, "--data-dir", str(self.data_dir), "--listen", kafka, "--admin-listen", admin,
               "--controller-listen", ctrl]
        if self.node_id is not None:
            cmd += ["--node-id", str(self.node_id)]
        if self.seeds:
            cmd += ["--seeds", ",".join(self.seeds)]
        self.out_path = out
        t0 = time.monotonic()
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, env={**os.environ, "RUST_LOG": "warn"})
        self.t_spawn = t0
        end = t0 + timeout
        while True:
            m = READY_RE.search(out.read_text(errors="replace"))
            if m:
                self.addrs = (m.group(1), m.group(2), m.group(3))
                return time.monotonic() - t0
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"broker did not print its ready line (exit {self.proc.poll()}); see {err}")
            time.sleep(0.01)

    @property
    def bootstrap(self) -> str:
        assert self.addrs
        return self.addrs[0]

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def readyz(self) -> bool:
        assert self.addrs
        try:
            with urllib.request.urlopen(f"http://{self.addrs[1]}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 300.0) -> float:
        """SIGTERM; returns seconds until the process exited. After `timeout` it is killed and
        `killed` says so."""
        self.killed = False
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.killed = True
        return time.monotonic() - t0

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_mib(self) -> float:
        return (proc_status_kib(self.pid, "VmRSS") or 0) / 1024


def wait_until(cond, timeout: float, what: str, step: float = 0.02):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def all_leaders(bootstrap: str, topics: dict[str, int]) -> bool:
    """Metadata lists every topic with its partition count, each partition with a leader."""
    from confluent_kafka.admin import AdminClient
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2}).list_topics(timeout=30)
    except Exception:  # noqa: BLE001 - the broker is not answering yet
        return False
    for name, n in topics.items():
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != n:
            return False
        if any(p.leader < 0 or p.error is not None for p in t.partitions.values()):
            return False
    return True


def wait_ready(b: Broker, topics: dict[str, int], timeout: float = 600.0) -> float:
    """From process spawn until ready line, /readyz 200 and every partition led; seconds."""
    def alive_and(cond):
        def check():
            if b.proc is not None and b.proc.poll() is not None:
                raise RuntimeError(f"the broker exited ({b.proc.returncode}) before it was ready")
            return cond()
        return check
    wait_until(alive_and(b.readyz), timeout, f"/readyz of {b.addrs[1] if b.addrs else '?'}")
    wait_until(alive_and(lambda: all_leaders(b.bootstrap, topics)), timeout, "every partition to have a leader",
               step=0.05)
    return time.monotonic() - b.t_spawn


class Loadgen:
    def __init__(self, binary: str, verbose: bool):
        self.binary = binary
        self.verbose = verbose

    def __call__(self, *args: str) -> dict:
        cmd = [self.binary, *args, "--json"] + ([] if self.verbose else ["-q"])
        log("runnel-loadgen " + " ".join(args))
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if self.verbose else subprocess.PIPE,
                            text=True)
        if cp.returncode != 0:
            raise RuntimeError(f"runnel-loadgen failed ({cp.returncode}): {cp.stderr}\n{cp.stdout}")
        return json.loads(cp.stdout.strip().splitlines()[-1])


def single_broker(binary: str, root: Path, lg: Loadgen, a, r: dict) -> None:
    b = Broker(binary, root / "single")
    try:
        b.start()
        if a.dd_mib > 0:
            log(f"dd {a.dd_mib} MiB conv=fdatasync in {b.data_dir}")
            r["dd_mb_s"] = dd_write_rate(b.data_dir, a.dd_mib)
        common = ["-b", b.bootstrap, "--partitions", "3", "--replication-factor", "1", "--record-size",
                  str(a.record_size), "--acks", "all", "--producers", str(a.producers)]
        s = lg("run", *common, "--topic", "cmp-max", "--duration", str(a.seconds))
        r["produce_mb_s"] = s["produce"]["mb_s"]
        r["produce_ack_p99_ms"] = s["ack_latency"]["p99_ms"]
        s = lg("run", *common, "--topic", "cmp-paced", "--duration", str(a.latency_seconds),
               "--rate", str(a.rate), "--linger-ms", str(a.latency_linger_ms))
        r["paced_p50_ms"] = s["ack_latency"]["p50_ms"]
        r["paced_p99_ms"] = s["ack_latency"]["p99_ms"]
        r["paced_p999_ms"] = s["ack_latency"]["p999_ms"]
        r["paced_mb_s"] = s["produce"]["mb_s"]
        s = lg("consume", "-b", b.bootstrap, "--topic", "cmp-max", "--consumers", "1")
        r["consume_mb_s"] = s["consume"]["mb_s"]
        r["consume_records"] = s["consume"]["records"]
    finally:
        b.stop()


def three_brokers(binary: str, root: Path, lg: Loadgen, a, r: dict) -> None:
    from confluent_kafka.admin import AdminClient
    brokers: list[Broker] = []
    try:
        for i in range(3):
            seeds = [brokers[0].addrs[2]] if i > 0 else []
            br = Broker(binary, root / f"cluster{i}", node_id=i, seeds=seeds)
            brokers.append(br)
            br.start()
        boot = ",".join(br.bootstrap for br in brokers)
        admin = AdminClient({"bootstrap.servers": boot, "log_level": 2})
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 3, 120, "3 brokers in Metadata", step=0.2)
        del admin
        common = ["-b", boot, "--partitions", "3", "--replication-factor", "3", "--record-size",
                  str(a.record_size), "--acks", "all", "--producers", str(a.producers)]
        s = lg("run", *common, "--topic", "cmp3-max", "--duration", str(a.seconds))
        r["rf3_produce_mb_s"] = s["produce"]["mb_s"]
        s = lg("run", *common, "--topic", "cmp3-paced", "--duration", str(a.latency_seconds),
               "--rate", str(a.rate), "--linger-ms", str(a.latency_linger_ms))
        r["rf3_paced_p50_ms"] = s["ack_latency"]["p50_ms"]
        r["rf3_paced_p99_ms"] = s["ack_latency"]["p99_ms"]
        r["rf3_paced_mb_s"] = s["produce"]["mb_s"]
    finally:
        for br in reversed(brokers):
            br.stop()


def create_partitions(bootstrap: str, partitions: int, batch: int, prefix: str) -> tuple[dict[str, int], float, str]:
    """N partitions as topics of 100; `batch` topics per CreateTopics request. Returns (topics,
    seconds until every request was answered, how requests were batched)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    per_topic = min(100, partitions)
    names = [f"{prefix}-{i:05d}" for i in range(partitions // per_topic)]
    # socket.timeout.ms caps how long librdkafka waits for any one response (default 60 s, at
    # most 300 s): keep --create-batch small enough for the slowest broker to answer in that.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2, "socket.timeout.ms": 300_000})
    t0 = time.monotonic()
    requests = 0
    for i in range(0, len(names), batch):
        chunk = names[i:i + batch]
        futs = admin.create_topics([NewTopic(n, per_topic, 1) for n in chunk], operation_timeout=300,
                                   request_timeout=300)
        for f in futs.values():
            f.result(330)
        requests += 1
    elapsed = time.monotonic() - t0
    how = f"{len(names)} topics x {per_topic} partitions in {requests} CreateTopics request(s) of <= {batch} topics"
    return {n: per_topic for n in names}, elapsed, how


def one_record_each(bootstrap: str, topics: dict[str, int]) -> float:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 2, "acks": "all", "linger.ms": 50,
                  "queue.buffering.max.messages": 1_000_000, "message.timeout.ms": 600_000})
    errors = []
    t0 = time.monotonic()
    for name, n in topics.items():
        for part in range(n):
            p.produce(name, value=b"x" * 100, partition=part,
                      on_delivery=lambda err, _m: errors.append(err) if err else None)
        p.poll(0)
    left = p.flush(600)
    if left or errors:
        raise RuntimeError(f"one record per partition: {left} undelivered, errors {errors[:3]}")
    return time.monotonic() - t0


def scale(binary: str, root: Path, a, r: dict, partitions: int, key: str, full: bool) -> None:
    b = Broker(binary, root / f"scale{partitions}")
    try:
        b.start()
        log(f"scale: creating {partitions} partitions")
        t0 = time.monotonic()
        topics, create_s, how = create_partitions(b.bootstrap, partitions, a.create_batch, "scale")
        wait_until(lambda: all_leaders(b.bootstrap, topics), 600, "every created partition to have a leader", 0.1)
        r[f"{key}_create_s"] = create_s
        r[f"{key}_create_led_s"] = time.monotonic() - t0
        r[f"{key}_create_how"] = how
        r[f"{key}_fds_created"] = b.fds()
        r[f"{key}_rss_created_mib"] = b.rss_mib()
        log(f"scale: one record to each of {partitions} partitions")
        r[f"{key}_one_each_s"] = one_record_each(b.bootstrap, topics)
        r[f"{key}_fds_written"] = b.fds()
        r[f"{key}_rss_written_mib"] = b.rss_mib()
        if not full:
            return
        log("scale: graceful stop")
        r[f"{key}_stop_s"] = b.stop(a.stop_timeout)
        if b.killed:
            # Not a graceful stop: the restart below then recovers from a crash.
            r["errors"].append(f"{key}: SIGTERM did not stop the broker in {a.stop_timeout:g} s; killed")
            r[f"{key}_stop_s"] = None
        log("scale: restart")
        b.start()
        r[f"{key}_restart_s"] = wait_ready(b, topics)
        r[f"{key}_rss_restarted_mib"] = b.rss_mib()
        r[f"{key}_fds_restarted"] = b.fds()
        log("scale: kill -9 and restart")
        b.kill9()
        b.start()
        r[f"{key}_recovery_s"] = wait_ready(b, topics)
    finally:
        # Everything is measured and the data is deleted next: no need for a second slow stop.
        b.kill9()


def measure(binary: str, a, lg: Loadgen) -> dict:
    """Every part for one binary; a part that fails is reported and the others still run."""
    r: dict = {"binary": binary, "errors": []}
    root = Path(tempfile.mkdtemp(prefix="runnel-compare-", dir=a.work_dir))
    parts = [
        ("single", lambda: single_broker(binary, root, lg, a, r)),
        ("rf3", lambda: three_brokers(binary, root, lg, a, r)),
        ("scale", lambda: a.scale_partitions > 0 and scale(binary, root, a, r, a.scale_partitions, "scale", True)),
        ("scale", lambda: a.scale_big > 0 and scale(binary, root, a, r, a.scale_big, "big", False)),
    ]
    try:
        for name, run in parts:
            if name not in a.parts:
                continue
            try:
                run()
            except Exception as e:  # noqa: BLE001 - report it and go on with the next part
                log(f"{name} failed on {binary}: {e}")
                r["errors"].append(f"{name}: {e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return r


# (label, function of results -> value or None, format, better: "up"/"down"/"")
def rows(a) -> list:
    n, big = f"{a.scale_partitions:,}", f"{a.scale_big:,}"
    size = "1 KiB" if a.record_size == 1024 else f"{a.record_size} B"

    def ratio(x, y):
        return lambda r: r[x] / r[y] if r.get(x) is not None and r.get(y) else None

    out = [
        ("dd fsync'd sequential write (MB/s)", lambda r: r.get("dd_mb_s"), "{:.0f}", ""),
        (f"single broker, acks=all, {size}, 3 partitions: produce (MB/s)", lambda r: r.get("produce_mb_s"),
         "{:.1f}", "up"),
        ("  produce / dd's fsync'd rate", ratio("produce_mb_s", "dd_mb_s"), "{:.2f}", "up"),
        (f"ack p50 at {a.rate:g} MB/s, single broker (ms)", lambda r: r.get("paced_p50_ms"), "{:.2f}", "down"),
        (f"ack p99 at {a.rate:g} MB/s, single broker (ms)", lambda r: r.get("paced_p99_ms"), "{:.2f}", "down"),
        ("3 brokers rf 3, acks=all: produce (MB/s)", lambda r: r.get("rf3_produce_mb_s"), "{:.1f}", "up"),
        (f"ack p99 at {a.rate:g} MB/s, 3 brokers, replication factor 3 (ms)", lambda r: r.get("rf3_paced_p99_ms"),
         "{:.2f}", "down"),
        ("3 brokers rf 3 / single, produce", ratio("rf3_produce_mb_s", "produce_mb_s"), "{:.2f}", "up"),
        ("consume, one native consumer (MB/s)", lambda r: r.get("consume_mb_s"), "{:.1f}", "up"),
        (f"{n} partitions: create, 100-partition topics (s)", lambda r: r.get("scale_create_s"), "{:.2f}", "down"),
        (f"{n} partitions: create until Metadata shows every leader (s)", lambda r: r.get("scale_create_led_s"),
         "{:.2f}", "down"),
        (f"{n} partitions: open fds after create", lambda r: r.get("scale_fds_created"), "{:,}", "down"),
        (f"{n} partitions: open fds after 1 record each", lambda r: r.get("scale_fds_written"), "{:,}", "down"),
        (f"{n} partitions: graceful stop (s)", lambda r: r.get("scale_stop_s"), "{:.2f}", "down"),
        (f"{n} partitions: restart to ready (s)", lambda r: r.get("scale_restart_s"), "{:.2f}", "down"),
        (f"{n} partitions: recovery after kill -9 to ready (s)", lambda r: r.get("scale_recovery_s"), "{:.2f}",
         "down"),
        (f"{n} partitions: RSS after create (MiB)", lambda r: r.get("scale_rss_created_mib"), "{:.1f}", "down"),
        (f"{n} partitions: RSS after 1 record each (MiB)", lambda r: r.get("scale_rss_written_mib"), "{:.1f}",
         "down"),
    ]
    if a.scale_big > 0:
        out += [
            (f"{big} partitions: create (s)", lambda r: r.get("big_create_s"), "{:.2f}", "down"),
            (f"{big} partitions: open fds after 1 record each", lambda r: r.get("big_fds_written"), "{:,}", "down"),
            (f"{big} partitions: RSS after create (MiB)", lambda r: r.get("big_rss_created_mib"), "{:.1f}", "down"),
            (f"{big} partitions: RSS after 1 record each (MiB)", lambda r: r.get("big_rss_written_mib"), "{:.1f}",
             "down"),
        ]
    return out


def table(a, new: dict, base: dict | None) -> str:
    def fmt(f, v):
        return "–" if v is None else f.format(v)

    lines = []
    if base is None:
        lines += ["| measurement | value |", "|---|---:|"]
        for label, get, f, _ in rows(a):
            lines.append(f"| {label} | {fmt(f, get(new))} |")
    else:
        lines += ["| measurement | new | baseline | new / baseline | better |", "|---|---:|---:|---:|:-:|"]
        for label, get, f, better in rows(a):
            x, y = get(new), get(base)
            q = f"{x / y:.2f}" if x is not None and y else "–"
            arrow = {"up": "higher", "down": "lower"}.get(better, "")
            lines.append(f"| {label} | {fmt(f, x)} | {fmt(f, y)} | {q} | {arrow} |")
    notes = [f"{new.get(k)}" for k in ("scale_create_how",) if new.get(k)]
    lines.append("")
    for who, r in (("new", new), ("baseline", base)):
        for e in (r or {}).get("errors", []):
            lines.append(f"- {who}: part failed: {e}")
    lines.append(f"Sizes: full-speed runs {a.seconds:g} s, paced runs {a.latency_seconds:g} s "
                 f"(linger.ms {a.latency_linger_ms}), "
                 f"{a.producers} producer client(s), dd {a.dd_mib} MiB. Create: {'; '.join(notes) or '–'}. "
                 f"Load average at the start: {a.load_start}; at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
                 f"on {os.cpu_count()} CPUs.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker-bin", default=str(REPO / "target/release/runnel-broker"))
    ap.add_argument("--baseline-bin", help="a previous build's runnel-broker, measured after --broker-bin")
    ap.add_argument("--loadgen", default=str(REPO / "target/release/runnel-loadgen"),
                    help="runnel-loadgen binary (cargo build --release -p runnel-loadgen)")
    ap.add_argument("--quick", action="store_true",
                    help="seconds, not minutes: 3 s runs, dd 256 MiB, 1,000 partitions")
    ap.add_argument("--seconds", type=float, help="full-speed produce runs (default 20, quick 3)")
    ap.add_argument("--latency-seconds", type=float, help="paced runs (default 15, quick 3)")
    ap.add_argument("--rate", type=float, default=50.0, help="paced rate in MB/s for the latency rows")
    ap.add_argument("--latency-linger-ms", type=int, default=1,
                    help="linger.ms of the paced runs (default 1, as OpenMessaging Benchmark's Kafka driver; "
                         "librdkafka's default of 5 ms adds up to 5 ms to every ack latency)")
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--producers", type=int, default=1, help="producer clients of runnel-loadgen")
    ap.add_argument("--dd-mib", type=int, help="MiB for dd (default 1024, quick 256; 0 skips)")
    ap.add_argument("--scale-partitions", type=int, help="partitions of the scale part (default 10,000, quick 1,000)")
    ap.add_argument("--scale-big", type=int, default=0, metavar="N",
                    help="also create N partitions on a fresh broker for fds and RSS (e.g. 100000)")
    ap.add_argument("--create-batch", type=int, default=10,
                    help="topics per CreateTopics request (default 10: 1,000 partitions per request; "
                         "librdkafka waits at most 300 s for one answer)")
    ap.add_argument("--stop-timeout", type=float, default=300.0,
                    help="seconds a broker may take to exit after SIGTERM before it is killed")
    ap.add_argument("--parts", default="single,rf3,scale", help="comma-separated subset of single,rf3,scale")
    ap.add_argument("--work-dir", help="parent of the temp data dirs (default: the system temp dir)")
    ap.add_argument("--json-out", help="also write every raw figure to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="show runnel-loadgen's per-second lines")
    a = ap.parse_args()
    a.seconds = a.seconds or (3.0 if a.quick else 20.0)
    a.latency_seconds = a.latency_seconds or (3.0 if a.quick else 15.0)
    a.dd_mib = a.dd_mib if a.dd_mib is not None else (256 if a.quick else 1024)
    a.scale_partitions = a.scale_partitions if a.scale_partitions is not None else (1000 if a.quick else 10_000)
    a.parts = set(a.parts.split(","))
    for b in [a.broker_bin, a.baseline_bin, a.loadgen]:
        if b and not os.access(b, os.X_OK):
            print(f"{b} is not an executable", file=sys.stderr)
            return 2
    a.load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    lg = Loadgen(a.loadgen, a.verbose)
    log(f"measuring {a.broker_bin}")
    new = measure(a.broker_bin, a, lg)
    base = None
    if a.baseline_bin:
        log(f"measuring baseline {a.baseline_bin}")
        base = measure(a.baseline_bin, a, lg)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"new": new, "baseline": base}, indent=2))
    print(table(a, new, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
