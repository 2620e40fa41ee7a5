"""`seedvault oms sign-model` and `oms verify-model`: OMS bundles for any model, no vault.

The flags are exactly those of the OMS conformance adapter protocol
(model-signing-conformance, docs/conformance_adapter_cli_protocol.md), so this command is
an adapter as it stands: exit 0 on success, non-zero otherwise, never a prompt.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from cryptography import x509

from seedvault.bridges.oms import CertificateTrust, KeyTrust, OmsTrust, sign_model, verify_model
from seedvault.bridges.oms_files import relative_ignores
from seedvault.bridges.oms_x509 import load_certificates
from seedvault.cli._common import emit, json_option
from seedvault.errors import UsageError
from seedvault.signing import PrivateKey, PublicKey
from seedvault.signing.keys import OMS_KEY_TYPES

_file = click.Path(dir_okay=False, path_type=Path)
_model = click.Path(exists=True, path_type=Path)
METHODS = ("key", "certificate", "sigstore")


def _method(method: str) -> str:
    if method == "sigstore":
        raise UsageError("--method sigstore: keyless signing needs the public Sigstore service (Fulcio, Rekor), "
                         "which seedvault does not use", hint="use --method key or --method certificate")
    return method


def _needs(value: Path | None, flag: str, method: str) -> Path:
    if value is None:
        raise click.UsageError(f"--method {method} needs {flag}")
    return value


def _private_key(path: Path, passphrase_file: Path | None) -> PrivateKey:
    """The signing key, its passphrase from a file or SEEDVAULT_KEY_PASSPHRASE; never asked for."""
    passphrase = passphrase_file.read_bytes().rstrip(b"\r\n") if passphrase_file else (
        os.environ["SEEDVAULT_KEY_PASSPHRASE"].encode() if os.environ.get("SEEDVAULT_KEY_PASSPHRASE") else None)
    return PrivateKey.load(path, passphrase, accept=OMS_KEY_TYPES)


def _certs(paths: tuple[Path, ...], what: str) -> list[x509.Certificate]:
    return [c for p in paths for c in load_certificates(p, what)]


def trust_from(method: str, public_key: Path | None, cert_chain: tuple[Path, ...]) -> OmsTrust:
    """What the user trusts, from the verify flags: a public key, or root certificates."""
    if _method(method) == "key":
        return KeyTrust(PublicKey.load(_needs(public_key, "--public-key", method), accept=OMS_KEY_TYPES))
    if not cert_chain:
        raise click.UsageError("--method certificate needs --cert-chain (a root certificate you trust)")
    return CertificateTrust(tuple(_certs(cert_chain, "trusted certificate")))


@click.command("sign-model")
@click.option("--method", required=True, type=click.Choice(METHODS), help="key, or certificate (with a chain).")
@click.option("--model-path", required=True, type=_model, help="The model: a directory or a single file.")
@click.option("--output-bundle", required=True, type=_file, help="Where to write the bundle (e.g. model.sig).")
@click.option("--private-key", type=_file, help="ECDSA P-256, P-384 or P-521 private key (PEM).")
@click.option("--signing-cert", type=_file, help="certificate method: the leaf certificate of the private key.")
@click.option("--cert-chain", multiple=True, type=_file,
              help="certificate method: the CA certificates to ship, leaf to root; repeat.")
@click.option("--ignore-paths", multiple=True, type=click.Path(path_type=Path),
              help="A file or directory of the model to leave out; repeat.")
@click.option("--passphrase-file", type=_file, help="File holding the private key's passphrase.")
@json_option
def sign_model_command(method: str, model_path: Path, output_bundle: Path, private_key: Path | None,
                       signing_cert: Path | None, cert_chain: tuple[Path, ...], ignore_paths: tuple[Path, ...],
                       passphrase_file: Path | None, as_json: bool) -> None:
    """Sign a model (directory or file) as an OpenSSF model signing (OMS v1.0) bundle."""
    method = _method(method)
    key = _private_key(_needs(private_key, "--private-key", method), passphrase_file)
    certificate = None
    if method == "certificate":
        leaf = load_certificates(_needs(signing_cert, "--signing-cert", method), "signing certificate")
        certificate = (leaf[0], _certs(cert_chain, "certificate chain file"))
    result = sign_model(model_path, key, output_bundle, ignore=relative_ignores(model_path, ignore_paths),
                        certificate=certificate)
    emit(result.to_dict(), as_json, lambda: (
        f"wrote OMS bundle {result.signature} for {result.model}\n"
        f"  files     {len(result.files)}, root {result.root}\n"
        f"  signer    {result.signer}"))


@click.command("verify-model")
@click.option("--method", required=True, type=click.Choice(METHODS), help="key, or certificate (with roots).")
@click.option("--model-path", required=True, type=_model, help="The model: a directory or a single file.")
@click.option("--bundle", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The OMS bundle to verify.")
@click.option("--public-key", type=_file, help="key method: the signer's public key (PEM).")
@click.option("--cert-chain", multiple=True, type=_file,
              help="certificate method: a root certificate you trust; repeat.")
@click.option("--ignore-paths", multiple=True, type=click.Path(path_type=Path),
              help="A file or directory of the model to leave out; repeat.")
@click.option("--ignore-unsigned-files", is_flag=True, help="Accept files the bundle does not list.")
@json_option
def verify_model_command(method: str, model_path: Path, bundle: Path, public_key: Path | None,
                         cert_chain: tuple[Path, ...], ignore_paths: tuple[Path, ...], ignore_unsigned_files: bool,
                         as_json: bool) -> None:
    """Verify a model (directory or file) against an OMS bundle, with a key or trusted roots."""
    trust = trust_from(method, public_key, cert_chain)
    verdict = verify_model(model_path, bundle, trust, ignore=relative_ignores(model_path, ignore_paths),
                           ignore_unsigned=ignore_unsigned_files)
    emit(verdict.to_dict(), as_json, lambda: (
        f"verified {model_path} against {bundle}\n"
        f"  files     {len(verdict.files)}, root {verdict.root}\n"
        f"  signer    {verdict.signer}"))
