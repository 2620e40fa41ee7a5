"""Real moving parts for the swarm tests: `seedvault` child processes, a Range-capable web
seed, a TCP witness that records connection attempts, and published models.

Everything binds 127.0.0.1, every wait has a deadline, and every process or server is
stopped by whoever started it (the fixtures in test_swarm.py call `stop`/`close`).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.manifest import Manifest
from seedvault.signing import Envelope, PrivateKey, TrustedKey, TrustPolicy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def disk_bytes(directory: Path) -> int:
    """Bytes actually allocated under `directory` (libtorrent's files start out sparse)."""
    total = 0
    for p in directory.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file():
            total += st.st_blocks * 512
    return total


def tree_bytes(directory: Path) -> dict[str, bytes]:
    """Relative path -> contents of every file under `directory`."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ---- child processes -------------------------------------------------------------------


class Child:
    """`python -m seedvault --home HOME ARGS...`; its stdout JSON documents are read in a thread."""

    def __init__(self, home: Path, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seedvault", "--home", str(home), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        self._docs: queue.Queue[Any] = queue.Queue()
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_docs, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_lines, args=(self.proc.stderr,), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_docs(self, stream: IO[str] | None) -> None:
        buf = ""
        for line in stream or ():
            buf += line
            try:
                self._docs.put(json.loads(buf))
            except json.JSONDecodeError:
                continue
            buf = ""

    def _read_lines(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            self.stderr.append(line.rstrip())

    def describe(self) -> str:
        return f"`seedvault {' '.join(self.args[:2])}` (exit {self.proc.poll()}): " + " | ".join(self.stderr[-8:])

    def next_doc(self, timeout: float) -> dict[str, Any]:
        """The next JSON document the process printed; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                doc: dict[str, Any] = self._docs.get(timeout=0.2)
                return doc
            except queue.Empty:
                if self.proc.poll() is not None and self._docs.empty():
                    self._join_readers()
                    if self._docs.empty():
                        break
        raise AssertionError(f"no JSON report within {timeout} s from {self.describe()}")

    def _join_readers(self) -> None:
        for t in self._readers:
            t.join(timeout=5)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout} s: {self.describe()}") from None
        self._join_readers()
        return code

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reaped."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._join_readers()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


# ---- a web seed (BEP 19) -------------------------------------------------------------


class WebSeed:
    """aiohttp's static handler (Range support) on 127.0.0.1, in a thread with its own loop.

    Requests wait while the gate is closed, so a test decides when HTTP starts serving.
    """

    def __init__(self, root: Path, *, gate_open: bool = True) -> None:
        self.root = root
        self.requests = 0
        self.ranged = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._gate: asyncio.Event | None = None
        self._gate_open = gate_open
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> int:
        self._gate = asyncio.Event()
        if self._gate_open:
            self._gate.set()

        @web.middleware
        async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests += 1
            self.ranged += "Range" in request.headers
            assert self._gate is not None
            await asyncio.wait_for(self._gate.wait(), timeout=60)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[gate])
        app.router.add_static("/", self.root)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _open(self) -> None:
        assert self._gate is not None
        self._gate.set()

    def open(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._open()))

    def __enter__(self) -> WebSeed:
        self._thread.start()
        try:
            self.port = self._call(self._start())
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._runner is not None:
            self.open()  # release waiting requests so they finish before shutdown
            self._call(self._runner.cleanup())
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def web_root(directory: Path, manifest: Manifest, snapshot: Path) -> Path:
    """Lay out `directory/<torrent name>/<path>` as libtorrent asks a multi-file web seed."""
    base = directory / manifest.torrent_name
    for f in manifest.files:
        target = base / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(snapshot / f.path, target)
        except OSError:
            shutil.copyfile(snapshot / f.path, target)
    return directory


# ---- a witness for "no connection was opened" -----------------------------------------


class Witness:
    """A TCP listener on 127.0.0.1 that counts connection attempts (it never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.endpoint: tuple[str, int] = ("127.0.0.1", int(self.sock.getsockname()[1]))

    def connections(self, wait: float = 0.0) -> int:
        count = 0
        deadline = time.monotonic() + wait
        while True:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return count
            conn, _ = self.sock.accept()
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


# ---- published models -----------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """A model published into `home`'s vault, with its envelope written to a file."""

    home: Path
    ref: str
    envelope: Envelope
    envelope_path: Path
    manifest: Manifest
    snapshot: Path
    files: dict[str, bytes]  # the publisher's bytes, per manifest path


def trusting(key: PrivateKey, scope: str = "acme/*") -> TrustPolicy:
    return TrustPolicy().with_key(TrustedKey(key.public, "publisher", (scope,), "acme"))


def publish(home: Path, model_dir: Path, key: PrivateKey, name: str, version: str, piece_length: int,
            envelope_path: Path) -> Published:
    with Client(home) as client:
        client.save_policy(trusting(key))
        admitted = client.publish(model_dir, name=name, version=version, license="Apache-2.0", key=key,
                                  publisher="Acme", piece_length=piece_length)
    envelope_path.write_bytes(admitted.envelope.to_json())
    manifest = admitted.verdict.manifest
    return Published(home, manifest.ref, admitted.envelope, envelope_path, manifest, admitted.snapshot,
                     tree_bytes(admitted.snapshot))


def publish_generated(workdir: Path, key: PrivateKey, size_mb: int, name: str = "acme/swarm",
                      version: str = "1.0", piece_length: int = 1 << 20) -> Published:
    model_dir = workdir / "model"
    generate_model(model_dir, size_mb)
    return publish(workdir / "publisher", model_dir, key, name, version, piece_length, workdir / "release.json")


def new_peer(home: Path, key: PrivateKey) -> Path:
    """A fresh home whose policy trusts `key` for acme/* only."""
    with Client(home) as client:
        client.save_policy(trusting(key))
    return home
