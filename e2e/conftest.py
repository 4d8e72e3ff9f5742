"""Harness for the end-to-end suite: runs real `runnel-broker` processes.

Binaries come from RUNNEL_BROKER_BIN / RUNNEL_CLI_BIN (default: target/debug in this
repository). A broker is started on port 0, its ready line is read from stdout, and
stdout/stderr go to files under the test's tmp dir so tests can assert on logs. Every
broker a test starts is stopped in teardown, whatever the test did to it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_RE = re.compile(r"runnel-broker ready kafka=(\S+):(\d+) admin=(\S+):(\d+)")
READY_DEADLINE_S = 60.0


def broker_bin() -> str:
    return os.environ.get("RUNNEL_BROKER_BIN", str(REPO_ROOT / "target" / "debug" / "runnel-broker"))


def cli_bin() -> str:
    return os.environ.get("RUNNEL_CLI_BIN", str(REPO_ROOT / "target" / "debug" / "runnel"))


class BrokerExited(RuntimeError):
    """The broker process ended before printing its ready line."""


class Broker:
    """One `runnel-broker` process over a data directory that outlives restarts."""

    def __init__(self, data_dir: Path, log_dir: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, binary: str | None = None):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.extra_args = list(extra_args or [])
        self.env = dict(os.environ)
        self.env.setdefault("RUST_LOG", "info")
        self.env.setdefault("RUST_BACKTRACE", "1")
        if env:
            self.env.update(env)
        self.binary = binary or broker_bin()
        # Address the listeners bind on (a cluster broker in a network namespace uses its own).
        self.bind_host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.admin_host = "127.0.0.1"
        self.admin_port: int | None = None
        self.stdout_path: Path | None = None
        self.stderr_path: Path | None = None

    # -- addresses -------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "broker not started"
        return f"{self.host}:{self.port}"

    @property
    def admin(self) -> str:
        assert self.admin_port is not None, "broker not started"
        return f"{self.admin_host}:{self.admin_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- lifecycle ---------------------------------------------------------------
    def controller_listen(self) -> str:
        """The metadata quorum listener: any free port (a single broker is a one-voter quorum
        and has no peers that need to find it again after a restart)."""
        return "127.0.0.1:0"

    def command(self, listen: str, admin_listen: str) -> list[str]:
        return [self.binary, "--data-dir", str(self.data_dir), "--listen", listen,
                "--admin-listen", admin_listen, "--controller-listen", self.controller_listen(),
                *self.extra_args]

    def spawn(self, listen: str = "127.0.0.1:0", admin_listen: str = "127.0.0.1:0") -> subprocess.Popen:
        """Start the process without waiting for readiness (for start-up failure tests)."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = self.log_dir / f"broker-{self.starts}.stdout"
        self.stderr_path = self.log_dir / f"broker-{self.starts}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(listen, admin_listen), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=self.env)
        return self.proc

    def start(self, listen: str = "127.0.0.1:0", admin_listen: str = "127.0.0.1:0",
              deadline_s: float = READY_DEADLINE_S) -> "Broker":
        self.spawn(listen, admin_listen)
        self._wait_ready(deadline_s)
        return self

    def _wait_ready(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            text = self.stdout_path.read_text(errors="replace")
            m = READY_RE.search(text)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                self.admin_host, self.admin_port = m.group(3), int(m.group(4))
                return
            if self.proc.poll() is not None:
                raise BrokerExited(
                    f"runnel-broker exited with {self.proc.returncode} before its ready line;\n"
                    f"stdout:\n{text}\nstderr (tail):\n{self.stderr()[-4000:]}")
            time.sleep(0.02)
        raise TimeoutError(f"runnel-broker printed no ready line within {deadline_s}s;\n"
                           f"stderr (tail):\n{self.stderr()[-4000:]}")

    def restart(self, deadline_s: float = 90.0) -> "Broker":
        """Start again over the same data dir on the same Kafka port (retrying while the port is busy)."""
        assert self.port is not None, "restart needs a previous start"
        self.stop()
        port = self.port
        self.start_again(deadline_s)
        assert self.port == port, f"restarted broker bound {self.port}, wanted {port}"
        return self

    def start_again(self, deadline_s: float = 90.0) -> "Broker":
        """Start a stopped broker again on the Kafka port it had (retrying while the port is busy)."""
        assert self.port is not None, "start_again needs a previous start"
        port = self.port
        end = time.monotonic() + deadline_s
        while True:
            try:
                return self.start(listen=f"{self.bind_host}:{port}", admin_listen=f"{self.bind_host}:0",
                                  deadline_s=max(1.0, end - time.monotonic()))
            except BrokerExited as e:
                busy = "in use" in str(e).lower() or "addrinuse" in str(e).lower()
                if not busy or time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Make sure the process is gone (SIGTERM, then SIGKILL if it does not exit)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- observation -------------------------------------------------------------
    def stderr(self) -> str:
        """Stderr of the current (latest) process."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def all_stderr(self) -> str:
        return "".join((self.log_dir / f"broker-{i}.stderr").read_text(errors="replace")
                       for i in range(1, self.starts + 1)
                       if (self.log_dir / f"broker-{i}.stderr").exists())

    def rss_kib(self) -> int:
        return _proc_status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int:
        return _proc_status_kib(self.pid, "VmHWM")

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def segment_files(self, topic: str, partition: int) -> list[Path]:
        return sorted(self.partition_dir(topic, partition).glob("*.log"))

    def log_size(self, topic: str, partition: int) -> int:
        """Bytes in the partition's segment files. The cleaner and retention delete segments while
        this runs, so a file that vanishes between listing and stat counts as zero bytes."""
        total = 0
        for f in self.segment_files(topic, partition):
            try:
                total += f.stat().st_size
            except FileNotFoundError:
                pass
        return total


def _proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="session", autouse=True)
def _binaries_exist():
    for path in (broker_bin(),):
        if not os.access(path, os.X_OK):
            pytest.exit(f"broker binary not found at {path}; build with `cargo build --workspace --bins` "
                        f"or set RUNNEL_BROKER_BIN", returncode=3)


@pytest.fixture
def broker_factory(tmp_path):
    """Create and start brokers; each gets its own data dir unless one is given. With
    `listeners`, a ListenersBroker with those named listeners."""
    brokers: list[Broker] = []

    def make(*extra_args: str, data_dir: Path | None = None, start: bool = True,
             env: dict[str, str] | None = None, listeners: str | None = None) -> Broker:
        n = len(brokers) + 1
        dirs = (data_dir or tmp_path / f"data{n}", tmp_path / f"logs{n}", list(extra_args))
        b = ListenersBroker(listeners, *dirs, env=env) if listeners else Broker(*dirs, env=env)
        b.data_dir.mkdir(parents=True, exist_ok=True)
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in brokers:
        try:
            b.stop()
        except Exception as e:  # teardown must reach every broker
            print(f"stopping broker failed: {e}")


class ListenersBroker(Broker):
    """A broker with named listeners (`--listeners`) instead of `--listen` (the two cannot be
    combined). The first listener is the ready line's `kafka=`; every other one is printed on a
    line of its own, `runnel-broker listener NAME address=HOST:PORT`."""

    def __init__(self, listeners: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.listeners = listeners

    def command(self, listen: str, admin_listen: str) -> list[str]:
        return [self.binary, "--data-dir", str(self.data_dir), "--listeners", self.listeners,
                "--admin-listen", admin_listen, "--controller-listen", self.controller_listen(),
                *self.extra_args]

    def listener_address(self, name: str) -> str:
        """`host:port` of listener `name` in the current run."""
        line = re.compile(rf"runnel-broker listener {re.escape(name)} address=(\S+):(\d+)")
        m = wait_until(lambda: line.search(self.stdout_path.read_text(errors="replace")),
                       timeout=30, what=f"the {name} listener line on stdout")
        return f"{m.group(1)}:{m.group(2)}"


@pytest.fixture
def listeners_broker_factory(broker_factory):
    """Start brokers with named listeners: make(listeners, *extra_args, env=None)."""

    def make(listeners: str, *extra_args: str, env: dict[str, str] | None = None) -> ListenersBroker:
        return broker_factory(*extra_args, env=env, listeners=listeners)

    return make


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def cli():
    """Run the `runnel` CLI; returns a CompletedProcess with text output."""
    path = cli_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"runnel CLI binary not found at {path}; build with `cargo build --workspace --bins`")

    def run(*args: str, input: str | None = None, timeout: float = 60.0,
            check: bool = False) -> subprocess.CompletedProcess:
        cp = subprocess.run([path, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and cp.returncode != 0:
            raise AssertionError(f"runnel {' '.join(args)} exited {cp.returncode}\nstdout:\n{cp.stdout}\n"
                                 f"stderr:\n{cp.stderr}")
        return cp

    return run


__all__ = ["Broker", "BrokerExited", "wait_until", "cli_bin", "broker_bin"]
