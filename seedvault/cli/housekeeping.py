"""Housekeeping commands: list (with each release's status), rm, gc, du."""

from __future__ import annotations

from typing import Any

import click

from seedvault import housekeeping
from seedvault._text import count, human_size
from seedvault.cli._common import REF, emit, json_option, note
from seedvault.cli.models import _manifest_summary
from seedvault.client import Client


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned columns: widths from the longest cell; columns in RIGHT right-aligned (sizes)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                strict=True))).rstrip()

    return [line(header), *map(line, rows)]


@click.command("list")
@click.argument("pattern", required=False)
@json_option
@click.pass_obj
def list_(client: Client, pattern: str | None, as_json: bool) -> None:
    """List the releases in the vault, with how each stands here: trusted, refused (why),
    yanked or expired. PATTERN is a glob on the name (acme/*) or on NS/NAME@VERSION."""
    data: list[dict[str, Any]] = []
    for e in client.vault.entries():
        if not housekeeping.matches(pattern, e.manifest.name, e.manifest.version):
            continue
        status, reason = housekeeping.release_status(client, e)
        data.append({**_manifest_summary(e.manifest), "digest": e.digest,
                     "latest": client.vault.latest_version(e.manifest.name) == e.manifest.version,
                     "status": status, "status_reason": reason})
    damaged = [{"ref": f"{d.name}@{d.version}", "digest": d.digest, "damaged": d.reason, "status": "damaged",
                "status_reason": d.reason}
               for d in client.vault.damaged() if housekeeping.matches(pattern, d.name, d.version)]

    def text() -> str:
        if not data and not damaged:
            return f"no release in the vault matches {pattern}" if pattern else "the vault is empty"
        rows = [[d["ref"], d["status"], human_size(d["size"]), d["license"], d["digest"][:16],
                 ", ".join(filter(None, ["latest" if d["latest"] else "", d["status_reason"] or ""]))]
                for d in data]
        rows += [[d["ref"], "DAMAGED", "", "", d["digest"][:16], d["damaged"]] for d in damaged]
        lines = _table(["REF", "STATUS", "SIZE", "LICENSE", "DIGEST", "NOTE"], rows, {2})
        if damaged:
            lines.append("damaged releases are never loaded; import or pull them again to repair")
        return "\n".join(lines)

    emit(data + damaged, as_json, text)


@click.command("rm")
@click.argument("ref", type=REF)
@click.option("--all-versions", is_flag=True, help="Remove every version of NS/NAME.")
@json_option
@click.pass_obj
def rm(client: Client, ref: str, all_versions: bool, as_json: bool) -> None:
    """Remove REF from the vault: its snapshot and its record (NS/NAME: the newest version).

    Blobs another release uses stay; the rest go with `seedvault gc`. The vault still
    remembers each name@version's digest, so another release under it is refused later."""
    vault = client.vault
    removed = housekeeping.remove(vault, housekeeping.select(vault, ref, all_versions=all_versions))
    frees = housekeeping.would_free(vault)

    def text() -> str:
        lines = [f"removed {r.ref}" + (f"  ({count(r.files, 'file')}, {human_size(r.size)})"
                                       if r.files is not None and r.size is not None else "  (damaged)")
                 for r in removed]
        lines.append(f"seedvault gc would now free {human_size(frees)}")
        return "\n".join(lines)

    emit({"removed": [r.to_dict() for r in removed], "gc_would_free": frees}, as_json, text)


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted and how many bytes it frees; delete nothing.")
@json_option
@click.pass_obj
def gc(client: Client, dry_run: bool, as_json: bool) -> None:
    """Delete blobs, piece layers, staging and resume data that nothing uses.

    A blob stays while any release in the vault or any pull in progress names it; a pull in
    progress keeps its staging and resume data."""
    vault = client.vault
    result = housekeeping.collect(vault, dry_run=dry_run)
    kinds: tuple[housekeeping.Kind, ...] = ("blob", "layer", "pull", "staging", "upload", "leftover", "snapshot")
    counts = {k: result.count(k) for k in kinds}
    data = {"dry_run": dry_run, "freed": result.freed, "counts": counts, "blobs_kept": result.blobs_kept,
            "pulls_kept": list(result.pulls_kept), "items": [i.to_dict(vault.root) for i in result.items],
            "note": result.note}
    if result.note:
        note(result.note, as_json)

    def text() -> str:
        what = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items() if n) or "nothing"
        lines = [f"{'would free' if dry_run else 'freed'} {human_size(result.freed)}: {what}"]
        if dry_run:
            lines += [f"  {i.kind:<8}  {i.path.relative_to(vault.root).as_posix()}  ({i.why})" for i in result.items]
        lines += [f"kept: the pull in progress of {ref}" for ref in result.pulls_kept]
        lines.append(f"kept {count(result.blobs_kept, 'blob')} that releases or pulls in progress use")
        return "\n".join(lines)

    emit(data, as_json, text)


@click.command("du")
@click.argument("ref", type=REF, required=False)
@json_option
@click.pass_obj
def du(client: Client, ref: str | None, as_json: bool) -> None:
    """Bytes per model and version: total, unique (blobs no other release uses) and shared;
    and the vault's totals, each blob counted once."""
    usage = housekeeping.disk_usage(client.vault, ref)

    def text() -> str:
        rows: list[list[str]] = []
        for model in usage.models:
            rows.append([model.ref, human_size(model.total), human_size(model.unique), human_size(model.shared)])
            for r in (r for r in usage.releases if r.name == model.name):
                rows.append([f"  {r.ref}", human_size(r.total), human_size(r.unique), human_size(r.shared)]
                            + ([f"{count(r.missing, 'blob')} missing"] if r.missing else []))
        width = max((len(r) for r in rows), default=4)
        rows = [r + [""] * (width - len(r)) for r in rows]
        header = ["MODEL / RELEASE", "TOTAL", "UNIQUE", "SHARED", "NOTE"][:width]
        lines = _table(header, rows, {1, 2, 3}) if rows else ["the vault holds no release"]
        lines.append(f"vault: {count(usage.blobs, 'blob')}, {human_size(usage.blob_bytes)} (each blob once); "
                     f"layers {human_size(usage.layer_bytes)}; staging {human_size(usage.staging_bytes)}"
                     + (f"; snapshot copies {human_size(usage.snapshot_copy_bytes)}" if usage.snapshot_copy_bytes
                        else "") + f"; on disk {human_size(usage.disk_bytes)}")
        return "\n".join(lines)

    emit(usage.to_dict(), as_json, text)
