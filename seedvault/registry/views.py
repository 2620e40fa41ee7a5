"""What the registry's web pages show, read from the node: plain data, no HTML, no HTTP.

Each `*_view` function runs on the node's worker thread (it reads the vault, the index, the
heads and the tracker, which only that thread touches) and returns frozen dataclasses that
the templates render. Whether a signature counts, whether a release is accepted and whether
a head is fresh are the node's trust policy's answers (`seedvault.signing`); this module
only reports them. Everything here that a publisher wrote stays as the publisher wrote it:
the templates escape it.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, replace

from seedvault.errors import Error, NotFoundError
from seedvault.manifest import Manifest, Ref, check_model_name, check_version, format_time, is_pickle_path
from seedvault.registry.index import Release
from seedvault.registry.node import Node
from seedvault.registry.tracker import SwarmHealth, tracker_hash
from seedvault.signing import TrustPolicy, evaluate
from seedvault.signing.trusted import AcceptedHead, SignerReport, is_newer, signer_reports

MAX_LISTED_RELEASES = 1000  # releases a search reads from the index (the page says when it stopped)
MAX_LISTED_MODELS = 200
MAX_SHOWN_FILES = 1000  # rows of a model page's file table; the rest are counted
MAX_LINEAGE_NODES = 24  # boxes of a lineage graph, the release itself among them
MAX_LINEAGE_DEPTH = 6
FORMATS = ("safetensors", "gguf", "onnx", "pickle")


@dataclass(frozen=True)
class Filters:
    """A search, as the home page's form sends it (each already bounded by the page handler)."""

    text: str | None = None
    publisher: str | None = None
    license: str | None = None
    format: str | None = None

    @property
    def any(self) -> bool:
        return any((self.text, self.publisher, self.license, self.format))


@dataclass(frozen=True)
class ReleaseRow:
    """One release as a listing shows it, with the node's marks."""

    release: Release
    formats: tuple[str, ...]
    yank_reason: str | None  # the publisher's, from the model's signed head
    refused: str | None  # why the node's policy refuses it now (a key revoked since, a license)

    @property
    def name(self) -> str:
        return self.release.name

    @property
    def version(self) -> str:
        return self.release.version

    @property
    def yanked(self) -> bool:
        return self.release.yanked or self.yank_reason is not None

    @property
    def usable(self) -> bool:
        return not self.yanked and self.refused is None


@dataclass(frozen=True)
class ModelRow:
    name: str
    latest: ReleaseRow  # the version a pull of NS/NAME gets: the head's latest, else the newest usable
    versions: int
    yanked: int
    refused: int
    formats: tuple[str, ...]


@dataclass(frozen=True)
class HomeView:
    filters: Filters
    models: tuple[ModelRow, ...]
    releases_read: int
    truncated: bool  # the index held more matching releases than a page reads
    licenses: tuple[str, ...]  # of the releases listed, for the filter's suggestions


@dataclass(frozen=True)
class HeadView:
    sequence: int
    issued: str
    expires: str
    stale: bool
    latest_version: str
    latest_yanked: bool  # a head may name a version it yanks: a pull of NS/NAME then takes an older one
    signed_by: str  # "publisher" or "timestamp"
    signers: tuple[SignerReport, ...]


@dataclass(frozen=True)
class GraphNode:
    label: str
    relation: str  # how the node below derives from this one ("" for the release itself)
    x: int
    y: int
    href: str | None  # its page on this node, when the node holds it
    note: str  # "this release", "not on this registry", "digest differs" ...


@dataclass(frozen=True)
class GraphEdge:
    x1: int
    y1: int
    x2: int
    y2: int
    relation: str


@dataclass(frozen=True)
class LineageGraph:
    width: int
    height: int
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    truncated: bool
    box_width: int
    box_height: int


@dataclass(frozen=True)
class ModelView:
    name: str
    selected: ReleaseRow
    manifest: Manifest
    manifest_digest: str
    versions: tuple[ReleaseRow, ...]
    signers: tuple[SignerReport, ...]
    approvals: int
    required_approvals: int
    head: HeadView | None
    head_problem: str | None  # a head is held but does not verify under the node's policy
    lineage: LineageGraph
    swarm: SwarmHealth | None
    files_hidden: int
    pull_command: str
    verify_command: str
    envelope_url: str
    torrent_url: str


@dataclass(frozen=True)
class KeyRow:
    label: str
    key_id: str
    key_type: str
    role: str
    scopes: tuple[str, ...]
    revoked: bool


@dataclass(frozen=True)
class KeysView:
    keys: tuple[KeyRow, ...]
    revoked_unlisted: tuple[str, ...]  # revoked key ids the policy lists no key for
    policy: TrustPolicy


# ---- home and search -------------------------------------------------------------------------


def formats_of(manifest: Manifest) -> tuple[str, ...]:
    """The weight formats a release ships, by file name (config and license files are none)."""
    found = set()
    for f in manifest.files:
        lower = f.path.lower()
        if is_pickle_path(lower):
            found.add("pickle")
        else:
            found.update(fmt for fmt in FORMATS if lower.endswith("." + fmt))
    return tuple(fmt for fmt in FORMATS if fmt in found)


_RowFacts = tuple[Manifest, tuple[str, ...], str | None]  # manifest, formats, why refused
MAX_CACHED_ROWS = 2 * MAX_LISTED_RELEASES


class RowCache:
    """What a listing needs of each release (its manifest, formats, the policy's verdict),
    kept between pages: reading and judging every envelope again made a home page of 1000
    releases take 0.6 s of the node's only worker. A verdict is kept under the exact policy
    file and the release's signer keys it was reached with, so a revocation or an approval
    shows at once; a release with an expiry is judged afresh each time. Used from the node's
    worker thread only."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], _RowFacts] = {}

    def get(self, key: tuple[str, str, tuple[str, ...], tuple[str, ...]]) -> _RowFacts | None:
        return self._rows.get(key)

    def put(self, key: tuple[str, str, tuple[str, ...], tuple[str, ...]], facts: _RowFacts) -> None:
        if len(self._rows) >= MAX_CACHED_ROWS:
            self._rows.clear()  # bounded; the next pages fill it again
        self._rows[key] = facts


class _Reader:
    """One page's reads: the policy loaded once, each model's head judged once."""

    def __init__(self, node: Node, cache: RowCache | None = None) -> None:
        self.node = node
        policy_file = node.client.paths.policy_file
        self._policy_stamp = hashlib.sha256(policy_file.read_bytes()).hexdigest() if policy_file.exists() else ""
        self.policy = node.client.policy
        self._heads: dict[str, AcceptedHead | None] = {}
        self._cache = cache or RowCache()

    def head(self, name: str) -> AcceptedHead | None:
        if name not in self._heads:
            # A stale head's yanks still stand (as for the node's clients), so freshness is
            # reported, not required, here.
            self._heads[name] = self.node.client.current_head(name, policy=replace(self.policy, fresh_heads=False))
        return self._heads[name]

    def row(self, release: Release) -> tuple[ReleaseRow, Manifest]:
        key = (release.digest, self._policy_stamp, release.publisher_keys, release.approver_keys)
        facts = self._cache.get(key)
        if facts is None:
            entry = self.node.client.vault.get(release.digest)
            try:
                evaluate(entry.envelope, self.policy)
                refused = None
            except Error as exc:
                refused = str(exc)
            facts = (entry.manifest, formats_of(entry.manifest), refused)
            if entry.manifest.expires is None:
                self._cache.put(key, facts)
        manifest, formats, refused = facts
        head = self.head(release.name)
        reason = head.head.yank_reason(release.version) if head is not None else None
        return ReleaseRow(release, formats, reason, refused), manifest


def home_view(node: Node, filters: Filters, cache: RowCache | None = None) -> HomeView:
    reader = _Reader(node, cache)
    releases = node.index.search(filters.text, publisher=filters.publisher, license=filters.license,
                                 include_yanked=True, limit=MAX_LISTED_RELEASES + 1)
    truncated = len(releases) > MAX_LISTED_RELEASES
    releases = releases[:MAX_LISTED_RELEASES]
    by_model: dict[str, list[tuple[ReleaseRow, Manifest]]] = {}
    for release in releases:
        try:
            by_model.setdefault(release.name, []).append(reader.row(release))
        except Error:  # a stored release that no longer reads: the node does not serve it either
            continue
    models = []
    for name, rows in by_model.items():
        if filters.format and not any(filters.format in r.formats for r, _m in rows):
            continue
        latest = _latest(rows, reader.head(name))
        models.append(ModelRow(
            name, latest, len(rows), sum(r.yanked for r, _m in rows), sum(r.refused is not None for r, _m in rows),
            tuple(sorted({fmt for r, _m in rows for fmt in r.formats})),
        ))  # fmt: skip
    licenses = tuple(sorted({r.release.license for rows in by_model.values() for r, _m in rows}))
    truncated = truncated or len(models) > MAX_LISTED_MODELS
    return HomeView(filters, tuple(models[:MAX_LISTED_MODELS]), len(releases), truncated, licenses)


def _latest(rows: list[tuple[ReleaseRow, Manifest]], head: AcceptedHead | None) -> ReleaseRow:
    """The head's latest version when the node holds it, else the newest usable release (the
    newest of all when none is usable)."""
    if head is not None:
        for row, _manifest in rows:
            if row.version == head.head.latest_version and not row.yanked:
                return row
    pool = [(r, m) for r, m in rows if r.usable] or rows
    best_row, best = pool[0]
    for row, manifest in pool[1:]:
        if is_newer(manifest, best):
            best_row, best = row, manifest
    return best_row


# ---- a model -----------------------------------------------------------------------------------


def model_view(node: Node, name: str, version: str | None, cache: RowCache | None = None) -> ModelView:
    check_model_name(name)
    if version is not None:
        check_version(version)
    reader = _Reader(node, cache)
    releases = node.index.search(name=name, include_yanked=True, limit=MAX_LISTED_RELEASES)
    rows = []
    for release in releases:
        try:
            rows.append(reader.row(release))
        except Error:  # a stored release that no longer reads: the node does not serve it either
            continue
    if not rows:
        raise NotFoundError(f"{name} is not on this registry", hint="search for it on the home page")
    if version is None:
        selected = _latest(rows, reader.head(name))
    else:
        found = [r for r, _m in rows if r.version == version]
        if not found:
            raise NotFoundError(f"{name}@{version} is not on this registry; versions here: "
                                + ", ".join(r.version for r, _m in rows[:20]))
        selected = found[0]
    entry = node.client.vault.get(selected.release.digest)
    manifest = entry.manifest
    signers = tuple(report for report, _sig in signer_reports(entry.envelope, name, reader.policy))
    publishers = {s.key_id for s in signers if s.status == "valid" and s.role == "publisher"}
    approvals = len({s.key_id for s in signers if s.status == "valid" and s.role == "approver"} - publishers)
    head, head_problem = _head(node, reader, name)
    ref = f"{name}@{manifest.version}"
    base = node.config.base_url
    return ModelView(
        name=name, selected=selected, manifest=manifest, manifest_digest=entry.digest,
        versions=tuple(r for r, _m in reversed(rows)), signers=signers, approvals=approvals,
        required_approvals=reader.policy.required_approvals, head=head, head_problem=head_problem,
        lineage=lineage_graph(node, manifest), swarm=node.tracker.health(tracker_hash(manifest)),
        files_hidden=max(0, len(manifest.files) - MAX_SHOWN_FILES),
        pull_command=shlex.join(["seedvault", "pull", ref, "--registry", base]),
        verify_command=shlex.join(["seedvault", "verify", ref]),
        envelope_url=f"/v1/models/{name}/{manifest.version}/envelope",
        torrent_url=f"/v1/models/{name}/{manifest.version}/torrent",
    )  # fmt: skip


def _head(node: Node, reader: _Reader, name: str) -> tuple[HeadView | None, str | None]:
    current = reader.head(name)
    if current is None:
        held = node.client.head_envelopes(name)
        return None, ("this node holds a head of the model that does not verify under its policy"
                      if held else None)
    h = current.head
    return HeadView(h.sequence, format_time(h.issued), format_time(h.expires), current.stale or h.is_expired(),
                    h.latest_version, h.yank_reason(h.latest_version) is not None,
                    "publisher" if current.by_publishers else "timestamp",
                    current.signers), None


# ---- lineage -----------------------------------------------------------------------------------

BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y, MARGIN = 240, 48, 24, 56, 8


@dataclass(frozen=True)
class _Place:
    label: str
    relation: str
    depth: int
    parent: int | None  # index of the box below it (the release derived from it)
    href: str | None
    note: str


def lineage_graph(node: Node, manifest: Manifest) -> LineageGraph:
    """The release and its ancestors as far as this node knows them: each lineage link of a
    release the node holds is followed, breadth first, bounded in depth and count, each
    release once (a lineage that loops stops where it repeats)."""
    places = [_Place(manifest.ref, "", 0, None, None, "this release")]
    seen = {manifest.ref}
    frontier: list[tuple[int, Manifest]] = [(0, manifest)]
    truncated = False
    while frontier:
        index, current = frontier.pop(0)
        depth = places[index].depth + 1
        for link in current.lineage:
            if len(places) >= MAX_LINEAGE_NODES or depth > MAX_LINEAGE_DEPTH:
                truncated = True
                break
            ancestor, note = _ancestor(node, link.ref, link.manifest_digest)
            label = ancestor.ref if ancestor is not None else link.ref
            if label in seen:
                continue
            seen.add(label)
            href = f"/models/{ancestor.name}/{ancestor.version}" if ancestor is not None else None
            places.append(_Place(label, link.relation, depth, index, href, note))
            if ancestor is not None:
                frontier.append((len(places) - 1, ancestor))
    return _layout(places, truncated)


def _ancestor(node: Node, ref: str, digest: str | None) -> tuple[Manifest | None, str]:
    """The release a lineage link names, when this node holds it, and what to say about it."""
    wanted = Ref.parse(ref)  # validated when the manifest was parsed
    releases = node.index.search(name=wanted.name, include_yanked=True, limit=MAX_LISTED_RELEASES)
    if wanted.version is not None:
        releases = [r for r in releases if r.version == wanted.version]
    if not releases:
        return None, "not on this registry"
    if digest is not None:
        releases = [r for r in releases if r.digest == digest]
        if not releases:  # never shown as the ancestor: it is not the release the link pins
            return None, "this registry holds another release under that name (digest differs)"
    try:
        manifests = [node.client.vault.get(r.digest).manifest for r in releases]
    except Error:
        return None, "not readable on this registry"
    best = manifests[0]
    for m in manifests[1:]:
        if is_newer(m, best):
            best = m
    return best, "pinned by digest" if digest else "not pinned by digest"


def _layout(places: list[_Place], truncated: bool) -> LineageGraph:
    """Rows by depth, the release on top; each row's boxes side by side, centred."""
    rows: dict[int, list[int]] = {}
    for i, place in enumerate(places):
        rows.setdefault(place.depth, []).append(i)
    widest = max(len(r) for r in rows.values())
    width = MARGIN * 2 + widest * BOX_WIDTH + (widest - 1) * GAP_X
    height = MARGIN * 2 + len(rows) * BOX_HEIGHT + (len(rows) - 1) * GAP_Y
    xy: dict[int, tuple[int, int]] = {}
    for depth, members in rows.items():
        row_width = len(members) * BOX_WIDTH + (len(members) - 1) * GAP_X
        left = (width - row_width) // 2
        for k, i in enumerate(members):
            xy[i] = (left + k * (BOX_WIDTH + GAP_X), MARGIN + depth * (BOX_HEIGHT + GAP_Y))
    nodes = tuple(GraphNode(p.label, p.relation, *xy[i], p.href, p.note) for i, p in enumerate(places))
    edges = []
    for i, p in enumerate(places):
        if p.parent is None:
            continue
        (cx, cy), (px, py) = xy[i], xy[p.parent]
        edges.append(GraphEdge(px + BOX_WIDTH // 2, py + BOX_HEIGHT, cx + BOX_WIDTH // 2, cy, p.relation))
    return LineageGraph(width, height, nodes, tuple(edges), truncated, BOX_WIDTH, BOX_HEIGHT)


# ---- keys --------------------------------------------------------------------------------------


def keys_view(node: Node) -> KeysView:
    policy = node.client.policy
    rows = tuple(KeyRow(k.label, k.key_id, k.key.key_type, k.role, k.scopes, k.key_id in policy.revoked)
                 for k in sorted(policy.keys, key=lambda k: (k.role, k.label, k.key_id)))
    listed = {k.key_id for k in policy.keys}
    return KeysView(rows, tuple(sorted(policy.revoked - listed)), policy)

