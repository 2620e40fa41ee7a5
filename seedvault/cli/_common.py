"""Shared CLI pieces: the client from the context, output, progress, parameter types."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from seedvault import keyring
from seedvault._text import quote
from seedvault.client import Client
from seedvault.errors import Error, ManifestError, UsageError
from seedvault.manifest import Ref, parse_time
from seedvault.settings import default_registry, paths
from seedvault.signing import KEY_TYPES, PrivateKey
from seedvault.signing import KeyType as KeyAlgorithmName

F = TypeVar("F", bound=Callable[..., Any])


def client_of(ctx: click.Context) -> Client:
    client = ctx.find_object(Client)
    if client is None:
        raise click.UsageError("no client in context")  # programming error, not user input
    return client


pass_client = click.make_pass_decorator(Client)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def emit(data: Any, as_json: bool, text: str | Callable[[], str], *, err: bool = False) -> None:
    """DATA as one line of JSON (with --json: JSON Lines when a command reports several
    things, one complete object per line), else TEXT for people."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":")), err=err)
    else:
        click.echo(text() if callable(text) else text, err=err)


def note(text: str, as_json: bool) -> None:
    """Something the user should know, on stderr: `note: TEXT`, or with --json one line
    {"note": TEXT}, so stderr stays JSON Lines for a program."""
    if as_json:
        click.echo(json.dumps({"note": text}, ensure_ascii=False), err=True)
    else:
        click.echo(f"note: {text}", err=True)


class RefType(click.ParamType[str]):
    name = "REF"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return str(Ref.parse(str(value)))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        """The vault's models (NS/NAME) and releases (NS/NAME@VERSION) that start with INCOMPLETE."""
        return [CompletionItem(r) for r in vault_refs(ctx) if r.startswith(incomplete)]


def vault_refs(ctx: click.Context) -> list[str]:
    """Every NS/NAME and NS/NAME@VERSION in the vault of the command line's --home (for
    shell completion: the group's callback has not run, so the client is opened here)."""
    home = ctx.find_root().params.get("home")
    if not paths(home).vault_dir.is_dir():
        return []  # no vault there: nothing to offer, and nothing created by a completion
    try:
        with Client(home) as client:
            refs = {e.manifest.ref for e in client.vault.entries()}
    except (Error, OSError, sqlite3.Error):
        return []  # completion offers nothing rather than failing the user's shell
    return sorted({r.partition("@")[0] for r in refs} | refs)


class TimeType(click.ParamType[datetime]):
    """A date (2027-01-31) or an RFC 3339 time; dates mean midnight UTC."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        if len(text) == 10:
            text += "T00:00:00Z"
        try:
            return parse_time(text, "date")
        except ManifestError:
            self.fail(f"expected a date such as 2027-01-31 or 2027-01-31T12:00:00Z, found {quote(value)}", param, ctx)


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for an argument that may be a REF (or something else, such as a directory)."""
    return REF.shell_complete(ctx, param, incomplete)


REF = RefType()
DATE = TimeType()


class KeyType(click.ParamType[Path]):
    """A private key: a file, or the id (or an 8+ hex prefix) of a key in config/keys/."""

    name = "KEY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if isinstance(value, Path):
            return value
        text = str(value)
        path = Path(text)
        client = ctx.find_object(Client) if ctx is not None else None
        if os.path.lexists(path) or client is None or not keyring.looks_like_key_id(text):
            return path
        return keyring.find_key(client.paths.keys_dir, text)


KEY = KeyType()


REGISTRY_HELP = ("Registry node URL (default: $SEEDVAULT_REGISTRY, or registry = \"URL\" in "
                 "config/seedvault.toml).")


def registry_url(client: Client, given: str | None, what: str) -> str:
    """The registry a command needs: --registry, else the default (SEEDVAULT_REGISTRY or
    `registry` in config/seedvault.toml)."""
    url = given or default_registry(client.paths)
    if url is None:
        raise UsageError(f"{what} needs a registry node: expected --registry URL, SEEDVAULT_REGISTRY, or "
                         f"registry = \"URL\" in {client.paths.settings_file}, found none")
    return url


def terminal() -> bool:
    """A person at a terminal who can answer a prompt (not a script, not a pipe)."""
    return sys.stdin.isatty()


def load_private_key(path: Path, passphrase_file: Path | None,
                     accept: Sequence[KeyAlgorithmName] = KEY_TYPES) -> PrivateKey:
    """The key at PATH (of a type in ACCEPT); its passphrase from the file,
    SEEDVAULT_KEY_PASSPHRASE, or asked at a terminal."""
    passphrase = None
    if passphrase_file is not None:
        passphrase = passphrase_file.read_bytes().rstrip(b"\r\n")
    elif os.environ.get("SEEDVAULT_KEY_PASSPHRASE"):
        passphrase = os.environ["SEEDVAULT_KEY_PASSPHRASE"].encode()
    elif keyring.is_encrypted(path) and terminal():
        passphrase = click.prompt(f"Passphrase for {path}", hide_input=True, err=True).encode()
    key = PrivateKey.load(path, passphrase, accept)
    keyring.check_pair(path, key)
    return key


def key_options(f: F) -> F:
    f = click.option(
        "--passphrase-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="File holding the key's passphrase (or set SEEDVAULT_KEY_PASSPHRASE; asked at a terminal).",
    )(f)
    return click.option(
        "--key", "key_path", required=True, type=KEY,
        help="Private key: a PEM file, or a key id from `seedvault keys list`.",
    )(f)


@contextmanager
def byte_progress(label: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; silent otherwise (None: unknown total)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def now_utc() -> datetime:
    return datetime.now(UTC)


def signing_keys_option(f: F) -> F:
    """`--key` repeatable: a release or head signed by several keys at once."""
    f = click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="File holding the keys' passphrase (or set SEEDVAULT_KEY_PASSPHRASE).")(f)
    return click.option("--key", "key_paths", multiple=True, type=KEY,
                        help="Private key (a PEM file, or a key id from `seedvault keys list`) to sign with; "
                        "repeat for several signatures.")(f)


def signing_keys(key_paths: tuple[Path, ...], passphrase_file: Path | None, what: str) -> list[PrivateKey]:
    if not key_paths:
        raise click.UsageError(f"{what} needs a signing key: --key KEY")
    return [load_private_key(p, passphrase_file) for p in key_paths]
