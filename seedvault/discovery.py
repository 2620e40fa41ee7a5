"""Discovery with no server: heads in the DHT, envelopes from the swarm.

For each model, a DHT item (BEP 44) under a publisher's (or timestamp) Ed25519 key, salted
with the model's name, points at what is current: a **head pointer** holds the head's
sequence, latest version, manifest digest and expiry, and the info-hashes of the model's
head card and of the latest release's envelope card (`p2p/cards.py`). A **release pointer**,
salted with `NAME@VERSION`, names one release's envelope card. Pointers are signed by the
DHT key only; they are hints. What a client acts on is the signed head and envelope inside
the cards, judged like statements from a registry or a bundle (`sources.choose_release`).

A client asks only under keys its policy trusts for the model (an item under any other key
is never even looked up), ignores a pointer whose sequence is below the head it holds (a
replay), and refuses a card whose head disagrees with its pointer.

Anyone seeding a model seeds its cards. Only a holder of a DHT key can put pointers: the
Python bindings of libtorrent sign every put themselves and cannot store an item someone
else signed, so a seeder without the key re-seeds the cards but cannot refresh pointers;
libtorrent DHT nodes keep items until they are replaced (other implementations drop them
after about two hours). A P-256-only publisher announces through an Ed25519 key trusted
with role `timestamp` for the namespace (BEP 44 signs with Ed25519 only).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libtorrent as lt

from seedvault._bencode import bencode
from seedvault.bundle import heads_file, parse_heads_file
from seedvault.client import Client
from seedvault.errors import (
    Error,
    ExpiredError,
    IntegrityError,
    ManifestError,
    RollbackError,
    SeedvaultWarning,
    TransferError,
)
from seedvault.head import Head
from seedvault.manifest import Manifest, check_model_name, check_version
from seedvault.p2p import cards, dht
from seedvault.p2p.session import Endpoint, Swarm
from seedvault.signing import Envelope, PrivateKey

POINTER_FORMAT = 1
MAX_POINTER_TIME = 253402300799  # 9999-12-31T23:59:59Z
MAX_DHT_KEYS = 8  # trusted keys looked up per model
CARD_TIMEOUT = 30.0
LOOKUP_TIMEOUT = 10.0
DISCOVERY_TIMEOUT = 120.0  # s for all of one source's lookups and card fetches
REPUT_EVERY = 30 * 60.0  # s: a key holder puts unchanged pointers again this often


def head_salt(name: str) -> bytes:
    return dht.salt_for("head", name)


def release_salt(name: str, version: str) -> bytes:
    return dht.salt_for("release", f"{name}@{version}")


# ---- pointers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pointer:
    name: str
    version: str
    digest: str
    envelope_card: str | None  # hex v2 info-hash
    sequence: int | None = None  # head pointers only
    expires: datetime | None = None
    heads_card: str | None = None

    def encode(self) -> bytes:
        value: dict[str, Any] = {"f": POINTER_FORMAT, "n": self.name, "v": self.version,
                                 "d": bytes.fromhex(self.digest)}
        if self.envelope_card:
            value["e"] = bytes.fromhex(self.envelope_card)
        if self.sequence is not None:
            value["s"] = self.sequence
        if self.expires is not None:
            value["x"] = int(self.expires.timestamp())
        if self.heads_card:
            value["h"] = bytes.fromhex(self.heads_card)
        raw = bencode(value)
        if len(raw) > dht.MAX_ITEM_VALUE:
            raise ManifestError(f"DHT pointer for {self.name}: expected at most {dht.MAX_ITEM_VALUE} bytes, "
                                f"found {len(raw)}")
        return raw

    @classmethod
    def decode(cls, raw: bytes, where: str) -> Pointer:
        """A pointer from a DHT item: exactly our canonical encoding, every field checked."""
        try:
            value = lt.bdecode(raw)
        except RuntimeError:
            value = None
        if not isinstance(value, dict) or bencode(value) != raw:
            raise ManifestError(f"{where}: expected a canonical bencoded seedvault pointer, found other bytes")
        fields = {k.decode("ascii", "replace") if isinstance(k, bytes) else str(k): v for k, v in value.items()}
        if fields.get("f") != POINTER_FORMAT or set(fields) - set("fnvdesxh"):
            raise ManifestError(f"{where}: expected a seedvault pointer of format {POINTER_FORMAT}, found another")

        def text(key: str) -> str:
            v = fields.get(key)
            if not isinstance(v, bytes):
                raise ManifestError(f"{where}: expected text under {key!r}")
            return v.decode("utf-8", "strict")

        def hash32(key: str) -> str | None:
            v = fields.get(key)
            if v is None:
                return None
            if not isinstance(v, bytes) or len(v) != 32:
                raise ManifestError(f"{where}: expected 32 bytes under {key!r}")
            return v.hex()

        def number(key: str) -> int | None:
            v = fields.get(key)
            if v is None:
                return None
            if not isinstance(v, int) or not 0 <= v < 2**53:  # a head's sequence bound; a time far past 9999
                raise ManifestError(f"{where}: expected a non-negative integer under {key!r}")
            return v

        try:
            name, version = check_model_name(text("n")), check_version(text("v"))
        except UnicodeDecodeError:
            raise ManifestError(f"{where}: expected UTF-8 text for the name and version") from None
        digest = hash32("d")
        if digest is None:
            raise ManifestError(f"{where}: expected the manifest digest under 'd'")
        expires = number("x")
        if expires is not None and expires > MAX_POINTER_TIME:
            raise ManifestError(f"{where}: expected an expiry before the year 10000 under 'x'")
        return cls(name, version, digest, hash32("e"), number("s"),
                   datetime.fromtimestamp(expires, UTC) if expires is not None else None, hash32("h"))


# ---- the client side: the DHT as a source --------------------------------------------------


@dataclass
class _Found:
    pointer: Pointer
    key_id: str


class DhtSource:
    """`sources.EnvelopeSource` over a DHT the swarm has joined."""

    label = "the DHT"

    def __init__(self, client: Client, swarm: Swarm, *, card_timeout: float = CARD_TIMEOUT,
                 lookup_timeout: float = LOOKUP_TIMEOUT, timeout: float = DISCOVERY_TIMEOUT) -> None:
        self.client = client
        self.swarm = swarm
        self.card_timeout = card_timeout
        self.lookup_timeout = lookup_timeout
        # One deadline for everything this source does (every key's lookup, every card):
        # a DHT full of silent nodes cannot stretch a pull past what the user allowed.
        self.deadline = time.monotonic() + timeout
        self._cards: dict[tuple[str, str], str] = {}  # (name, version) -> envelope card info-hash
        self.refused: list[Error] = []  # pointers and cards passed over, and why

    def _keys(self, name: str) -> list[tuple[bytes, str]]:
        policy = self.client.policy
        keys: dict[bytes, str] = {}
        for trusted in policy.keys:
            if trusted.role in ("publisher", "timestamp") and trusted.covers(name) and \
                    trusted.key_id not in policy.revoked:
                raw = dht.raw_public_key(trusted.key)
                if raw is not None:
                    keys.setdefault(raw, trusted.key_id)
        return list(keys.items())[:MAX_DHT_KEYS]

    def _pointers(self, salt: bytes, name: str, above: int | None = None) -> list[_Found]:
        """The pointers under each trusted key. With ABOVE (the held head's sequence), a lookup
        stops early only for a pointer above it: a fast node replaying an old item must not
        end the lookup before the honest nodes answer."""

        def settles(item: dht.Item) -> bool:
            if above is None:
                return True
            try:
                pointer = Pointer.decode(item.value, "DHT item")
            except ManifestError:
                return False
            return pointer.sequence is not None and pointer.sequence > above

        found = []
        for raw_key, key_id in self._keys(name):
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.refused.append(TransferError(f"DHT lookups for {name}: out of time"))
                break
            item = dht.get_item(self.swarm, raw_key, salt, min(self.lookup_timeout, left), settles=settles)
            if item is None:
                continue
            try:
                pointer = Pointer.decode(item.value, f"DHT item of {name} under key {key_id[:16]}")
            except ManifestError as exc:
                self.refused.append(exc)
                continue
            if pointer.name != name:
                self.refused.append(ManifestError(f"DHT item under key {key_id[:16]}: expected a pointer for {name}, "
                                                  f"found one for {pointer.name}"))
                continue
            found.append(_Found(pointer, key_id))
        return found

    def heads(self, name: str) -> list[Envelope]:
        held = self.client.heads.held(name)
        above = held.head.sequence if held is not None else None
        pointers = [f for f in self._pointers(head_salt(name), name, above) if f.pointer.sequence is not None]
        for f in sorted(pointers, key=lambda f: -(f.pointer.sequence or 0)):
            p = f.pointer
            assert p.sequence is not None
            if held is not None and p.sequence < held.head.sequence:
                self.refused.append(RollbackError(
                    f"DHT item of {name} under key {f.key_id[:16]}: sequence {p.sequence} is below the head held "
                    f"here ({held.head.sequence}); an old item replayed, ignored"))
                continue
            if p.heads_card is None:
                continue
            try:
                offered = parse_heads_file(self._card(p.heads_card, cards.HEADS_CARD), f"head card of {name}")
                self._check_matches(p, offered)
            except Error as exc:
                self.refused.append(exc)
                continue
            # Judged now, not only by the caller: a pointer whose head is refused (e.g. a
            # timestamp key's refresh that changes the head) must not hide the next pointer.
            current, refusals = self.client.admit_heads(offered, name)
            if any(isinstance(exc, ExpiredError) for exc in refusals):
                return offered  # valid but stale, and fresh heads required: the caller says so
            if current is None or current.head.sequence < p.sequence:
                self.refused.extend(refusals or [ManifestError(
                    f"DHT item of {name} under key {f.key_id[:16]}: its head was not accepted")])
                continue
            if p.envelope_card:
                self._cards[(name, p.version)] = p.envelope_card
            self._warn_refused()
            return offered
        self._warn_refused()
        return []

    def _warn_refused(self) -> None:
        for exc in self.refused:
            warnings.warn(SeedvaultWarning(f"{self.label}: {exc}"), stacklevel=3)
        self.refused.clear()

    def _check_matches(self, pointer: Pointer, offered: list[Envelope]) -> None:
        """The card's newest head says what its pointer says (or the pointer is a lie)."""
        heads = [Head.from_payload(e.payload) for e in offered]
        newest = max(heads, key=lambda h: h.sequence, default=None)
        if newest is None or (newest.name, newest.sequence, newest.latest_version, newest.latest_digest) != \
                (pointer.name, pointer.sequence, pointer.version, pointer.digest):
            raise IntegrityError(
                f"DHT pointer for {pointer.name} (sequence {pointer.sequence}, {pointer.version}) and the head in its "
                f"card ({newest.ref + ', ' + newest.latest_version if newest else 'none'}) disagree",
                hint="a forged or mismatched card; the head held here is unchanged")

    def envelope(self, name: str, version: str) -> Envelope | None:
        card = self._cards.get((name, version))
        if card is None:
            for f in self._pointers(release_salt(name, version), name):
                if f.pointer.version == version and f.pointer.envelope_card:
                    card = f.pointer.envelope_card
                    break
        if card is None:
            return None
        try:
            return Envelope.from_json(self._card(card, cards.ENVELOPE_CARD), f"envelope card of {name}@{version}")
        except Error as exc:
            self.refused.append(exc)
            self._warn_refused()
            return None

    def candidates(self, name: str) -> list[Envelope]:
        return []  # the DHT lists no versions: only what a head names, or a version asked by name

    def torrent(self, name: str, version: str) -> bytes | None:
        return None

    def _card(self, info_hash: str, file_name: str, peers: Sequence[Endpoint] = ()) -> bytes:
        dest = Path(tempfile.mkdtemp(prefix="card-", dir=self.client.vault.incoming))
        try:
            left = max(0.1, self.deadline - time.monotonic())
            files = cards.fetch_card(self.swarm, info_hash, dest, {file_name}, timeout=min(self.card_timeout, left),
                                     peers=tuple(peers))
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        return files[file_name]


def fetch_envelope_card(client: Client, swarm: Swarm, info_hash: str, *, peers: Sequence[Endpoint] = (),
                        timeout: float = CARD_TIMEOUT) -> Envelope:
    """The envelope in the card INFO_HASH (from a magnet link), unjudged."""
    source = DhtSource(client, swarm, card_timeout=timeout)
    return Envelope.from_json(source._card(info_hash, cards.ENVELOPE_CARD, peers),
                              f"envelope card {info_hash[:16]}")


# ---- the seeding side: cards seeded, pointers put -----------------------------------------


@dataclass
class AnnounceReport:
    cards: dict[str, str] = field(default_factory=dict)  # ref or "NAME head" -> card info-hash
    put: list[str] = field(default_factory=list)  # pointers the DHT took, as "NAME@V by KEYID"
    refused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cards": self.cards, "put": self.put, "refused": self.refused}


@dataclass
class _Pending:
    """A pointer on its way into the DHT: first read what is there (head pointers), then put."""

    key: PrivateKey
    salt: bytes
    value: bytes
    label: str
    sequence: int | None
    stage: str  # "get" or "put"
    since: float
    sent: bytes | None = None  # the value libtorrent is putting (a newer one may wait behind it)
    newest_seen: int | None = None  # the highest head sequence the DHT showed while reading


PUT_TIMEOUT = 60.0


class Announcer:
    """Seeds the cards of the releases a seeder serves and, with DHT keys, puts their pointers.

    Nothing here waits on the DHT: `refresh` seeds the cards and starts the puts, `handle`
    takes the session's alerts as they come, and `poll` says what completed. (A lookup in a
    DHT where some nodes have gone waits for their timeouts; a seeder must keep serving.)
    `refresh` is cheap when nothing changed: a card is rebuilt only when its statement did,
    and a pointer put again only when it changed or REPUT_EVERY passed. A head pointer is put
    only after reading the DHT: libtorrent has no compare-and-swap, so a seeder behind on
    heads would otherwise replace a newer pointer with its older one."""

    def __init__(self, client: Client, swarm: Swarm, keys: Sequence[PrivateKey] = ()) -> None:
        for key in keys:
            if dht.raw_public_key(key.public) is None:
                dht.expanded_secret(key)  # refuses a P-256 key, with the way out
        self.client = client
        self.swarm = swarm
        self.keys = list(keys)
        self.root = client.vault.root / "cards"
        self._seeded: dict[str, lt.torrent_handle] = {}  # info-hash -> handle
        self._put: dict[tuple[str, bytes], tuple[bytes, float]] = {}  # (key id, salt) -> (value, when)
        self._pending: dict[tuple[bytes, bytes], _Pending] = {}  # (raw public key, salt) -> what is under way
        self._events = AnnounceReport()
        self._warned: set[tuple[str, str]] = set()

    def _seed_card(self, files: dict[str, bytes]) -> str:
        ti, save_path = cards.build_card(self.root, files)
        info_hash = cards.card_info_hash(ti)
        if info_hash not in self._seeded:
            self._seeded[info_hash] = self.swarm.add(ti, save_path, seed=True)
        return info_hash

    def _start(self, key: PrivateKey, salt: bytes, pointer: Pointer, label: str) -> None:
        value = pointer.encode()
        previous = self._put.get((key.key_id, salt))
        if previous is not None and previous[0] == value and time.monotonic() - previous[1] < REPUT_EVERY:
            return
        raw = dht.raw_public_key(key.public)
        assert raw is not None
        pending = self._pending.get((raw, salt))
        if pending is not None:
            pending.value, pending.label, pending.sequence = value, label, pointer.sequence
            return
        # No wait for the DHT here: with no node yet, the put reaches none and is tried again
        # at the next round; a seeder keeps serving meanwhile.
        pending = _Pending(key, salt, value, label, pointer.sequence, "get", time.monotonic())
        self._pending[(raw, salt)] = pending
        if pointer.sequence is None:
            self._put_now(raw, pending)
        else:
            self.swarm.session.dht_get_mutable_item(raw, salt)

    def _put_now(self, raw: bytes, pending: _Pending) -> None:
        pending.stage, pending.since, pending.sent = "put", time.monotonic(), pending.value
        self.swarm.session.dht_put_mutable_item(dht.expanded_secret(pending.key), raw, pending.value, pending.salt)

    def handle(self, alert: Any) -> None:
        """Take one alert of the session (the seeder's loop passes them all)."""
        if isinstance(alert, lt.dht_mutable_item_alert):
            pending = self._pending.get((bytes(alert.key), bytes(alert.salt)))
            if pending is None or pending.stage != "get":
                return
            there = None
            if isinstance(alert.item, bytes) and alert.item:
                item = dht.Item(bytes(alert.key), bytes(alert.salt), int(alert.seq), alert.item, bytes(alert.signature))
                if dht.check_signature(item):
                    with contextlib.suppress(ManifestError):
                        there = Pointer.decode(item.value, "DHT item")
            if there is not None and there.sequence is not None:
                pending.newest_seen = max(pending.newest_seen or 0, there.sequence)
            if pending.newest_seen is not None and pending.sequence is not None and \
                    pending.newest_seen > pending.sequence:
                del self._pending[(bytes(alert.key), bytes(alert.salt))]
                self._events.refused.append(f"{pending.label}: the DHT holds a newer head (sequence "
                                            f"{pending.newest_seen}) than this vault's; left as it is")
            elif alert.authoritative:
                self._put_now(bytes(alert.key), pending)
        elif isinstance(alert, lt.dht_put_alert):
            raw, salt = bytes(alert.public_key), bytes(alert.salt)
            pending = self._pending.get((raw, salt))
            if pending is None or pending.stage != "put":
                return
            if alert.num_success > 0 and pending.sent is not None:
                self._put[(pending.key.key_id, salt)] = (pending.sent, time.monotonic())
                self._events.put.append(f"{pending.label} by {pending.key.key_id[:16]}")
                if pending.value != pending.sent:  # a newer pointer arrived during the put: it goes next
                    self._put_now(raw, pending)
                    return
                del self._pending[(raw, salt)]
            else:
                del self._pending[(raw, salt)]
                self._events.refused.append(f"{pending.label}: no DHT node took the pointer")

    def poll(self) -> AnnounceReport:
        """What completed since the last poll; lookups that took too long go on to the put."""
        now = time.monotonic()
        for (raw, salt), pending in list(self._pending.items()):
            if pending.stage == "get" and now - pending.since >= LOOKUP_TIMEOUT:
                # The read did not finish (nodes that left answer never). What it showed is
                # older than ours, or nothing: put. (Anything newer it showed refused the put.)
                self._put_now(raw, pending)
            elif pending.stage == "put" and now - pending.since >= PUT_TIMEOUT:
                del self._pending[(raw, salt)]
                self._events.refused.append(f"{pending.label}: no DHT node answered in {PUT_TIMEOUT:.0f} s")
        events, self._events = self._events, AnnounceReport()
        return events

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def run(self, refs: list[str], timeout: float = PUT_TIMEOUT + LOOKUP_TIMEOUT) -> AnnounceReport:
        """`refresh`, then wait (pumping the session) until every put completed: for callers
        without a loop of their own (tests, a one-shot announce)."""
        report = self.refresh(refs)
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            for alert in self.swarm.pop_alerts(wait=0.2):
                self.handle(alert)
            done = self.poll()
            report.put += done.put
            report.refused += done.refused
        return report

    def refresh(self, refs: list[str]) -> AnnounceReport:
        """Seed the cards of REFS (and of their models' heads) and start putting their pointers."""
        report = AnnounceReport()
        by_name: dict[str, list[tuple[Manifest, Envelope]]] = {}
        for ref in refs:
            entry = self.client.vault.resolve(ref)
            by_name.setdefault(entry.manifest.name, []).append((entry.manifest, entry.envelope))
        for name, releases in by_name.items():
            envelope_cards = {}
            keys = self._keys_for(name)
            for manifest, envelope in releases:
                card = self._seed_card({cards.ENVELOPE_CARD: envelope.to_json()})
                envelope_cards[manifest.version] = card
                report.cards[manifest.ref] = card
                pointer = Pointer(name, manifest.version, envelope.digest, card)
                for key in keys:
                    self._start(key, release_salt(name, manifest.version), pointer, manifest.ref)
            held = self.client.head_envelopes(name)
            current = self.client.current_head(name)
            if not held or current is None:
                continue
            heads_card = self._seed_card({cards.HEADS_CARD: heads_file(held)})
            report.cards[f"{name} head"] = heads_card
            head = current.head
            pointer = Pointer(name, head.latest_version, head.latest_digest,
                              envelope_cards.get(head.latest_version), head.sequence, head.expires, heads_card)
            for key in keys:
                self._start(key, head_salt(name), pointer, f"{name} head {head.sequence}")
        return report

    def _keys_for(self, name: str) -> list[PrivateKey]:
        """The DHT keys this seeder holds that clients trust for NAME (as this seeder's policy
        says; a key trusted nowhere would put pointers nobody reads)."""
        policy = self.client.policy
        out = []
        for key in self.keys:
            if any(t.role in ("publisher", "timestamp") and t.covers(name) for t in policy.keys_by_id(key.key_id)):
                out.append(key)
            elif (key.key_id, name) not in self._warned:
                self._warned.add((key.key_id, name))
                warnings.warn(SeedvaultWarning(f"key {key.key_id[:16]} is not trusted here as publisher or timestamp "
                                               f"for {name}: no DHT pointers for it under that key"), stacklevel=2)
        return out
