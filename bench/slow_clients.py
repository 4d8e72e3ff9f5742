#!/usr/bin/env python3
"""Broker memory under many idle and many slow ("slowloris") Kafka connections.

Usage: python3 bench/slow_clients.py [--broker target/release/runnel-broker] [--connections 1000]

Not part of CI. Starts a fresh broker per phase (temporary data directory, free
ports) and reports its resident memory from /proc/PID/status:

  idle: N connections that send nothing;
  slow: N connections that each send a 4-byte frame header claiming
        --claim bytes (default 104857600, the default max_request_bytes) and
        then trickle the body at --trickle bytes per second each;
  fill: --fill-connections connections that each claim --claim bytes, send
        --fill-bytes of the body as fast as the broker reads, then stall.

Idle and slow pages of a calloc'ed buffer are not resident until written, so
in the slow phase a broker that allocates the claimed size up front shows it in
VmPeak (virtual) rather than in RSS; the fill phase shows it in RSS.

For each phase: peak RSS (VmHWM), peak virtual size (VmPeak) and whether a
fresh client still gets an ApiVersions answer (and how fast) while the
connections are open. Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, VmPeak, VmSize of `pid` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmPeak", "VmSize"):
            out[key] = int(value.split()[0])
    return out


class Broker:
    def __init__(self, binary: str, log: Path):
        self.dir = tempfile.mkdtemp(prefix="runnel-slow-")
        self.port, self.admin = free_port(), free_port()
        env = dict(os.environ)
        # Every client connects from 127.0.0.1; brokers without the key ignore it.
        env["RUNNEL_MAX_CONNECTIONS_PER_IP"] = "100000"
        env["RUNNEL_MAX_CONNECTIONS"] = "100000"
        self.proc = subprocess.Popen(
            [
                binary,
                "--data-dir", self.dir,
                "--listen", f"127.0.0.1:{self.port}",
                "--admin-listen", f"127.0.0.1:{self.admin}",
                "--controller-listen", f"127.0.0.1:{free_port()}",
            ],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"broker did not become ready; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def api_versions_seconds(port: int, timeout: float) -> float | None:
    """Round trip of one ApiVersions v0 request on a new connection (None: no answer in time)."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        client_id = b"slow-bench"
        body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
        writer.write(struct.pack(">i", len(body)) + body)
        await writer.drain()
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), timeout))[0]
        await asyncio.wait_for(reader.readexactly(size), timeout)
        writer.close()
        return time.monotonic() - started
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return None


async def phase(
    broker: Broker,
    n: int,
    claim: int | None,
    trickle: int,
    seconds: float,
    fill: int,
    answer_timeout: float,
) -> dict:
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        conns.append((reader, writer))
        if claim is not None:
            writer.write(struct.pack(">i", claim))
    if fill:
        chunk = b"\0" * (1 << 20)
        for _, writer in conns:
            for _ in range(fill // len(chunk)):
                writer.write(chunk)
        # A broker that stops reading never drains it all: wait at most the phase.
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(w.drain()) for _, w in conns], timeout=seconds
        )
        for task in pending:
            task.cancel()
        for task in done:
            task.exception()  # a broker that closed the connection: expected
        trickle = 0
    peak_rss = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if claim is not None and trickle:
            for _, writer in conns:
                writer.write(b"\0" * trickle)
            await asyncio.gather(*(w.drain() for _, w in conns), return_exceptions=True)
        peak_rss = max(peak_rss, status(broker.proc.pid)["VmRSS"])
        await asyncio.sleep(1)
    answer = await api_versions_seconds(broker.port, answer_timeout)
    st = status(broker.proc.pid)
    closed = sum(1 for r, _ in conns if r.at_eof() or r.exception() is not None)
    for _, writer in conns:
        writer.close()
    return {
        "VmHWM_MiB": st["VmHWM"] / 1024,
        "VmRSS_peak_MiB": max(peak_rss, st["VmRSS"]) / 1024,
        "VmPeak_MiB": st["VmPeak"] / 1024,
        "api_versions_s": answer,
        "closed_by_broker": closed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=str(ROOT / "target/release/runnel-broker"))
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--claim", type=int, default=104857600, help="frame size each slow client claims")
    ap.add_argument("--trickle", type=int, default=4, help="body bytes per second per slow client")
    ap.add_argument("--seconds", type=float, default=20, help="how long each phase lasts")
    ap.add_argument("--fill-connections", type=int, default=40)
    ap.add_argument("--fill-bytes", type=int, default=50 << 20, help="body bytes each fill client sends")
    ap.add_argument("--answer-timeout", type=float, default=10,
                    help="how long the fresh ApiVersions client waits at the end of a phase")
    ap.add_argument("--phases", default="idle,slow,fill", help="comma-separated phases to run")
    ap.add_argument("--log", default="/tmp/slow_clients_broker.log")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.connections + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the broker inherits it

    log = Path(args.log)
    phases = (
        ("idle", args.connections, None, 0),
        ("slow", args.connections, args.claim, 0),
        ("fill", args.fill_connections, args.claim, args.fill_bytes),
    )
    for name, n, claim, fill in phases:
        if name not in args.phases.split(","):
            continue
        broker = Broker(args.broker, log)
        try:
            baseline = status(broker.proc.pid)["VmRSS"] / 1024
            result = asyncio.run(
                phase(broker, n, claim, args.trickle, args.seconds, fill, args.answer_timeout)
            )
        finally:
            broker.stop()
        print(f"{name}: {n} connections, broker RSS at start {baseline:.1f} MiB, "
              + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
