"""BEP 44 mutable items in a (private) DHT: put under an Ed25519 key, got back and checked.

An item is a value of at most 1000 bytes stored under (public key, salt), signed with the
key over its salt, BEP 44 sequence number and value. libtorrent's Python bindings store the
value as a bencoded string and choose `seq` themselves (the previous one plus one, no
compare-and-swap), so whoever reads an item must not take `seq` for freshness: seedvault
puts its own sequence inside the signed value. This module moves items and checks their
signatures; what an item's value means, and whether its key is trusted, is decided by the
caller.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import libtorrent as lt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from seedvault.errors import TransferError, UsageError
from seedvault.p2p.session import Swarm
from seedvault.signing import PrivateKey, PublicKey

MAX_ITEM_VALUE = 1000  # BEP 44
MAX_SALT = 64
ANSWER_GRACE = 0.5  # s to wait for other nodes' answers once one item verified


@dataclass(frozen=True)
class Item:
    public_key: bytes  # raw Ed25519, 32 bytes
    salt: bytes
    seq: int
    value: bytes
    signature: bytes


def salt_for(purpose: str, text: str) -> bytes:
    """A fixed-size salt naming what an item is about (a model name can be long)."""
    return hashlib.sha256(f"seedvault {purpose} v1\0{text}".encode()).digest()


def raw_public_key(key: PublicKey) -> bytes | None:
    """The 32 raw bytes of an Ed25519 key (the only kind BEP 44 signs with), else None."""
    if key.key_type != "ed25519":
        return None
    public = serialization.load_der_public_key(key.spki_der)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def expanded_secret(key: PrivateKey) -> bytes:
    """libtorrent's 64-byte Ed25519 secret: the clamped SHA-512 of the seed, then the seed's hash tail."""
    raw = key.key
    if not isinstance(raw, ed25519.Ed25519PrivateKey):
        raise UsageError(
            f"key {key.key_id[:16]}: expected an Ed25519 key to sign DHT items (BEP 44), found ECDSA P-256",
            hint="a P-256 publisher can announce in the DHT through an Ed25519 key trusted as 'timestamp'",
        )
    seed = raw.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


def signed_bytes(salt: bytes, seq: int, value: bytes) -> bytes:
    """What a BEP 44 signature covers; the value as libtorrent stores it (a bencoded string)."""
    encoded = b"%d:%s" % (len(value), value)
    return (b"4:salt%d:%s" % (len(salt), salt) if salt else b"") + b"3:seqi%de1:v" % seq + encoded


def check_signature(item: Item) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(item.public_key).verify(
            item.signature, signed_bytes(item.salt, item.seq, item.value))
    except (InvalidSignature, ValueError):
        return False
    return True


def put_item(swarm: Swarm, key: PrivateKey, salt: bytes, value: bytes, timeout: float = 20.0) -> int:
    """Store VALUE under KEY and SALT; the number of DHT nodes that took it (0: none answered)."""
    if len(value) > MAX_ITEM_VALUE or len(salt) > MAX_SALT:
        raise UsageError(f"DHT item: expected a value of at most {MAX_ITEM_VALUE} bytes, found {len(value)}")
    public = raw_public_key(key.public)
    if public is None:
        expanded_secret(key)  # raises the explanation
        raise AssertionError("unreachable")
    swarm.wait_for_dht()
    swarm.session.dht_put_mutable_item(expanded_secret(key), public, value, salt)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in swarm.pop_alerts(wait=0.2):
            if isinstance(alert, lt.dht_put_alert) and bytes(alert.public_key) == public and \
                    bytes(alert.salt) == salt:
                return int(alert.num_success)
    raise TransferError(f"no DHT node acknowledged the item within {timeout:.0f} s",
                        hint="check the --dht-node addresses")


def get_item(swarm: Swarm, public_key: bytes, salt: bytes, timeout: float = 10.0,
             settles: Callable[[Item], bool] = lambda _item: True) -> Item | None:
    """The item under (PUBLIC_KEY, SALT) with the highest BEP 44 seq whose signature verifies,
    or None if the DHT has none within TIMEOUT. Forged and oversized answers are dropped.
    Once an item that SETTLES the question verifies, the lookup ends ANSWER_GRACE later."""
    swarm.wait_for_dht()
    swarm.session.dht_get_mutable_item(public_key, salt)
    best: Item | None = None
    found_at = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found_at:
            # The lookup ends only when every queried node answered or timed out, and nodes
            # that left the DHT take seconds each: once an item verifies, wait a little for
            # a higher seq from the other nodes, not for the stragglers. (Freshness is decided
            # by the signed head inside, against the one held.)
            deadline = min(deadline, found_at + ANSWER_GRACE)
        for alert in swarm.pop_alerts(wait=0.2):
            if not isinstance(alert, lt.dht_mutable_item_alert):
                continue
            if bytes(alert.key) != public_key or bytes(alert.salt) != salt:
                continue
            value = alert.item
            # An empty value: nothing stored (libtorrent reports the finished lookup so).
            if isinstance(value, bytes) and value and len(value) <= MAX_ITEM_VALUE:
                item = Item(public_key, salt, int(alert.seq), value, bytes(alert.signature))
                if check_signature(item) and (best is None or item.seq > best.seq):
                    best = item
                    if not found_at and settles(item):
                        found_at = time.monotonic()
            if alert.authoritative:
                return best
    return best
