"""Running the `seedvault` command in tests: in-process (exit codes as main() maps them), and
in a real pseudo-terminal for the prompts that only a person at a terminal sees."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conftest import Model

from seedvault.cli import main

SCRIPT = Path(sys.executable).with_name("seedvault")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(home: Path, *args: str | Path) -> Run:
    """`seedvault --home HOME ARGS...` in-process, with main()'s error handling and exit codes."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            rv = main(["--home", str(home), *map(str, args)])
            code = rv if isinstance(rv, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Run(code, out.getvalue().decode(), err.getvalue().decode())


def ok(home: Path, *args: str | Path) -> Run:
    result = run(home, *args)
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    return result


def refused(home: Path, code: int, *args: str | Path) -> Run:
    result = run(home, *args)
    assert result.code == code, f"expected exit {code}, got {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err + result.out
    return result


@dataclass
class World:
    tmp: Path
    pub_home: Path
    recv_home: Path
    key: Path
    key_id: str
    model: Path


def make_world(tmp_path: Path, model: Model) -> World:
    """keygen -> trust add in the publisher's home."""
    pub_home = tmp_path / "pub"
    key = tmp_path / "keys" / "acme.key"
    data = ok(pub_home, "keygen", "--out", key, "--json").json()
    assert Path(data["private_key"]) == key and Path(data["public_key"]) == key.with_name("acme.key.pub")
    assert data["type"] == "ed25519" and len(data["key_id"]) == 64
    ok(pub_home, "trust", "add", key.with_name("acme.key.pub"), "--role", "publisher", "--scope", "acme/*",
       "--name", "Acme")
    return World(tmp_path, pub_home, tmp_path / "recv", key, data["key_id"], model.path)


def publish(w: World, version: str = "1.0", *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = ok(
        w.pub_home, "publish", w.model, "--name", "acme/tiny", "--version", version, "--license", "Apache-2.0",
        "--key", w.key, "--publisher", "Acme Corp", "--origin-url", "https://example.com/acme/tiny",
        "--revision", "3f2a9c1", "--json", *extra,
    ).json()
    return out


def export_tar(w: World, ref: str = "acme/tiny@1.0", name: str = "bundle.tar") -> Path:
    dest = w.tmp / name
    out = ok(w.pub_home, "export", ref, dest, "--tar")
    assert dest.is_file() and str(dest) in out.out
    return dest


def trust_publisher(w: World, home: Path) -> None:
    ok(home, "trust", "add", w.key.with_name("acme.key.pub"), "--role", "publisher", "--scope", "acme/*")


def in_terminal(home: Path, *args: str | Path, answers: tuple[tuple[str, str], ...] = (),
                timeout: float = 60.0) -> tuple[int, str]:
    """Run the installed `seedvault` in a pseudo-terminal; answer each prompt (text, reply) when
    its text appears. Returns the exit code and everything the terminal showed."""
    env = {k: v for k, v in os.environ.items() if k != "SEEDVAULT_KEY_PASSPHRASE"}
    master, slave = os.openpty()
    proc = subprocess.Popen([str(SCRIPT), "--home", str(home), *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    shown, seen, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and pending[0][0].encode() in shown[seen:]:
                os.write(master, pending.pop(0)[1].encode() + b"\n")
                seen = len(shown)
        else:
            raise AssertionError(f"seedvault {args} did not finish in {timeout} s; it showed:\n{shown.decode()}")
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    assert not pending, f"prompts never shown: {pending}; the terminal showed:\n{shown.decode()}"
    return code, shown.decode(errors="replace").replace("\r\n", "\n")
