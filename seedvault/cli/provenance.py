"""Provenance commands: `lineage` (the ancestry and each ancestor's verdict) and `sbom`."""

from __future__ import annotations

from pathlib import Path

import click

from seedvault.cli._common import REF, emit, json_option, note
from seedvault.client import Client
from seedvault.errors import PolicyError
from seedvault.lineage import LineageNode
from seedvault.sbom import BOM_FORMATS, describe, render
from seedvault.signing.trusted import check_lineage

_MARK = {"verified": "verified", "refused": "REFUSED", "missing": "MISSING", "unpinned": "UNPINNED",
         "mismatch": "MISMATCH"}


def _tree_text(root: LineageNode, refusal: str | None) -> str:
    lines = [f"{root.ref}  ({root.digest})"]

    def walk(node: LineageNode, depth: int) -> None:
        for p in node.parents:
            a = p.ancestor
            assert a is not None
            why = f": {a.reason}" if a.reason and a.status != "verified" else ""
            signer = ""
            if a.verdict is not None:
                signer = " by " + ", ".join(s.label or s.key_id[:16] for s in a.verdict.signers
                                            if s.status == "valid" and s.role == "publisher")
            pinned = f" ({a.digest[:16]})" if a.digest else ""
            lines.append(f"{'  ' * depth}└─ {a.relation} {a.ref}{pinned}  {_MARK[a.status]}{signer}{why}")
            walk(p, depth + 1)

    walk(root, 1)
    if not root.parents:
        lines.append("  (no lineage: the release names no base model)")
    lines.append(f"policy: REFUSED: {refusal}" if refusal else "policy: the lineage satisfies your policy")
    return "\n".join(lines)


@click.command()
@click.argument("ref", type=REF)
@json_option
@click.pass_obj
def lineage(client: Client, ref: str, as_json: bool) -> None:
    """The ancestry of REF, followed by manifest digest, each ancestor with its verdict here.

    Ancestors are found in the vault, or among those a bundle carried. Exits 3 when your
    policy's lineage rules (trust lineage deny, trust require --verified-lineage) refuse it."""
    entry = client.resolve(ref)
    policy = client.policy
    tree = client.lineage(entry.manifest, entry.digest, policy=policy)
    refusal = None
    try:
        check_lineage(entry.manifest.ref, tree.ancestors(), policy)
    except PolicyError as exc:  # reported with the tree, then the exit code
        refusal = str(exc)
    emit({**tree.to_dict(), "policy": {"ok": refusal is None, "refused": refusal}}, as_json,
         lambda: _tree_text(tree, refusal))
    if refusal is not None:
        raise click.exceptions.Exit(3)


@click.command()
@click.argument("ref", type=REF)
@click.option("--format", "fmt", type=click.Choice(BOM_FORMATS), required=True,
              help="spdx: SPDX 3.0.1 JSON-LD with the AI profile; cyclonedx: CycloneDX 1.6 ML-BOM (JSON).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the BOM here (default: stdout).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@json_option
@click.pass_obj
def sbom(client: Client, ref: str, fmt: str, out: Path | None, force: bool, as_json: bool) -> None:
    """The AI bill of materials of REF, verified first: model, files and hashes, license,
    the verified signer as supplier, and the lineage with each ancestor's verdict."""
    text = render(describe(client, ref), fmt)  # type: ignore[arg-type]
    if out is None:
        click.echo(text)
        return
    if out.exists() and not force:
        raise click.UsageError(f"{out} already exists; choose another file, or --force to overwrite it")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    emit({"ref": ref, "format": fmt, "out": str(out.absolute())}, as_json, f"wrote the {fmt} AI-BOM of {ref} to "
         f"{out.absolute()}")
    if fmt == "spdx":
        note("SPDX 3.0.1 JSON-LD, profiles core, software, ai and simpleLicensing", as_json)
