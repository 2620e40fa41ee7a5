"""Shared CLI pieces: the client from the context, output, progress, parameter types."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from seedvault._text import quote
from seedvault.client import Client
from seedvault.errors import ManifestError, UsageError
from seedvault.manifest import Ref, parse_time
from seedvault.signing import PrivateKey

F = TypeVar("F", bound=Callable[..., Any])


def client_of(ctx: click.Context) -> Client:
    client = ctx.find_object(Client)
    if client is None:
        raise click.UsageError("no client in context")  # programming error, not user input
    return client


pass_client = click.make_pass_decorator(Client)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def emit(data: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text() if callable(text) else text)


class RefType(click.ParamType[str]):
    name = "REF"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return str(Ref.parse(str(value)))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


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


REF = RefType()
DATE = TimeType()


def load_private_key(path: Path, passphrase_file: Path | None) -> PrivateKey:
    passphrase = None
    if passphrase_file is not None:
        passphrase = passphrase_file.read_bytes().rstrip(b"\r\n")
    elif os.environ.get("SEEDVAULT_KEY_PASSPHRASE"):
        passphrase = os.environ["SEEDVAULT_KEY_PASSPHRASE"].encode()
    return PrivateKey.load(path, passphrase)


def key_options(f: F) -> F:
    f = click.option(
        "--passphrase-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="File holding the key's passphrase (or set SEEDVAULT_KEY_PASSPHRASE).",
    )(f)
    return click.option(
        "--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
        help="Private key file (PEM).",
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
    return click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                        help="Private key (PEM) to sign with; repeat for several signatures.")(f)


def signing_keys(key_paths: tuple[Path, ...], passphrase_file: Path | None, what: str) -> list[PrivateKey]:
    if not key_paths:
        raise click.UsageError(f"{what} needs a signing key: --key KEY")
    return [load_private_key(p, passphrase_file) for p in key_paths]
