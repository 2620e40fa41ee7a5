"""The `seedvault` command: thin click commands over the library.

Expected failures print a message (and hint) without a traceback and exit with the code
of their class:

    0 ok  1 other error  2 usage/config  3 verification or trust refused  4 not found
    5 transfer failed   130 interrupted
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

import click

from seedvault.cli._common import emit, json_option
from seedvault.cli.bridges import register_bridge_commands
from seedvault.cli.demo import demo
from seedvault.cli.models import register_model_commands
from seedvault.cli.registry import register_registry_commands
from seedvault.cli.swarm import register_swarm_commands
from seedvault.cli.trust import trust
from seedvault.client import Client
from seedvault.errors import Error
from seedvault.signing import KEY_TYPES, PrivateKey


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SEEDVAULT_HOME",
    help="Directory for all state (config, keys, vault). Default: $SEEDVAULT_HOME or user dirs.",
)
@click.version_option(package_name="seedvault")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Publish, share and verify signed open-weight models."""
    ctx.obj = ctx.with_resource(Client(home))


@cli.command()
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), default="ed25519", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Private key file; FILE.pub gets the public key. Default: in the config's keys/.")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Encrypt the private key with the passphrase in this file.")
@json_option
@click.pass_obj
def keygen(client: Client, key_type: str, out: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Generate a signing key pair (Ed25519 by default, or ECDSA P-256)."""
    key = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    path = out or client.paths.keys_dir / f"{key.key_id[:16]}.key"
    passphrase = passphrase_file.read_bytes().rstrip(b"\r\n") if passphrase_file else None
    pub = key.save(path, passphrase)
    data = {"key_id": key.key_id, "type": key_type, "private_key": str(path), "public_key": str(pub)}
    emit(data, as_json, f"key id      {key.key_id}\nprivate key {path}\npublic key  {pub}")


cli.add_command(trust)
cli.add_command(demo)
register_model_commands(cli)
register_swarm_commands(cli)
register_bridge_commands(cli)
register_registry_commands(cli)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning expected errors into messages and exit codes."""
    try:
        return cli.main(args=argv, prog_name="seedvault", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Error as exc:
        click.echo(f"error: {exc.diagnostics()}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            click.echo(f"error: the disk is full ({exc.filename or 'while writing'}); nothing partial "
                       "was added to the vault. Free some space and run the command again.", err=True)
        else:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
