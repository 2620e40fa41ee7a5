"""Pick a release from a registry: the exact version asked for, or the newest one that the
LOCAL policy trusts. What the node says about trust is ignored."""

from __future__ import annotations

from seedvault.client import Client
from seedvault.errors import NotFoundError, VerificationError
from seedvault.manifest import Ref
from seedvault.registry.client import RegistryClient
from seedvault.signing import Envelope, Verdict
from seedvault.vault import is_newer


def resolve(client: Client, registry: RegistryClient, ref: str) -> tuple[str, Envelope]:
    """`(NS/NAME@VERSION, envelope)` for `ref`, judged under the local policy."""
    wanted = Ref.parse(ref)
    if wanted.version is not None:
        envelope = registry.envelope(wanted.name, wanted.version)
        client.judge(envelope)
        return str(wanted), envelope
    best: tuple[Verdict, Envelope] | None = None
    refusals = []
    for release in registry.versions(wanted.name):
        if release.get("yanked"):
            continue
        envelope = registry.envelope(wanted.name, str(release["version"]))
        try:
            verdict = client.judge(envelope)
        except VerificationError as exc:
            refusals.append(f"{release['version']}: {exc}")
            continue
        if best is None or is_newer(verdict.manifest, best[0].manifest):
            best = (verdict, envelope)
    if best is None:
        raise NotFoundError(
            f"{wanted.name}: the registry has no version your policy trusts"
            + (f" ({'; '.join(refusals)})" if refusals else ""),
        )
    return best[0].manifest.ref, best[1]
