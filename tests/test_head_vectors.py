"""The head's signed test vectors (manifests/vectors/head/) and its JSON Schema.

Every head vector is run through `accept_head` exactly as a verifier would (the held head
and the publisher heads offered with it included), and its decoded statement through both
the `Head` parser and manifests/head.schema.json: the two must agree on every payload, but
for the faults the schema cannot express (listed here). The vectors are data: other
implementations of the head can run the same files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from seedvault import errors
from seedvault.head import MAX_REASON_CHARS, MAX_SEQUENCE, MAX_YANKS, Head
from seedvault.manifest import format_time, parse_time
from seedvault.signing import Envelope, TrustPolicy
from seedvault.signing.trusted import AcceptedHead, HeldHead, accept_head

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
VECTOR_DIR = MANIFESTS / "vectors" / "head"
SCHEMA = json.loads((MANIFESTS / "head.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
VECTORS = sorted(VECTOR_DIR.glob("*.json"))
ids = [p.stem for p in VECTORS]

REQUIRED = {
    "head-valid-publisher", "head-valid-yanks", "head-valid-stale", "head-valid-timestamp-refresh",
    "head-invalid-stale-fresh-heads", "head-invalid-rollback", "head-invalid-equivocation",
    "head-invalid-timestamp-changes-latest", "head-invalid-timestamp-adds-yank", "head-invalid-untrusted-signer",
    "head-invalid-out-of-scope", "head-invalid-threshold-two", "head-invalid-predicate-type",
    "head-invalid-payload-type", "head-invalid-sequence-negative", "head-invalid-expires-before-issued",
    "head-invalid-yanked-duplicate-version", "head-invalid-reason-too-long", "head-invalid-digest-uppercase",
    "head-invalid-1025-yanks",
}  # fmt: skip
# Payloads the parser refuses and the schema cannot: cross-field rules, and the JSON reader's
# integer bound (the schema's `maximum` does refuse it; listed only if it did not).
SCHEMA_CANNOT_EXPRESS = {
    "head-invalid-expires-before-issued": "expires after issued compares two fields",
    "head-invalid-expires-equals-issued": "expires after issued compares two fields",
    "head-invalid-subject-mismatch": "the subject must repeat predicate.name@latest.version",
    "head-invalid-subject-digest-mismatch": "the subject must repeat latest.manifest_digest",
    "head-invalid-yanked-duplicate-version": "uniqueItems compares whole entries, not their version",
}
# Verdicts section 11 fixes that the reference implementation does not reach yet (the same
# list as HEAD_KNOWN_GAPS in manifests/make_vectors.py): strict expected failures, so
# closing a gap makes the test fail until the entry is removed.
KNOWN_GAPS: dict[str, str] = {}  # none today
VALID_KEYS = {"verdict", "digest", "sequence", "latest", "yanked", "stale", "signed_by", "known", "publishers",
              "timestamps"}  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def envelope_of(data: dict[str, Any]) -> Envelope:
    return Envelope.from_dict(data)


def payload(vector: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(vector["envelope"]["payload"])


def held_of(vector: dict[str, Any]) -> HeldHead | None:
    held = vector.get("held")
    if held is None:
        return None
    env = envelope_of(held["envelope"])
    base = held.get("publisher_envelope")
    content = Head.from_payload(envelope_of(base).payload).content() if base is not None else None
    return HeldHead(Head.from_payload(env.payload), env.digest, content)


def run(vector: dict[str, Any]) -> AcceptedHead:
    """As a client judges a head: the publisher heads offered with it are accepted first,
    with no held head, and count only when publishers alone signed them."""
    policy = TrustPolicy.from_dict(vector["policy"])
    now = parse_time(vector["now"], "now")
    bases = []
    for raw in vector.get("bases", []):
        base = accept_head(envelope_of(raw), policy, None, now=now)
        if base.by_publishers:
            bases.append(base.head)
    return accept_head(envelope_of(vector["envelope"]), policy, held_of(vector), now=now, bases=tuple(bases))


def by_name(name: str) -> dict[str, Any]:
    return load(VECTOR_DIR / f"{name}.json")


def parser_refuses(raw: bytes) -> bool:
    try:
        Head.from_payload(raw)
    except errors.ManifestError:
        return True
    return False


def test_required_vectors_present() -> None:
    names = set(ids)
    assert names >= REQUIRED, f"missing vectors: {sorted(REQUIRED - names)}"
    assert names >= set(SCHEMA_CANNOT_EXPRESS) | set(KNOWN_GAPS)


@pytest.mark.parametrize("path", VECTORS, ids=ids)
def test_vector_shape(path: Path) -> None:
    vector = load(path)
    assert set(vector) - {"held", "bases"} == {"description", "envelope", "policy", "now", "expected", "schema_valid"}
    if "held" in vector:
        assert set(vector["held"]) in ({"envelope"}, {"envelope", "publisher_envelope"})
    if "bases" in vector:
        assert isinstance(vector["bases"], list) and vector["bases"]
    assert {"fresh_heads", "yanked"} <= set(vector["policy"])
    expected = vector["expected"]
    assert path.stem.startswith(f"head-{expected['verdict']}-")
    if expected["verdict"] == "valid":
        assert set(expected) == VALID_KEYS
        assert expected["signed_by"] in ("publisher", "timestamp")
    else:
        assert set(expected) == {"verdict", "error", "message_contains"}
        assert expected["message_contains"]


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[p.stem])) if p.stem in KNOWN_GAPS
     else p for p in VECTORS],
    ids=ids,
)
def test_vector_verdict(path: Path) -> None:
    vector = load(path)
    expected = vector["expected"]
    if expected["verdict"] == "valid":
        accepted = run(vector)
        head = accepted.head
        counted = [r for r in accepted.signers if r.status == "valid"]
        assert {
            "verdict": "valid", "digest": accepted.digest, "sequence": head.sequence,
            "latest": {"version": head.latest_version, "manifest_digest": head.latest_digest},
            "yanked": [y.to_dict() for y in head.yanked], "stale": accepted.stale,
            "signed_by": "publisher" if accepted.by_publishers else "timestamp", "known": accepted.known,
            "publishers": len({r.key_id for r in counted if r.role == "publisher"}),
            "timestamps": len({r.key_id for r in counted if r.role == "timestamp"}),
        } == expected  # fmt: skip
        return
    error = getattr(errors, expected["error"])
    assert issubclass(error, errors.Error)
    with pytest.raises(errors.Error) as caught:
        run(vector)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert expected["message_contains"] in str(caught.value)


@pytest.mark.parametrize("path", VECTORS, ids=ids)
def test_held_and_bases_are_accepted_heads(path: Path) -> None:
    """What a vector says the verifier holds, or is offered beside the head, is itself a
    head this policy accepts (the bases: signed by publishers alone)."""
    vector = load(path)
    policy = TrustPolicy.from_dict(vector["policy"])
    now = parse_time(vector["now"], "now")
    for raw in vector.get("bases", []):
        assert accept_head(envelope_of(raw), policy, None, now=now).by_publishers
    held = vector.get("held")
    if held is not None and "publisher_envelope" in held:
        assert accept_head(envelope_of(held["publisher_envelope"]), policy, None, now=now).by_publishers


@pytest.mark.parametrize("path", VECTORS, ids=ids)
def test_vector_digest_is_sha256_of_payload(path: Path) -> None:
    vector = load(path)
    if vector["expected"]["verdict"] == "valid":
        assert vector["expected"]["digest"] == hashlib.sha256(payload(vector)).hexdigest()


@pytest.mark.parametrize("path", VECTORS, ids=ids)
def test_schema_and_parser_agree_on_the_statement(path: Path) -> None:
    vector = load(path)
    raw = payload(vector)
    statement = json.loads(raw)
    schema_ok = VALIDATOR.is_valid(statement)
    assert schema_ok is vector["schema_valid"], [e.message for e in VALIDATOR.iter_errors(statement)][:3]
    refused = parser_refuses(raw)
    if path.stem in SCHEMA_CANNOT_EXPRESS:
        assert refused and schema_ok, "listed as beyond the schema: the parser must refuse it, the schema accept it"
    else:
        assert refused is not schema_ok, "the schema and the parser disagree on this payload"
    if vector["expected"]["verdict"] == "valid":
        assert schema_ok


@pytest.mark.parametrize(
    "path",
    [p for p in VECTORS if p.stem.startswith("head-valid") and p.stem not in
     ("head-valid-unknown-fields", "head-valid-no-yanked-member")],
    ids=lambda p: p.stem,
)
def test_valid_head_round_trips_unchanged(path: Path) -> None:
    raw = payload(load(path))
    statement = json.loads(raw)
    for key in ("issued", "expires"):
        statement["predicate"][key] = format_time(parse_time(statement["predicate"][key], key))
    assert Head.from_payload(raw).to_dict() == statement


def test_unknown_predicate_fields_are_carried() -> None:
    statement = json.loads(payload(by_name("head-valid-unknown-fields")))
    again = Head.from_dict(statement).to_dict()
    assert again["predicate"]["x-predicate-extension"] == statement["predicate"]["x-predicate-extension"]


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_generator_reproduces_the_committed_vectors() -> None:
    """make_vectors.py is deterministic: regenerating gives the committed files, byte for byte."""
    done = subprocess.run(
        [sys.executable, str(MANIFESTS / "make_vectors.py"), "--check"],
        capture_output=True, text=True, timeout=240, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


# ---- the schema and the parser agree on edits of a valid head --------------------------


def base_statement() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(payload(by_name("head-valid-yanks")))
    return data


_DELETE = object()


def edit(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node: Any = out
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


def yanks(n: int) -> list[dict[str, str]]:
    return [{"version": f"0.{i // 100}.{i % 100}", "reason": "r"} for i in range(n)]


REFUSED_BY_BOTH = [
    ("_type", "https://in-toto.io/Statement/v0.1"),
    ("predicateType", "https://seedvault.dev/manifest/v1"),
    ("subject", []),
    ("subject", {"name": "acme/tiny-llm@1.1.0"}),
    ("subject.0.uri", "https://example.com/x"),
    ("subject.0.digest.sha256", _DELETE),
    ("predicate", _DELETE),
    ("predicate", []),
    ("predicate.name", _DELETE),
    ("predicate.name", "acme"),
    ("predicate.name", "acme/tiny/llm"),
    ("predicate.name", "acme/tiny-llm\n"),
    ("predicate.sequence", _DELETE),
    ("predicate.sequence", 0),
    ("predicate.sequence", 1.5),
    ("predicate.sequence", None),
    ("predicate.issued", "2026-01-20"),
    ("predicate.issued", "2026-01-20T00:00:00"),
    ("predicate.issued", "2026-01-20T00:00:60Z"),
    ("predicate.expires", "2026-02-19t00:00:00z"),
    ("predicate.expires", _DELETE),
    ("predicate.latest", "1.1.0"),
    ("predicate.latest.version", _DELETE),
    ("predicate.latest.manifest_digest", _DELETE),
    ("predicate.latest.manifest_digest", None),
    ("predicate.yanked", "1.0.0"),
    ("predicate.yanked.0", "1.0.0"),
    ("predicate.yanked.0.version", _DELETE),
    ("predicate.yanked.0.version", "1.0.0/"),
    ("predicate.yanked.0.version", 1),
    ("predicate.yanked.0.reason", 7),
    ("predicate.yanked.0.reason", "x" * (MAX_REASON_CHARS + 1)),
    ("predicate.yanked.0.reason", "tab\there"),
    ("predicate.yanked.0.reason", " "),
    ("predicate.yanked", yanks(MAX_YANKS + 1)),
]
ACCEPTED_BY_BOTH = [
    ("x-extension", {"a": 1}),
    ("predicate.x-extension", [1, 2]),
    ("predicate.latest.x-note", "n"),
    ("predicate.yanked.0.x-ticket", "t"),
    ("predicate.yanked", []),
    ("predicate.yanked", _DELETE),
    ("predicate.yanked", yanks(MAX_YANKS)),
    ("predicate.yanked.0.reason", "x" * MAX_REASON_CHARS),
    ("predicate.yanked.0.reason", " padded "),
    ("predicate.yanked.0.reason", "模型已撤回 😀"),
    ("predicate.sequence", 1),
    ("predicate.sequence", MAX_SEQUENCE),
    ("predicate.issued", "2026-01-20T02:00:00+02:00"),
]


def _id(field: str, value: Any) -> str:
    shown = "<deleted>" if value is _DELETE else repr(value)
    return f"{field}={shown}"[:60]


@pytest.mark.parametrize(("field", "value"), REFUSED_BY_BOTH, ids=[_id(f, v) for f, v in REFUSED_BY_BOTH])
def test_schema_and_parser_both_refuse(field: str, value: Any) -> None:
    statement = edit(base_statement(), field, value)
    assert not VALIDATOR.is_valid(statement), "the schema accepted it"
    with pytest.raises(errors.ManifestError):
        Head.from_dict(statement)


@pytest.mark.parametrize(("field", "value"), ACCEPTED_BY_BOTH, ids=[_id(f, v) for f, v in ACCEPTED_BY_BOTH])
def test_schema_and_parser_both_accept(field: str, value: Any) -> None:
    statement = edit(base_statement(), field, value)
    assert list(VALIDATOR.iter_errors(statement)) == []
    Head.from_dict(statement)


# Characters a reason may not hold (not printable to Python), which the schema refuses too.
NOT_PRINTABLE = ["\x00", "\n", "\r", "\x1b", "\x7f", "\x85", "\xa0", "\xad", "\u061c", "\u200b", "\u200e", "\u2028",
                 "\u2029", "\u202e", "\u2066", "\u3000", "\ue000", "\ufeff"]  # fmt: skip


@pytest.mark.parametrize("char", NOT_PRINTABLE, ids=lambda c: f"U+{ord(c):04X}")
def test_unprintable_reason_refused_by_parser_and_schema(char: str) -> None:
    statement = edit(base_statement(), "predicate.yanked.0.reason", f"bad{char}reason")
    assert not VALIDATOR.is_valid(statement)
    with pytest.raises(errors.ManifestError, match="printable"):
        Head.from_dict(statement)


def test_schema_refuses_no_printable_reason_the_parser_accepts() -> None:
    """Over the Basic Multilingual Plane the schema's reason pattern refuses only what the
    parser refuses (it is weaker, never stricter)."""
    schema = SCHEMA["$defs"]["yank"]["properties"]["reason"]
    check = Draft202012Validator(schema)
    stricter = [hex(cp) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF
                and chr(cp).isprintable() and chr(cp) != " " and not check.is_valid(f"a{chr(cp)}")]
    assert stricter == []


def test_readme_lists_every_head_vector() -> None:
    readme = (MANIFESTS / "README.md").read_text()
    section = readme[readme.index("### 11.1 Head schema and test vectors"):]
    for stem in ids:
        short = "-" + stem.removeprefix("head-valid-").removeprefix("head-invalid-")
        assert f"`{stem}`" in section or f"`{short}`" in section, stem
