"""The `seedvault` command: thin click commands over the library.

Expected failures print a message (and hint) without a traceback and exit with the code
of their class:

    0 ok  1 other error  2 usage/config  3 verification or trust refused  4 not found
    5 transfer failed   130 interrupted
"""

from __future__ import annotations

import errno
import importlib
import json
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import click

from seedvault.cli._common import emit, json_option, note
from seedvault.client import Client
from seedvault.errors import Error, SeedvaultWarning, TransferError
from seedvault.signing import KEY_TYPES, PrivateKey

# Command name -> "module:attribute". Loaded on first use, so `seedvault verify` does not
# pay for importing libtorrent, aiohttp and huggingface_hub (most of a second here).
LAZY_COMMANDS = {
    "trust": "seedvault.cli.trust:trust",
    "keys": "seedvault.cli.keys:keys",
    "key": "seedvault.cli.keys:keys",
    "publish": "seedvault.cli.models:publish",
    "approve": "seedvault.cli.models:approve",
    "verify": "seedvault.cli.models:verify",
    "show": "seedvault.cli.models:show",
    "list": "seedvault.cli.housekeeping:list_",
    "rm": "seedvault.cli.housekeeping:rm",
    "gc": "seedvault.cli.housekeeping:gc",
    "du": "seedvault.cli.housekeeping:du",
    "export": "seedvault.cli.models:export",
    "import": "seedvault.cli.models:import_",
    "seed": "seedvault.cli.swarm:seed",
    "pull": "seedvault.cli.swarm:pull",
    "torrent": "seedvault.cli.swarm:torrent",
    "serve": "seedvault.cli.registry:serve",
    "push": "seedvault.cli.registry:push",
    "search": "seedvault.cli.registry:search",
    "mirror": "seedvault.cli.registry:mirror",
    "import-hf": "seedvault.cli.bridges:import_hf_command",
    "export-hf": "seedvault.cli.bridges:export_hf_command",
    "oms": "seedvault.cli.bridges:oms",
    "import-oms": "seedvault.cli.bridges:import_oms_command",
    "demo": "seedvault.cli.demo:demo",
    "head": "seedvault.cli.life:head",
    "yank": "seedvault.cli.life:yank",
    "unyank": "seedvault.cli.life:unyank",
    "sign": "seedvault.cli.life:sign",
    "remove": "seedvault.cli.life:remove",
    "lineage": "seedvault.cli.provenance:lineage",
    "sbom": "seedvault.cli.provenance:sbom",
    "log": "seedvault.cli.log:log_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when they are run or listed in help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{LAZY_COMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--no-passphrase", is_flag=True,
              help="Leave the private key unencrypted without asking (at a terminal, keygen asks).")
@json_option
@click.pass_obj
def keygen(client: Client, key_type: str, out: Path | None, passphrase_file: Path | None, no_passphrase: bool,
           as_json: bool) -> None:
    """Generate a signing key pair (Ed25519 by default, or ECDSA P-256).

    At a terminal it asks whether to encrypt the private key, and for the passphrase."""
    from seedvault.cli._common import terminal

    if passphrase_file and no_passphrase:
        raise click.UsageError("expected --passphrase-file or --no-passphrase, found both")
    key = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    path = out or client.paths.keys_dir / f"{key.key_id[:16]}.key"
    passphrase = passphrase_file.read_bytes().rstrip(b"\r\n") if passphrase_file else None
    if passphrase_file is None and not no_passphrase and terminal() and click.confirm(
        "Encrypt the private key with a passphrase?", default=True, err=True
    ):
        passphrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True, err=True).encode()
    pub = key.save(path, passphrase)
    data = {"key_id": key.key_id, "type": key_type, "private_key": str(path), "public_key": str(pub),
            "encrypted": passphrase is not None}
    emit(data, as_json, f"key id      {key.key_id}\nprivate key {path} "
         f"({'encrypted' if passphrase else 'NOT encrypted'})\npublic key  {pub}\n"
         f"give people the key id by another channel than the public key, so they can check it")
    if passphrase is None and not no_passphrase and not terminal():
        note("the private key is not encrypted (no terminal to ask for a passphrase); "
                   "--passphrase-file FILE encrypts it", as_json)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, and REFs from the vault).

    \b
    bash:  eval "$(seedvault completion bash)"        (e.g. in ~/.bashrc)
    zsh:   eval "$(seedvault completion zsh)"         (e.g. in ~/.zshrc)
    fish:  seedvault completion fish > ~/.config/fish/completions/seedvault.fish
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # the three choices are click's own
    click.echo(completer(cli, {}, "seedvault", "_SEEDVAULT_COMPLETE").source())


_PYTHON_SHOWWARNING = warnings.showwarning
_json_errors = False  # --json on the command line: warnings and errors on stderr are JSON lines too


def _show_warning(message: Warning | str, category: type[Warning], *_args: Any, **_kw: Any) -> None:
    """The library's warnings (a stale head, a yanked release used anyway) for people."""
    if issubclass(category, SeedvaultWarning):
        if _json_errors:
            click.echo(json.dumps({"warning": str(message)}, ensure_ascii=False), err=True)
        else:
            click.echo(f"warning: {message}", err=True)
    else:
        _PYTHON_SHOWWARNING(message, category, *_args, **_kw)


def _wants_json(argv: list[str]) -> bool:
    """`--json` anywhere on the command line (before a `--`): errors are then JSON too."""
    args = argv if argv is not None else sys.argv[1:]
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(kind: str, message: str, hint: str | None, code: int, as_json: bool) -> NoReturn:
    """Report an error on stderr (text, or one JSON object with --json) and exit with CODE."""
    if as_json:
        click.echo(json.dumps({"error": {"type": kind, "message": message, "hint": hint, "exit_code": code}},
                              ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    sys.exit(code)


def _click_failure(exc: click.ClickException, as_json: bool) -> NoReturn:
    """A click usage error (a wrong option, a missing argument): its message, and where help is."""
    ctx = getattr(exc, "ctx", None)
    hint = None
    if ctx is not None:
        hint = f"see: {ctx.command_path} --help"
    if not as_json:
        exc.show()
        sys.exit(exc.exit_code)
    kind = "UsageError" if isinstance(exc, click.UsageError) else "Error"
    _fail(kind, exc.format_message(), hint, exc.exit_code, as_json)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning expected errors into messages and exit codes.

    With `--json` on the command line, an error is one JSON object on stderr:
    `{"error": {"type", "message", "hint", "exit_code"}}`, the hint its own field."""
    warnings.simplefilter("always", SeedvaultWarning)
    warnings.showwarning = _show_warning
    global _json_errors
    as_json = _json_errors = _wants_json(argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="seedvault", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("Interrupted", "interrupted", None, 130, as_json)
    except click.ClickException as exc:
        _click_failure(exc, as_json)
    except Error as exc:
        _fail(type(exc).__name__, str(exc), exc.hint, exc.exit_code, as_json)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            # a disk failed to take the bytes
            _fail("InsufficientStorageError", f"no room to write {exc.filename or 'a file'} ({exc.strerror}); "
                  "nothing partial was added to the vault", "free some space and run the command again",
                  TransferError.exit_code, as_json)
        _fail("Error", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), None, 1, as_json)
    except sqlite3.Error as exc:
        _fail("TransferError", f"the vault's database failed ({exc}); nothing partial was added to the vault",
              "is the disk full or read-only?", TransferError.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("Interrupted", "interrupted", None, 130, as_json)
