"""AI bills of materials for a verified release: SPDX 3.0.1 (AI profile) and CycloneDX 1.6 ML-BOM.

Both say the same things, each in its own vocabulary: the model (name, version, license,
the signer whose signature verified it under the local policy as its supplier, the
manifest digest), every file with its SHA-256 (and, for weights, what its signed summary
says: format, tensors, parameters, quantization), and the lineage, each ancestor with the
relation and its verdict here. Nothing in a BOM is taken from an unverified source: the
release is verified first, and an ancestor's supplier is named only when it verifies.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from seedvault.lineage import LineageNode
from seedvault.manifest import FileEntry, Manifest
from seedvault.signing import Verdict

BomFormat = Literal["spdx", "cyclonedx"]
BOM_FORMATS: tuple[BomFormat, ...] = ("spdx", "cyclonedx")
TOOL = "seedvault"


@dataclass(frozen=True)
class Release:
    """What a BOM describes: a verified release and its ancestry tree."""

    verdict: Verdict
    lineage: LineageNode

    @property
    def manifest(self) -> Manifest:
        return self.verdict.manifest


def suppliers(verdict: Verdict) -> list[tuple[str, str]]:
    """(key id, label) of each publisher whose signature counted."""
    seen: dict[str, str] = {}
    for s in verdict.signers:
        if s.status == "valid" and s.role == "publisher":
            seen.setdefault(s.key_id, s.label or s.key_id[:16])
    return list(seen.items())


def _file_facts(f: FileEntry) -> dict[str, str]:
    facts = {"size": str(f.size)}
    if f.safetensors is not None:
        facts.update(format="safetensors", tensors=str(f.safetensors.tensors),
                     parameters=str(f.safetensors.parameters), dtypes=",".join(sorted(f.safetensors.dtypes)))
    if f.gguf is not None:
        facts.update(format="gguf", tensors=str(f.gguf.tensors), parameters=str(f.gguf.parameters),
                     quantization=",".join(f.gguf.quantization))
        if f.gguf.architecture:
            facts["architecture"] = f.gguf.architecture
        if f.gguf.context_length is not None:
            facts["context_length"] = str(f.gguf.context_length)
    return facts


def _nodes(root: LineageNode) -> Iterator[tuple[LineageNode, LineageNode]]:
    """(descendant, ancestor) pairs, depth first."""
    for p in root.parents:
        yield root, p
        yield from _nodes(p)


def _name_version(node: LineageNode) -> tuple[str, str | None]:
    if node.ancestor is not None and node.ancestor.manifest is not None:
        return node.ancestor.manifest.name, node.ancestor.manifest.version
    name, _, version = node.ref.partition("@")
    return name, version or None


def render(release: Release, fmt: BomFormat, now: datetime | None = None) -> str:
    """The BOM as JSON text (SPDX: JSON-LD)."""
    moment = now or datetime.now(UTC).replace(microsecond=0)
    return _spdx(release, moment) if fmt == "spdx" else _cyclonedx(release, moment)


# ---- SPDX 3.0.1 ----------------------------------------------------------------------------------


def _spdx(release: Release, now: datetime) -> str:
    from spdx_python_model import v3_0_1 as spdx

    m, digest = release.manifest, release.verdict.digest
    base = f"urn:seedvault:{digest}"
    info = spdx.CreationInfo(specVersion="3.0.1", created=now, createdBy=[])
    tool = spdx.Tool(spdxId=f"{base}:tool", name=TOOL, creationInfo=info)
    info.createdUsing = [tool]
    elements: list[Any] = [tool]
    counter = iter(range(1, 1 << 30))

    def agent(key_id: str, label: str) -> Any:
        org = spdx.Organization(spdxId=f"urn:seedvault:key:{key_id}", name=label, creationInfo=info,
                                comment=f"seedvault signing key {key_id}, verified under the local trust policy")
        elements.append(org)
        return org

    def relate(source: Any, kind: Any, targets: list[Any], comment: str | None = None) -> None:
        rel = spdx.Relationship(spdxId=f"{base}:relationship:{next(counter)}", creationInfo=info,
                                from_=source, to=targets, relationshipType=kind)
        if comment is not None:
            rel.comment = comment
        elements.append(rel)

    def sha256(value: str) -> Any:
        return spdx.Hash(algorithm=spdx.HashAlgorithm.sha256, hashValue=value)

    signers = [agent(k, label) for k, label in suppliers(release.verdict)]
    info.createdBy = signers[:1] or [tool]
    model = spdx.ai_AIPackage(
        spdxId=f"{base}:model", name=m.name, software_packageVersion=m.version, creationInfo=info,
        software_downloadLocation=m.origin.source_url or "NOASSERTION", releaseTime=m.created,
        software_primaryPurpose=spdx.software_SoftwarePurpose.model, verifiedUsing=[sha256(digest)],
        comment=f"seedvault release {m.ref}; the hash is its manifest digest (SHA-256 of the signed statement)",
    )
    if signers:
        model.suppliedBy = signers[0]
    if m.origin.notes:
        model.ai_informationAboutTraining = m.origin.notes
    elements.append(model)
    license_ = spdx.simplelicensing_LicenseExpression(spdxId=f"{base}:license", creationInfo=info,
                                                      simplelicensing_licenseExpression=m.license.spdx)
    elements.append(license_)
    relate(model, spdx.RelationshipType.hasDeclaredLicense, [license_])
    files = []
    for i, f in enumerate(m.files):
        facts = _file_facts(f)
        files.append(spdx.software_File(
            spdxId=f"{base}:file:{i}", name=f.path, creationInfo=info, verifiedUsing=[sha256(f.sha256)],
            comment="; ".join(f"{k}={v}" for k, v in facts.items())))
    elements += files
    if files:
        relate(model, spdx.RelationshipType.contains, files)
    packages = {id(release.lineage): model}
    for child, node in _nodes(release.lineage):
        a = node.ancestor
        assert a is not None
        name, version = _name_version(node)
        pkg = spdx.ai_AIPackage(
            spdxId=f"{base}:ancestor:{next(counter)}", name=name, creationInfo=info,
            software_primaryPurpose=spdx.software_SoftwarePurpose.model, software_downloadLocation="NOASSERTION",
            comment=f"lineage: {a.chain}; verdict under the local policy: {a.status}"
                    + (f" ({a.reason})" if a.reason else ""))
        if version:
            pkg.software_packageVersion = version
        if a.digest:
            pkg.verifiedUsing = [sha256(a.digest)]
        if a.verdict is not None:
            chosen = suppliers(a.verdict)
            if chosen:
                pkg.suppliedBy = agent(*chosen[0])
        elements.append(pkg)
        packages[id(node)] = pkg
        relate(packages[id(child)], spdx.RelationshipType.descendantOf, [pkg], comment=a.relation)
    doc = spdx.SpdxDocument(
        spdxId=f"{base}:document", name=f"AI-BOM of {m.ref}", creationInfo=info, rootElement=[model],
        element=list(elements), profileConformance=[
            spdx.ProfileIdentifierType.core, spdx.ProfileIdentifierType.software, spdx.ProfileIdentifierType.ai,
            spdx.ProfileIdentifierType.simpleLicensing])
    objects = spdx.SHACLObjectSet()
    for obj in (doc, *elements):
        objects.add(obj)
    out = io.BytesIO()
    spdx.JSONLDSerializer().write(objects, out, indent=2)
    return out.getvalue().decode()


# ---- CycloneDX 1.6 --------------------------------------------------------------------------------


def _cyclonedx(release: Release, now: datetime) -> str:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6

    m, digest = release.manifest, release.verdict.digest
    counter = iter(range(1, 1 << 30))

    def sha256(value: str) -> Any:
        return HashType(alg=HashAlgorithm.SHA_256, content=value)

    def supplier(verdict: Verdict) -> Any:
        chosen = suppliers(verdict)
        return OrganizationalEntity(name=f"{chosen[0][1]} (key {chosen[0][0]})") if chosen else None

    def ancestors(node: LineageNode) -> list[Any]:
        out = []
        for p in node.parents:
            a = p.ancestor
            assert a is not None
            name, version = _name_version(p)
            props = [Property(name="seedvault:relation", value=a.relation),
                     Property(name="seedvault:verdict", value=a.status)]
            if a.reason:
                props.append(Property(name="seedvault:reason", value=a.reason))
            comp = Component(
                type=ComponentType.MACHINE_LEARNING_MODEL, name=name, version=version,
                bom_ref=f"ancestor-{next(counter)}", hashes=[sha256(a.digest)] if a.digest else [],
                supplier=supplier(a.verdict) if a.verdict is not None else None, properties=props,
                licenses=[LicenseExpression(a.manifest.license.spdx)] if a.manifest is not None else [],
            )
            grand = ancestors(p)
            if grand:
                comp.pedigree = Pedigree(ancestors=grand)
            out.append(comp)
        return out

    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=m.name, version=m.version, bom_ref="model",
        hashes=[sha256(digest)], licenses=[LicenseExpression(m.license.spdx)], supplier=supplier(release.verdict),
        description=f"seedvault release {m.ref}; its hash is the manifest digest",
        properties=[Property(name="seedvault:manifest-digest", value=digest)],
    )
    lineage = ancestors(release.lineage)
    if lineage:
        model.pedigree = Pedigree(ancestors=lineage)
    files = [
        Component(type=ComponentType.FILE, name=f.path, bom_ref=f"file-{i}", hashes=[sha256(f.sha256)],
                  properties=[Property(name=f"seedvault:{k}", value=v) for k, v in _file_facts(f).items()])
        for i, f in enumerate(m.files)
    ]
    bom = Bom(components=files)
    bom.metadata.component = model
    bom.metadata.timestamp = now
    bom.register_dependency(model, files)
    with warnings.catch_warnings():  # the library warns about graphs it thinks incomplete; this one is whole
        warnings.simplefilter("ignore")
        text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    return text


def describe(client: Any, ref: str) -> Release:
    """The verified release `ref` of `client`'s vault (every byte checked, fast when
    unchanged) with its ancestry judged under the client's policy."""
    verdict = client.verify(ref, fast=True)
    return Release(verdict, client.lineage(verdict.manifest, verdict.digest))
