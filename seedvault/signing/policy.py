"""The local trust policy: which keys count, for what, where; and what else must hold.

Stored as TOML in the config directory. Roles are `publisher` and `approver`; each key is
trusted only for the namespaces its scopes match (`acme/*`, `acme/model`, `*`). An empty
policy trusts nothing. Unknown roles and malformed entries are refused on load, never
silently ignored.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import tomli_w

from seedvault import licenses as _licenses
from seedvault._text import listing, quote, toml_error
from seedvault.errors import NotFoundError, UsageError
from seedvault.signing.keys import PublicKey
from seedvault.tlog.note import COSIGNATURE_V1, ED25519, Verifier

Role = Literal["publisher", "approver", "timestamp"]
# A timestamp key signs heads only: it refreshes a head's sequence and expiry (so release
# keys can stay offline), and never changes what the head says.
ROLES: tuple[Role, ...] = ("publisher", "approver", "timestamp")
YankedRule = Literal["refuse", "warn"]
YANKED_RULES: tuple[YankedRule, ...] = ("refuse", "warn")
_SCOPE = re.compile(r"^(\*|[A-Za-z0-9._*-]+/[A-Za-z0-9._*-]+)$")


_POLICY_FIELDS = ("version", "publisher_threshold", "required_approvals", "allowed_licenses", "yanked",
                  "fresh_heads", "revoked", "keys", "lineage_deny", "verified_lineage", "logs", "witnesses", "logged",
                  "witnesses_required")
_KEY_FIELDS = ("id", "name", "role", "scopes", "public_key")
_KEY_ID = re.compile(r"[0-9a-f]{64}")


def _known_fields(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        close = [m for u in unknown for m in difflib.get_close_matches(u, known, 1)]
        raise UsageError(f"{where}: unknown {'field' if len(unknown) == 1 else 'fields'} {listing(unknown)}; "
                         f"expected some of {listing(known, len(known))}",
                         hint=f"did you mean {listing(close)}?" if close else None)


def check_scope(scope: str) -> str:
    if not _SCOPE.fullmatch(scope):
        raise UsageError(f"scope: expected '*', 'namespace/*' or 'namespace/name', found {quote(scope)}")
    return scope


@dataclass(frozen=True)
class TrustedKey:
    key: PublicKey
    role: Role
    scopes: tuple[str, ...] = ("*",)
    name: str = ""

    @property
    def key_id(self) -> str:
        return self.key.key_id

    @property
    def label(self) -> str:
        return self.name or self.key_id[:16]

    def covers(self, model_name: str) -> bool:
        return any(fnmatch.fnmatchcase(model_name, s) for s in self.scopes)


@dataclass(frozen=True)
class LogKey:
    """A transparency log's key (type 01) or a witness's (type 04), as a signed-note vkey."""

    vkey: str
    name: str = ""

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_vkey(self.vkey)

    @property
    def label(self) -> str:
        return self.name or self.verifier.name


def _log_keys(data: Any, field: str, kind: int, source: str) -> tuple[LogKey, ...]:
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise UsageError(f"{source}: expected {field} to be a list of tables with a vkey, found {quote(data)}")
    out = []
    for i, entry in enumerate(data):
        where = f"{source}: {field}[{i}]"
        _known_fields(entry, ("vkey", "name"), where)
        verifier = Verifier.from_vkey(str(entry.get("vkey", "")), where)
        if verifier.kind != kind:
            raise UsageError(f"{where}: expected a {'log' if kind == ED25519 else 'witness'} key, found another kind")
        out.append(LogKey(verifier.vkey, str(entry.get("name", ""))))
    return tuple(out)


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...] = ()
    revoked: frozenset[str] = frozenset()
    publisher_threshold: int = 1
    required_approvals: int = 0
    allowed_licenses: tuple[str, ...] | None = None  # None: any license
    yanked: YankedRule = "refuse"  # what load, snapshot_path and pull do with a yanked release
    fresh_heads: bool = False  # refuse a head past its expiry (freeze defence), not only warn
    lineage_deny: tuple[str, ...] = ()  # scopes ('ns/*'): refuse a model with any such ancestor
    verified_lineage: bool = False  # every ancestor must be held (or bundled) and verify here
    # Transparency logs (seedvault.tlog): the logs and witnesses trusted, and whether every
    # release must carry a proof of inclusion in one of those logs, cosigned by K witnesses.
    logs: tuple[LogKey, ...] = ()
    witnesses: tuple[LogKey, ...] = ()
    require_logged: bool = False
    required_witnesses: int = 0

    def keys_by_id(self, key_id: str) -> list[TrustedKey]:
        return [k for k in self.keys if k.key_id == key_id]

    def with_key(self, trusted: TrustedKey) -> TrustPolicy:
        """Add a key for a role; adding the same key and role again replaces that entry."""
        others = tuple(k for k in self.keys if (k.key_id, k.role) != (trusted.key_id, trusted.role))
        return replace(self, keys=(*others, trusted))

    def revoke(self, key_id: str) -> TrustPolicy:
        return replace(self, revoked=self.revoked | {key_id})

    def license_allowed(self, expression: str) -> bool:
        """Any license when no list is set; otherwise SPDX matching (`licenses.allowed`)."""
        return self.allowed_licenses is None or _licenses.allowed(expression, self.allowed_licenses)

    def allow_licenses(self, expressions: tuple[str, ...]) -> TrustPolicy:
        """Add licenses (normalized SPDX, each once) to the allowed list, creating it."""
        current = list(self.allowed_licenses or ())
        for expression in expressions:
            normalized = _licenses.normalize(expression, "allowed license")
            if normalized.lower() not in {c.lower() for c in current}:
                current.append(normalized)
        return replace(self, allowed_licenses=tuple(current))

    # ---- TOML ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": 1,
            "publisher_threshold": self.publisher_threshold,
            "required_approvals": self.required_approvals,
        }
        if self.allowed_licenses is not None:
            out["allowed_licenses"] = list(self.allowed_licenses)
        out["yanked"] = self.yanked
        out["fresh_heads"] = self.fresh_heads
        out.update(_lineage_to_dict(self))
        out["revoked"] = sorted(self.revoked)
        if self.logs or self.witnesses or self.require_logged or self.required_witnesses:
            out["logged"] = self.require_logged
            out["witnesses_required"] = self.required_witnesses
            out["logs"] = [{"vkey": k.vkey, "name": k.name} for k in self.logs]
            out["witnesses"] = [{"vkey": k.vkey, "name": k.name} for k in self.witnesses]
        out["keys"] = [
            {
                "id": k.key_id,
                "name": k.name,
                "role": k.role,
                "scopes": list(k.scopes),
                "public_key": k.key.pem(),
            }
            for k in self.keys
        ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "policy") -> TrustPolicy:
        if data.get("version", 1) != 1:
            raise UsageError(f"{source}: expected policy version 1, found {quote(data.get('version'))}")
        _known_fields(data, _POLICY_FIELDS, source)  # a misspelt requirement must not be silently dropped
        entries = data.get("keys", [])
        if not isinstance(entries, list):
            raise UsageError(f"{source}: expected keys to be a list of tables ([[keys]]), found {quote(entries)}")
        keys = []
        for i, entry in enumerate(entries):
            where = f"{source}: keys[{i}]"
            if not isinstance(entry, dict):
                raise UsageError(f"{where}: expected a table")
            _known_fields(entry, _KEY_FIELDS, where)
            role = entry.get("role")
            if role not in ROLES:
                raise UsageError(f"{where}: expected role {', '.join(ROLES[:-1])} or {ROLES[-1]}, found {quote(role)}")
            key = PublicKey.from_pem(str(entry.get("public_key", "")), where)
            if entry.get("id") not in (None, key.key_id):
                raise UsageError(
                    f"{where}: id {entry.get('id')} does not match its public key, whose id is {key.key_id}"
                )
            scopes = entry.get("scopes", ["*"])
            if not isinstance(scopes, list) or not scopes:
                raise UsageError(f"{where}: expected a non-empty list of scopes, found {quote(scopes)}")
            keys.append(
                TrustedKey(key, role, tuple(check_scope(str(s)) for s in scopes), str(entry.get("name", "")))
            )
        allowed = data.get("allowed_licenses")
        revoked = data.get("revoked", [])
        for field_name, value in (("revoked", revoked), ("allowed_licenses", allowed)):
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise UsageError(f"{source}: expected {field_name} to be a list of strings, found {quote(value)}")
        for r in revoked:
            if not _KEY_ID.fullmatch(r):
                raise UsageError(f"{source}: revoked: expected key ids (64 lowercase hex digits), found {quote(r)}")
        thresholds = {
            k: data.get(k, default) for k, default in (("publisher_threshold", 1), ("required_approvals", 0))
        }
        for k, v in thresholds.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise UsageError(f"{source}: expected {k} to be an integer >= 0, found {quote(v)}")
        if thresholds["publisher_threshold"] < 1:
            raise UsageError(f"{source}: publisher_threshold must be at least 1 (fail closed)")
        yanked = data.get("yanked", "refuse")
        if yanked not in YANKED_RULES:
            raise UsageError(f"{source}: expected yanked to be {' or '.join(YANKED_RULES)}, found {quote(yanked)}")
        fresh_heads = data.get("fresh_heads", False)
        if not isinstance(fresh_heads, bool):
            raise UsageError(f"{source}: expected fresh_heads to be true or false, found {quote(fresh_heads)}")
        lineage_deny, verified_lineage = _lineage_from_dict(data, source)
        logged, witnesses_required = data.get("logged", False), data.get("witnesses_required", 0)
        if not isinstance(logged, bool):
            raise UsageError(f"{source}: expected logged to be true or false, found {quote(logged)}")
        if not isinstance(witnesses_required, int) or isinstance(witnesses_required, bool) or witnesses_required < 0:
            raise UsageError(f"{source}: expected witnesses_required to be an integer >= 0, "
                             f"found {quote(witnesses_required)}")
        return cls(
            logs=_log_keys(data.get("logs", []), "logs", ED25519, source),
            witnesses=_log_keys(data.get("witnesses", []), "witnesses", COSIGNATURE_V1, source),
            require_logged=logged,
            required_witnesses=witnesses_required,
            lineage_deny=lineage_deny,
            verified_lineage=verified_lineage,
            yanked=yanked,
            fresh_heads=fresh_heads,
            keys=tuple(keys),
            revoked=frozenset(revoked),
            publisher_threshold=thresholds["publisher_threshold"],
            required_approvals=thresholds["required_approvals"],
            allowed_licenses=(
                tuple(_licenses.normalize(x, f"{source}: allowed_licenses") for x in allowed)
                if allowed is not None else None
            ),
        )

    @classmethod
    def load(cls, path: Path) -> TrustPolicy:
        """Read the policy; a missing file is the empty policy, which trusts nothing."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            where, hint = toml_error(exc)
            raise UsageError(f"trust policy {path}: expected TOML, found invalid data {where}", hint=hint) from None
        return cls.from_dict(data, str(path))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(tomli_w.dumps(self.to_dict()).encode())
        os.replace(tmp, path)

    def find(self, key_id_prefix: str) -> list[TrustedKey]:
        matches = [k for k in self.keys if k.key_id.startswith(key_id_prefix)]
        if not matches:
            raise NotFoundError(f"no trusted key with id starting {quote(key_id_prefix)}")
        return matches



# ---- lineage requirements (judged in signing.trusted.check_lineage) ---------------------------


def _lineage_to_dict(policy: TrustPolicy) -> dict[str, Any]:
    """Written only when set, so a policy that never used them reads as before."""
    out: dict[str, Any] = {}
    if policy.lineage_deny:
        out["lineage_deny"] = list(policy.lineage_deny)
    if policy.verified_lineage:
        out["verified_lineage"] = True
    return out


def _lineage_from_dict(data: dict[str, Any], source: str) -> tuple[tuple[str, ...], bool]:
    deny = data.get("lineage_deny", [])
    if not (isinstance(deny, list) and all(isinstance(v, str) for v in deny)):
        raise UsageError(f"{source}: expected lineage_deny to be a list of scopes such as 'ns/*', found {quote(deny)}")
    verified = data.get("verified_lineage", False)
    if not isinstance(verified, bool):
        raise UsageError(f"{source}: expected verified_lineage to be true or false, found {quote(verified)}")
    return tuple(check_scope(d) for d in deny), verified


def denied_by(policy: TrustPolicy, model_name: str) -> str | None:
    """The lineage_deny scope matching model `model_name`, if any."""
    return next((s for s in policy.lineage_deny if fnmatch.fnmatchcase(model_name, s)), None)
