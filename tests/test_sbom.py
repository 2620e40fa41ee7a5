"""AI-BOMs of a verified release: SPDX 3.0.1 (AI profile) and CycloneDX 1.6 ML-BOM, each
checked by its own library: spdx-python-model's deserializer (types, required properties,
every reference resolved) and cyclonedx-python-lib's strict JSON Schema validator."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ok, refused
from conftest import trust
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from gguf_helpers import write_gguf
from spdx_python_model import v3_0_1 as spdx

from seedvault.client import Client
from seedvault.sbom import describe, render
from seedvault.signing import PrivateKey


@pytest.fixture
def released(tmp_path: Path, make_client: Any, pub_key: PrivateKey, stranger_key: PrivateKey) -> Client:
    """acme/q@1 quantized-from acme/base@1 (held, verified) and fine-tuned-from other/x@2 (not held)."""
    client: Client = make_client("bom")
    trust(client, pub_key)
    base = tmp_path / "base"
    base.mkdir()
    write_gguf(base / "base.gguf", seed=1)
    client.publish(base, name="acme/base", version="1", license="Apache-2.0", key=pub_key, publisher="Acme")
    q = tmp_path / "q"
    q.mkdir()
    write_gguf(q / "model-q8_0.gguf", seed=2)
    (q / "LICENSE").write_text("Apache License 2.0")
    with pytest.warns(UserWarning, match="not in this vault"):
        client.publish(q, name="acme/q", version="1", license="Apache-2.0", key=pub_key, publisher="Acme",
                       lineage=[("quantized-from", "acme/base@1"), ("fine-tuned-from", "other/x@2")],
                       notes="quantized with llama.cpp")
    return client


def _spdx_objects(text: str) -> spdx.SHACLObjectSet:
    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().read(io.BytesIO(text.encode()), objects)
    return objects


def test_spdx_bom_is_valid_and_says_what_was_verified(released: Client, pub_key: PrivateKey) -> None:
    release = describe(released, "acme/q@1")
    text = render(release, "spdx")
    objects = _spdx_objects(text)
    assert objects.missing_ids == set()  # every reference resolves inside the document
    spdx.JSONLDSerializer().write(objects, io.BytesIO())  # re-encoding enforces required properties
    (doc,) = objects.foreach_type(spdx.SpdxDocument)
    assert {str(p) for p in doc.profileConformance} >= {spdx.ProfileIdentifierType.ai}
    packages = {p.name: p for p in objects.foreach_type(spdx.ai_AIPackage)}
    model = packages["acme/q"]
    assert model.software_packageVersion == "1" and model.ai_informationAboutTraining == "quantized with llama.cpp"
    assert model.suppliedBy.spdxId == f"urn:seedvault:key:{pub_key.key_id}"
    assert [h.hashValue for h in model.verifiedUsing] == [release.verdict.digest]
    files = {f.name: f for f in objects.foreach_type(spdx.software_File)}
    gguf_entry = release.manifest.file("model-q8_0.gguf")
    assert [h.hashValue for h in files["model-q8_0.gguf"].verifiedUsing] == [gguf_entry.sha256]
    assert "quantization=Q8_0" in files["model-q8_0.gguf"].comment or "Q8_0" in files["model-q8_0.gguf"].comment
    rels = list(objects.foreach_type(spdx.Relationship))
    (lic,) = [r for r in rels if r.relationshipType == spdx.RelationshipType.hasDeclaredLicense]
    assert lic.to[0].simplelicensing_licenseExpression == "Apache-2.0"
    lineage = {r.to[0].name: r for r in rels if r.relationshipType == spdx.RelationshipType.descendantOf}
    assert set(lineage) == {"acme/base", "other/x"} and lineage["acme/base"].comment == "quantized-from"
    base = packages["acme/base"]
    assert [h.hashValue for h in base.verifiedUsing] == [released.resolve("acme/base@1").digest]
    assert "verdict under the local policy: verified" in base.comment and base.suppliedBy is not None
    assert "unpinned" in packages["other/x"].comment and packages["other/x"].suppliedBy is None


def test_cyclonedx_bom_is_valid_against_the_1_6_schema(released: Client, pub_key: PrivateKey) -> None:
    release = describe(released, "acme/q@1")
    text = render(release, "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "acme/q" and model["version"] == "1"
    assert model["hashes"] == [{"alg": "SHA-256", "content": release.verdict.digest}]
    assert model["licenses"] == [{"expression": "Apache-2.0"}]
    assert model["supplier"]["name"].endswith(f"(key {pub_key.key_id})")  # the verified signer, not "Acme"
    ancestors = {a["name"]: a for a in model["pedigree"]["ancestors"]}
    props = {p["name"]: p["value"] for p in ancestors["acme/base"]["properties"]}
    assert props == {"seedvault:relation": "quantized-from", "seedvault:verdict": "verified"}
    assert {p["name"]: p["value"] for p in ancestors["other/x"]["properties"]}["seedvault:verdict"] == "unpinned"
    files = {c["name"]: c for c in bom["components"]}
    assert files["LICENSE"]["hashes"][0]["content"] == release.manifest.file("LICENSE").sha256
    fprops = {p["name"]: p["value"] for p in files["model-q8_0.gguf"]["properties"]}
    assert fprops["seedvault:format"] == "gguf" and fprops["seedvault:quantization"].startswith("F16")


def test_a_corrupted_bom_fails_its_validator(released: Client) -> None:
    """The validators used above do refuse: a BOM missing what the schema requires fails."""
    bom = json.loads(render(describe(released, "acme/q@1"), "cyclonedx"))
    bom["components"][0]["type"] = "not-a-type"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None
    doc = json.loads(render(describe(released, "acme/q@1"), "spdx"))
    for obj in doc["@graph"]:
        if obj.get("type") == "ai_AIPackage":
            obj["releaseTime"] = "yesterday"
    with pytest.raises(ValueError):
        _spdx_objects(json.dumps(doc))


def test_sbom_command_writes_both_formats(released: Client, tmp_path: Path) -> None:
    assert released.home is not None
    home = released.home
    released.close()
    out = tmp_path / "bom.spdx.json"
    data = ok(home, "sbom", "acme/q@1", "--format", "spdx", "--out", out, "--json").json()
    assert data["format"] == "spdx" and Path(data["out"]) == out.absolute()
    assert _spdx_objects(out.read_text()).missing_ids == set()
    refused(home, 2, "sbom", "acme/q@1", "--format", "spdx", "--out", out)  # exists: no silent overwrite
    text = ok(home, "sbom", "acme/q", "--format", "cyclonedx").out
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    refused(home, 2, "sbom", "acme/q@1", "--format", "xml")
    refused(home, 4, "sbom", "acme/none@1", "--format", "spdx")


def test_sbom_of_a_release_that_no_longer_verifies_is_refused(released: Client) -> None:
    snapshot = released.snapshot_path("acme/q@1")
    target = snapshot / "LICENSE"
    target.chmod(0o644)
    target.write_text("Another license")
    assert released.home is not None
    refused(released.home, 3, "sbom", "acme/q@1", "--format", "cyclonedx")
