"""Raw Kafka frames for the hostile-input tests and the fuzz corpus: a recording TCP proxy that
sits between real clients and a broker, a finder for the record batches inside a captured frame,
seeded mutators that do what a hostile client would (bit flips, changed bytes, truncation,
extreme integers, huge length fields), and a replayer that sends mutated frames at a broker.

Everything here works on frames *without* their 4-byte size prefix, which is also the format of
the fuzz corpus (`broker/fuzz/corpus/request/*`). Tests may hand-encode protocol bytes; product
code may not.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

API_VERSIONS = 18
# Kafka frames and the metadata quorum's RPC frames both start with a 4-byte big-endian length.
MAX_CAPTURED_FRAME = 64 << 20


# -- recording proxy ---------------------------------------------------------------------------

@dataclass
class Captured:
    """One frame seen by the proxy. For Kafka traffic `api_key`/`api_version` are the request's
    (a response carries those of the request it answers); for raw traffic they are -1."""
    direction: str  # "request" (client -> server) or "response"
    api_key: int
    api_version: int
    frame: bytes
    connection: int


class RecordingProxy:
    """A TCP proxy on 127.0.0.1 that forwards byte-for-byte and records every length-prefixed frame.

    `kafka=True` matches each response to its request by correlation id (so a response is known
    by API key and version); `kafka=False` records frames in both directions as they are (the
    metadata quorum's RPC). The proxy can listen before it knows where to forward: connections
    wait until `upstream` is set, so a broker can be told to advertise the proxy's port.
    """

    def __init__(self, upstream: tuple[str, int] | None = None, kafka: bool = True):
        self.kafka = kafka
        self.frames: list[Captured] = []
        self._lock = threading.Lock()
        self._upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="recording-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._upstream_known: asyncio.Event | None = None
        self._connections = 0
        self._tasks: set[asyncio.Task] = set()
        self.port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "RecordingProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    @property
    def address(self) -> str:
        assert self.port is not None, "proxy not started"
        return f"127.0.0.1:{self.port}"

    def set_upstream(self, host: str, port: int) -> None:
        def _set():
            self._upstream = (host, port)
            assert self._upstream_known is not None
            self._upstream_known.set()
        self._loop.call_soon_threadsafe(_set)

    def stop(self) -> None:
        async def _close():
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> "RecordingProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def snapshot(self) -> list[Captured]:
        with self._lock:
            return list(self.frames)

    # -- inside the loop -------------------------------------------------------------------
    async def _listen(self) -> None:
        self._upstream_known = asyncio.Event()
        if self._upstream is not None:
            self._upstream_known.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._loop.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, c_reader, c_writer) -> None:
        self._connections += 1
        conn = self._connections
        try:
            await asyncio.wait_for(self._upstream_known.wait(), 60)
            s_reader, s_writer = await asyncio.open_connection(*self._upstream)
        except (OSError, asyncio.TimeoutError):
            c_writer.close()
            return
        # correlation id -> (api key, version) of requests not yet answered on this connection.
        pending: dict[int, tuple[int, int]] = {}
        up = asyncio.ensure_future(self._pump(c_reader, s_writer, "request", conn, pending))
        down = asyncio.ensure_future(self._pump(s_reader, c_writer, "response", conn, pending))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            for w in (c_writer, s_writer):
                w.close()

    async def _pump(self, reader, writer, direction: str, conn: int, pending: dict) -> None:
        while True:
            try:
                prefix = await reader.readexactly(4)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            (size,) = struct.unpack(">I", prefix)
            if size > MAX_CAPTURED_FRAME:
                return
            try:
                frame = await reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            self._record(direction, frame, conn, pending)
            writer.write(prefix + frame)
            try:
                await writer.drain()
            except ConnectionError:
                return

    def _record(self, direction: str, frame: bytes, conn: int, pending: dict) -> None:
        key = version = -1
        if self.kafka and direction == "request" and len(frame) >= 8:
            key, version, corr = struct.unpack_from(">hhi", frame, 0)
            pending[corr] = (key, version)
        elif self.kafka and direction == "response" and len(frame) >= 4:
            (corr,) = struct.unpack_from(">i", frame, 0)
            key, version = pending.pop(corr, (-1, -1))
        with self._lock:
            self.frames.append(Captured(direction, key, version, frame, conn))


# -- record batches inside a frame -------------------------------------------------------------

BATCH_HEADER = 61


@functools.lru_cache(maxsize=4096)
def batch_spans(frame: bytes) -> tuple[tuple[int, int], ...]:
    """(start, end) of every complete magic-v2 record batch inside `frame` (a Produce request, a
    Fetch response), found by its layout and confirmed by its CRC-32C, so no per-version Produce
    codec is needed."""
    out = []
    pos = 0
    n = len(frame)
    while pos + BATCH_HEADER <= n:
        if frame[pos + 16] == 2:
            (batch_len,) = struct.unpack_from(">i", frame, pos + 8)
            end = pos + 12 + batch_len
            if batch_len >= BATCH_HEADER - 12 and end <= n:
                (crc,) = struct.unpack_from(">I", frame, pos + 17)
                if crc32c.crc32c(frame[pos + 21:end]) == crc:
                    out.append((pos, end))
                    pos = end
                    continue
        pos += 1
    return tuple(out)


def record_batches_in(frame: bytes) -> list[bytes]:
    """The bytes of every record batch inside `frame` (see `batch_spans`)."""
    return [bytes(frame[s:e]) for s, e in batch_spans(bytes(frame))]


# -- mutations ---------------------------------------------------------------------------------

# API key, version and correlation id: mutated only rarely, so most mutants reach a decoder.
PROTECTED = 8
EXTREME_I32 = [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x40000000, 0x00FFFFFF, 0x10000000]
EXTREME_I16 = [0x7FFF, 0x8000, 0xFFFF, 0x4000]
# An unsigned varint of 0x7fffffff: a compact (flexible-version) length or count that is absurd.
HUGE_VARINT = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x07])


@functools.lru_cache(maxsize=4096)
def _length_fields(frame: bytes, start: int) -> tuple[tuple[int, str], ...]:
    """Offsets that plausibly hold a length or an array count: a big-endian int32 or int16 whose
    value fits in the bytes after it, or a one-byte compact length (varint) that does."""
    out: list[tuple[int, str]] = []
    n = len(frame)
    for i in range(start, n - 1):
        rest = n - i
        if i + 4 <= n:
            (v,) = struct.unpack_from(">i", frame, i)
            if 0 < v <= rest - 4:
                out.append((i, "i32"))
        (v16,) = struct.unpack_from(">h", frame, i)
        if 0 < v16 <= rest - 2:
            out.append((i, "i16"))
        if 1 < frame[i] < 0x80 and frame[i] - 1 <= rest - 1:
            out.append((i, "varint"))
    return tuple(out)


def mutate(frame: bytes, rnd: random.Random) -> tuple[bytes, str]:
    """One hostile variant of `frame` and a short description of what was done."""
    b = bytearray(frame)
    lo = PROTECTED if len(b) > PROTECTED and rnd.random() > 0.02 else 0
    if len(b) <= lo:
        return bytes(b) + rnd.randbytes(rnd.randint(1, 16)), "append"
    spans = batch_spans(bytes(frame))
    if spans and rnd.random() < 0.3:
        return _mutate_batch(b, rnd.choice(spans), rnd)
    kind = rnd.choice(["bitflip", "byte", "truncate", "i32", "i16", "length", "length", "insert"])
    if kind == "bitflip":
        flips = rnd.randint(1, 4)
        for _ in range(flips):
            i = rnd.randrange(lo, len(b))
            b[i] ^= 1 << rnd.randrange(8)
        return bytes(b), f"bitflip x{flips}"
    if kind == "byte":
        i = rnd.randrange(lo, len(b))
        b[i] = rnd.randrange(256)
        return bytes(b), f"byte@{i}"
    if kind == "truncate":
        cut = rnd.randrange(max(lo, 1), len(b))
        return bytes(b[:cut]), f"truncate@{cut}"
    if kind in ("i32", "i16"):
        width = 4 if kind == "i32" else 2
        if len(b) - width < lo:
            return bytes(b[:-1]), "truncate-last"
        i = rnd.randint(lo, len(b) - width)
        value = rnd.choice(EXTREME_I32 if width == 4 else EXTREME_I16)
        b[i:i + width] = value.to_bytes(width, "big")
        return bytes(b), f"{kind}={value:#x}@{i}"
    if kind == "length":
        fields = _length_fields(bytes(frame), lo)
        if not fields:
            return bytes(b[:-1]), "truncate-last"
        i, how = rnd.choice(fields)
        if how == "i32":
            b[i:i + 4] = b"\x7f\xff\xff\xff"
        elif how == "i16":
            b[i:i + 2] = b"\x7f\xff"
        else:
            b[i:i + 5] = HUGE_VARINT
        return bytes(b), f"length-{how}@{i}"
    # insert: a run of random or repeated bytes in the middle (shifts everything after it)
    i = rnd.randint(lo, len(b))
    chunk = rnd.randbytes(rnd.randint(1, 8)) if rnd.random() < 0.5 else bytes([rnd.choice([0, 0xFF])]) * 8
    b[i:i] = chunk
    return bytes(b), f"insert{len(chunk)}@{i}"


def _mutate_batch(b: bytearray, span: tuple[int, int], rnd: random.Random) -> tuple[bytes, str]:
    """Damage a record batch *behind* its CRC and then fix the CRC, so the damage gets past the
    broker's CRC check to what parses records: attributes (compression), record count, the
    varint lengths of records, keys, values and headers, and compressed payloads."""
    start, end = span
    crc_from = start + 21
    what = rnd.choice(["count", "attributes", "bitflip", "varint", "i32"])
    if what == "count":
        b[start + 57:start + 61] = rnd.choice(EXTREME_I32).to_bytes(4, "big")
    elif what == "attributes":
        b[start + 22] = (b[start + 22] & ~0x07) | rnd.randrange(8)  # compression codec bits
    elif what == "bitflip":
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(crc_from, end)
            b[i] ^= 1 << rnd.randrange(8)
    elif what == "varint" and end - (start + 61) >= 5:
        i = rnd.randrange(start + 61, end - 4)
        b[i:i + 5] = rnd.choice([HUGE_VARINT, bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), bytes([0x01] * 5)])
    else:
        i = rnd.randrange(crc_from, end - 3)
        b[i:i + 4] = rnd.choice(EXTREME_I32).to_bytes(4, "big")
    b[start + 17:start + 21] = struct.pack(">I", crc32c.crc32c(bytes(b[crc_from:end])))
    return bytes(b), f"batch-{what}@{start}"


def mutants(frames: list[bytes], count: int, seed: int) -> list[tuple[bytes, str]]:
    """`count` mutated frames drawn from `frames` with a fixed seed (one to three mutations each)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        frame = rnd.choice(frames)
        what = []
        for _ in range(rnd.choice([1, 1, 1, 2, 3])):
            frame, w = mutate(frame, rnd)
            what.append(w)
        out.append((frame, "+".join(what)))
    return out


# -- replay ------------------------------------------------------------------------------------

def api_versions_v0(correlation_id: int) -> bytes:
    """A whole ApiVersions v0 request frame, with its size prefix (header v1, no client id)."""
    payload = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, -1)
    return struct.pack(">i", len(payload)) + payload


@dataclass
class ReplayStats:
    sent: int = 0
    answered: int = 0       # the sentinel after the frame came back: the connection survived it
    closed: int = 0         # the broker closed the connection (the refusal we expect for bad frames)
    slow: int = 0           # no sentinel within the per-frame deadline (a parked JoinGroup, a long fetch)
    refused: int = 0        # could not connect at all: the broker is gone or not accepting
    last: list[tuple[bytes, str]] = field(default_factory=list)


class _Conn:
    def __init__(self, host: str, port: int):
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.host, self.port = host, port

    async def ensure(self) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None


async def _replay(host: str, port: int, items: list[tuple[bytes, str]], concurrency: int,
                  deadline_s: float, alive, stats: ReplayStats) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for n, item in enumerate(items):
        queue.put_nowait((n, item))
    stop = asyncio.Event()

    async def worker(w: int) -> None:
        conn = _Conn(host, port)
        while not stop.is_set():
            try:
                n, (frame, what) = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            # A sentinel id no mutant uses (mutated headers keep their bytes 4..8 almost always).
            sentinel = -(1 + n)
            try:
                await conn.ensure()
            except OSError:
                stats.refused += 1
                if not alive():
                    stop.set()
                continue
            stats.sent += 1
            stats.last.append((frame, what))
            del stats.last[:-concurrency * 2]
            try:
                conn.writer.write(struct.pack(">i", len(frame)) + frame + api_versions_v0(sentinel))
                await conn.writer.drain()
                got = await asyncio.wait_for(_read_until(conn.reader, sentinel), deadline_s)
            except asyncio.TimeoutError:
                stats.slow += 1
                conn.drop()
                continue
            except (OSError, asyncio.IncompleteReadError):
                stats.closed += 1
                conn.drop()
                if not alive():
                    stop.set()
                continue
            if got:
                stats.answered += 1
            else:
                stats.closed += 1
                conn.drop()
        conn.drop()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def _read_until(reader: asyncio.StreamReader, sentinel: int) -> bool:
    """Read responses until the sentinel's (True) or the end of the connection (False)."""
    while True:
        try:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            frame = await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return False
        if size >= 4 and struct.unpack_from(">i", frame, 0)[0] == sentinel:
            return True


def replay(bootstrap: str, items: list[tuple[bytes, str]], alive, concurrency: int = 8,
           deadline_s: float = 3.0) -> ReplayStats:
    """Send each mutated frame, then an ApiVersions sentinel, over `concurrency` reused
    connections; reconnect whenever the broker closes one. Stops early once `alive()` is false."""
    host, port = bootstrap.rsplit(":", 1)
    stats = ReplayStats()
    asyncio.run(_replay(host, int(port), items, concurrency, deadline_s, alive, stats))
    return stats


def api_versions_answers(bootstrap: str, timeout: float = 10.0) -> bool:
    """A fresh connection gets an ApiVersions v0 answer with error code 0."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(api_versions_v0(4711))
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        body = _recv_exact(s, size)
    corr, err = struct.unpack_from(">ih", body, 0)
    return corr == 4711 and err == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


# -- corpus files ------------------------------------------------------------------------------

def corpus_name(data: bytes) -> str:
    """libFuzzer's naming: the SHA-1 of the content (so equal inputs dedupe themselves)."""
    return hashlib.sha1(data).hexdigest()


def load_corpus(directory: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()]


def write_corpus(directory: Path, inputs: list[bytes]) -> int:
    """Writes each input as <sha1>; returns how many were new."""
    directory.mkdir(parents=True, exist_ok=True)
    new = 0
    for data in inputs:
        p = directory / corpus_name(data)
        if not p.exists():
            p.write_bytes(data)
            new += 1
    return new

