"""A real registry node holding a few releases, for the web page tests (HTTP and browser).

Published as a user would: a publisher's client signs each release and pushes it to the node
over HTTP; the publisher yanks one by a signed head, pushed too. One release is written by a
hostile publisher: its notes, display name, source URL and a file name carry HTML and script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from conftest import make_model
from registry_helpers import NodeServer, make_home, policy, request

from seedvault.client import Client
from seedvault.registry import RegistryClient
from seedvault.signing import PrivateKey

BASE = "acme/base"
TUNED = "acme/tiny-chat"
EVIL = "acme/evil"
YANK_REASON = "tokenizer emits wrong ids <b>for</b> & \"quotes\""
EVIL_NOTES = '<script>document.title="pwned"; window.pwned = 1</script><img src=x onerror="window.pwned=2">'
EVIL_PUBLISHER = "<i>Acme</i> \u202eevil"
EVIL_SOURCE = "javascript:window.pwned=3"
EVIL_FILE = "notes & 'quotes'.txt"


@dataclass
class Gallery:
    node: NodeServer
    publisher_key: PrivateKey
    digests: dict[str, str]  # ref -> manifest digest

    @property
    def url(self) -> str:
        return self.node.url


def _push(client: Client, remote: RegistryClient, ref: str) -> str:
    entry = client.vault.resolve(ref)
    remote.push(entry.envelope, client.vault.snapshot_dir(entry.manifest))
    return entry.digest


def start_gallery(tmp: Path) -> Gallery:
    """Node with acme/base 1.0; acme/tiny-chat 1.0 (fine-tuned from base, pinned) and 1.1
    (yanked with a reason); acme/evil 0.1 (hostile text)."""
    key = PrivateKey.generate("ed25519")
    node = NodeServer(make_home(tmp / "node", policy((key, "publisher")))).start()
    try:
        client = Client(make_home(tmp / "publisher", policy((key, "publisher"))))
        with client:
            remote = RegistryClient(node.url)
            digests: dict[str, str] = {}
            make_model(tmp / "base", seed=1)
            client.publish(tmp / "base", name=BASE, version="1.0", license="Apache-2.0", key=key,
                           publisher="Acme Research", source_url="https://example.org/acme/base",
                           notes="the base model")
            digests[f"{BASE}@1.0"] = _push(client, remote, f"{BASE}@1.0")
            for version, seed in (("1.0", 2), ("1.1", 3)):
                make_model(tmp / f"tuned-{version}", seed=seed)
                client.publish(tmp / f"tuned-{version}", name=TUNED, version=version, license="MIT", key=key,
                               publisher="Acme Research", notes=f"chat tuned, release {version}",
                               lineage=[("fine-tuned-from", f"{BASE}@1.0")])
                digests[f"{TUNED}@{version}"] = _push(client, remote, f"{TUNED}@{version}")
            _, head = client.sign_head(TUNED, [key], lambda h: h.with_yank("1.1", YANK_REASON))
            remote.put_head(head)
            evil_dir = tmp / "evil"
            make_model(evil_dir, seed=4)
            (evil_dir / EVIL_FILE).write_text("hostile file name\n")
            (evil_dir / "config.json").write_text(json.dumps({"note": EVIL_NOTES}))
            client.publish(evil_dir, name=EVIL, version="0.1", license="Apache-2.0", key=key,
                           publisher=EVIL_PUBLISHER, source_url=EVIL_SOURCE, notes=EVIL_NOTES)
            digests[f"{EVIL}@0.1"] = _push(client, remote, f"{EVIL}@0.1")
    except BaseException:
        node.close()
        raise
    return Gallery(node, key, digests)


# ---- reading pages over HTTP, as a program would -----------------------------------------------


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    html: str
    tags: list[tuple[str, dict[str, str]]]  # every start tag, with its attributes
    text: str  # the text a person reads (entities decoded)

    def links(self) -> list[str]:
        return [a["href"] for tag, a in self.tags if tag == "a" and "href" in a]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def get_page(base_url: str, path: str, *, method: str = "GET", accept: str = "text/html") -> Page:
    answer = request(base_url, method, path, headers={"Accept": accept})
    html = answer.body.decode("utf-8")
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return Page(answer.status, answer.headers, html, collector.tags, " ".join(" ".join(collector.texts).split()))
