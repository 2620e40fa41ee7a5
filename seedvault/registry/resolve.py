"""Pick a release from a registry: the exact version asked for, or, for `NS/NAME`, the one
the model's newest signed head names. What the node says about trust is ignored.

The registry's heads are judged under the LOCAL policy and against the head already held
(a lower sequence is refused), so a registry can neither move `NS/NAME` back to an older
release nor hide a yank from a client that has seen it; a head past its expiry is reported
(a registry withholding newer heads is noticed within the head's lifetime). Without any
head, the newest listed version the policy trusts is taken, with a warning.
"""

from __future__ import annotations

import warnings

from seedvault.client import Client
from seedvault.errors import ExpiredError, NotFoundError, SeedvaultWarning, VerificationError
from seedvault.manifest import Ref
from seedvault.registry.client import RegistryClient
from seedvault.signing import Envelope, Verdict
from seedvault.signing.trusted import AcceptedHead, is_newer


def refresh_head(client: Client, registry: RegistryClient, name: str) -> AcceptedHead | None:
    """Take the registry's heads of `name` into the vault (judged), and return the head held."""
    current, refusals = client.admit_heads(registry.heads(name), name)
    stale = next((exc for exc in refusals if isinstance(exc, ExpiredError)), None)
    if current is None and stale is not None:
        raise stale  # the policy requires fresh heads, and this registry serves only a stale one
    for exc in refusals:
        warnings.warn(SeedvaultWarning(f"{registry.base_url}: refused a head of {name}: {exc}"), stacklevel=2)
    if current is not None and current.stale:
        warnings.warn(SeedvaultWarning(f"{current.head.ref} expired at {current.head.expires:%Y-%m-%d %H:%M} UTC: "
                                       "a newer release or yank may exist that this registry does not show"),
                      stacklevel=2)
    return current


def resolve(client: Client, registry: RegistryClient, ref: str) -> tuple[str, Envelope]:
    """`(NS/NAME@VERSION, envelope)` for `ref`, judged under the local policy."""
    wanted = Ref.parse(ref)
    current = refresh_head(client, registry, wanted.name)
    if wanted.version is not None:
        envelope = registry.envelope(wanted.name, wanted.version)
        client.judge(envelope)
        return str(wanted), envelope
    if current is not None and current.head.yank_reason(current.head.latest_version) is None:
        head = current.head
        try:
            envelope = registry.envelope(wanted.name, head.latest_version)
        except NotFoundError:
            raise NotFoundError(
                f"{wanted.name}: its signed head ({head.ref}) names {head.latest_version} as the latest release, "
                f"and {registry.base_url} does not serve it", hint="the registry is behind, or hiding it: "
                f"try another registry, or pull an older version by name ({wanted.name}@VERSION)") from None
        if envelope.digest != head.latest_digest:
            raise VerificationError(
                f"{wanted.name}@{head.latest_version}: the signed head pins manifest digest {head.latest_digest}, "
                f"the registry serves {envelope.digest}", hint="the registry serves another release; try another")
        verdict = client.judge(envelope)
        return _not_older_than_held(client, verdict, envelope)
    if current is None:
        warnings.warn(SeedvaultWarning(f"{registry.base_url} serves no signed head of {wanted.name} this policy "
                                       "accepts: taking the newest listed version it trusts, which a registry "
                                       "can choose to hide"), stacklevel=2)
    best: tuple[Verdict, Envelope] | None = None
    refusals = []
    for release in registry.versions(wanted.name):
        yanked_here = current is not None and current.head.yank_reason(str(release["version"])) is not None
        if release.get("yanked") or yanked_here:
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
            f"{wanted.name}: the registry has no version your policy trusts that is not yanked"
            + (f" ({'; '.join(refusals)})" if refusals else ""),
        )
    return _not_older_than_held(client, *best)


def _not_older_than_held(client: Client, verdict: Verdict, envelope: Envelope) -> tuple[str, Envelope]:
    """Never resolve to a release older than the newest one the vault holds and may use."""
    try:
        held = client.resolve(verdict.manifest.name)
    except NotFoundError:
        return verdict.manifest.ref, envelope
    if client.yank_reason(held.manifest) is None and is_newer(held.manifest, verdict.manifest):
        return held.manifest.ref, held.envelope
    return verdict.manifest.ref, envelope
