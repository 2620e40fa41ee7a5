"""The registry's web pages over real HTTP: what they list and show, how they escape what a
publisher wrote, their security headers, and their HTML errors beside the API's JSON ones.

One real node (aiohttp on 127.0.0.1, SQLite, libtorrent seed) holds the gallery of
pages_helpers; tests that change a node's policy start their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_model
from pages_helpers import (
    BASE,
    EVIL,
    EVIL_FILE,
    EVIL_NOTES,
    EVIL_SOURCE,
    TUNED,
    YANK_REASON,
    Gallery,
    get_page,
    start_gallery,
)
from registry_helpers import NodeServer, make_home, policy, request

from seedvault.client import Client
from seedvault.errors import SeedvaultWarning
from seedvault.registry import RegistryClient
from seedvault.registry.pages import CSP
from seedvault.signing import PrivateKey

PAGES = ["/", "/?q=chat", f"/models/{TUNED}", f"/models/{TUNED}/1.1", f"/models/{EVIL}", "/keys"]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    g = start_gallery(tmp_path_factory.mktemp("gallery"))
    try:
        yield g
    finally:
        g.node.close()


def _models_listed(page_html: str) -> list[str]:
    return re.findall(r'<a class="name" href="/models/([^"]+)">', page_html)


# ---- home and search ---------------------------------------------------------------------------


def test_home_lists_each_model_with_its_latest_usable_version(gallery: Gallery) -> None:
    page = get_page(gallery.url, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert sorted(_models_listed(page.html)) == sorted([BASE, TUNED, EVIL])
    tuned = page.html[page.html.index(f'href="/models/{TUNED}"'):]
    tuned = tuned[:tuned.index("</li>")]
    # 1.1 is yanked by its publisher's head: the latest a pull gets is 1.0, and the yank is counted.
    assert '<span class="version" title="latest version">1.0</span>' in tuned
    assert "2 versions" in tuned and "1 yanked" in tuned
    assert "MIT" in tuned and "safetensors" in tuned
    assert gallery.publisher_key.public.key_id[:16] in tuned


@pytest.mark.parametrize(("query", "expected"), [
    ("q=chat", [TUNED]),
    ("license=MIT", [TUNED]),
    ("license=Apache-2.0", [BASE, EVIL]),
    ("format=safetensors", [BASE, TUNED, EVIL]),
    ("format=gguf", []),
    ("q=nothing-like-this", []),
])  # fmt: skip
def test_search_filters_narrow_the_listing(gallery: Gallery, query: str, expected: list[str]) -> None:
    page = get_page(gallery.url, "/?" + query)
    assert page.status == 200
    assert sorted(_models_listed(page.html)) == sorted(expected)
    if not expected:
        assert "No model matches this search" in page.text


def test_search_by_publisher_key(gallery: Gallery) -> None:
    key_id = gallery.publisher_key.public.key_id
    assert sorted(_models_listed(get_page(gallery.url, f"/?publisher={key_id[:12]}").html)) == sorted(
        [BASE, TUNED, EVIL])
    assert _models_listed(get_page(gallery.url, "/?publisher=" + "0" * 64).html) == []


@pytest.mark.parametrize(("query", "said"), [
    ("format=exe", "format: expected one of safetensors, gguf, onnx, pickle"),
    ("q=%00", "q: expected text without control characters"),
    ("license=" + "x" * 300, "license: expected at most 256 characters, found 300"),
])  # fmt: skip
def test_bad_search_is_an_html_page_naming_what_was_expected(gallery: Gallery, query: str, said: str) -> None:
    page = get_page(gallery.url, "/?" + query)
    assert page.status == 400
    assert page.headers["content-type"].startswith("text/html")
    assert said in page.text
    assert page.headers["content-security-policy"] == CSP


# ---- a model -----------------------------------------------------------------------------------


def test_model_page_shows_versions_with_the_yank_reason(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{TUNED}/1.1")
    assert page.status == 200
    assert "yanked by its publisher" in page.text
    assert YANK_REASON in page.text  # the reason as the publisher wrote it, read as text
    assert "<b>for</b>" not in page.html
    versions = page.html[page.html.index('<section class="versions">'):]
    versions = versions[:versions.index("</section>")]
    assert f'href="/models/{TUNED}/1.0"' in versions and f'href="/models/{TUNED}/1.1"' in versions
    assert versions.count('class="mark yanked"') == 1


def test_model_page_without_version_shows_the_heads_latest(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{TUNED}")
    assert page.status == 200
    assert re.search(r'<span class="version">1\.0</span>', page.html)
    assert "accepted by this node's policy" in page.text
    # The head: its sequence, its latest version (yanked since, so a pull takes 1.0), and that it is fresh.
    assert re.search(r"Sequence \d+, signed by the publisher at [0-9T:Z-]+: latest version 1\.1 \(yanked\)\. "
                     r"fresh until [0-9T:Z-]+", page.text)


def test_model_page_shows_signers_files_digests_swarm_and_commands(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{TUNED}/1.0")
    key_id = gallery.publisher_key.public.key_id
    assert f"{key_id} publisher valid" in page.text
    assert "approvals 0 (none required)" in page.text
    digest = gallery.digests[f"{TUNED}@1.0"]
    assert digest in page.text
    with Client(gallery.node.home) as node_client:
        manifest = node_client.vault.get(digest).manifest
    for f in manifest.files:
        row = page.html[page.html.index(f'<td class="path">{f.path}</td>'):]
        row = row[:row.index("</tr>")]
        assert f.sha256 in row and (f.pieces_root or "(empty file)") in row
    assert re.search(r"License MIT( · file LICENSE)? Publisher Acme Research", page.text)
    # The node seeds every release it holds: its tracker counts that seed.
    assert "tracker knows 1 seed and 0 peers" in page.text
    assert f"seedvault pull {TUNED}@1.0 --registry {gallery.url}" in page.text
    assert f"seedvault verify {TUNED}@1.0" in page.text
    assert f'href="/v1/models/{TUNED}/1.0/envelope"' in page.html


def test_lineage_graph_links_to_the_ancestors_page(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{TUNED}/1.0")
    svg = page.html[page.html.index("<svg"):page.html.index("</svg>")]
    assert "fine-tuned-from" in svg
    ancestor_links = re.findall(r'<a href="([^"]+)" class="ancestor">', svg)
    assert ancestor_links == [f"/models/{BASE}/1.0"]
    ancestor = get_page(gallery.url, ancestor_links[0])
    assert ancestor.status == 200
    assert f"{BASE} 1.0" in ancestor.text
    assert "The manifest names no base model." in ancestor.text


def test_unknown_model_is_an_html_404(gallery: Gallery) -> None:
    page = get_page(gallery.url, "/models/acme/nope")
    assert page.status == 404 and page.headers["content-type"].startswith("text/html")
    assert "acme/nope is not on this registry" in page.text
    version = get_page(gallery.url, f"/models/{TUNED}/9.9")
    assert version.status == 404 and f"{TUNED}@9.9 is not on this registry; versions here: 1.0, 1.1" in version.text


# ---- hostile publisher text ----------------------------------------------------------------------


def test_script_in_release_notes_renders_as_text(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{EVIL}")
    assert page.status == 200
    assert EVIL_NOTES in page.text  # shown, character for character
    assert not [tag for tag, _ in page.tags if tag in ("script", "img", "iframe", "object", "embed")]
    assert not [(tag, a) for tag, a in page.tags if any(k.startswith("on") for k in a)]


def test_hostile_publisher_name_source_and_file_name_are_escaped(gallery: Gallery) -> None:
    page = get_page(gallery.url, f"/models/{EVIL}")
    assert "<i>Acme</i>" in page.text and "<i>" not in page.html
    # A right-to-left override would make the name read as another: it is shown as its code.
    assert "\\u202eevil" in page.text and "\u202e" not in page.html
    # A javascript: source URL is shown, never linked.
    assert EVIL_SOURCE in page.text
    assert not [href for href in page.links() if not href.startswith(("/", "http://", "https://"))]
    assert EVIL_FILE in page.text and "notes &amp; &#39;quotes&#39;.txt" in page.html


def test_hostile_text_is_escaped_in_the_listing_too(gallery: Gallery) -> None:
    page = get_page(gallery.url, "/")
    assert "<i>" not in page.html and "\u202e" not in page.html
    assert "by <i>Acme</i> \\u202eevil" in page.text


# ---- headers, errors, and only reading -----------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_strict_csp_and_carries_no_script_or_inline_style(gallery: Gallery, path: str) -> None:
    page = get_page(gallery.url, path)
    assert page.status == 200
    assert page.headers["content-security-policy"] == CSP
    assert "script-src" not in CSP and "'unsafe-inline'" not in CSP  # default-src 'none' covers scripts
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not [tag for tag, _ in page.tags if tag in ("script", "style")]
    assert not [(tag, a) for tag, a in page.tags if "style" in a or any(k.startswith("on") for k in a)]
    stylesheets = [a["href"] for tag, a in page.tags if tag == "link" and a.get("rel") == "stylesheet"]
    assert stylesheets == ["/static/style.css"]
    assert ('<meta name="viewport" content="width=device-width, initial-scale=1">') in page.html


def test_stylesheet_is_served(gallery: Gallery) -> None:
    answer = request(gallery.url, "GET", "/static/style.css")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/css")
    assert b"@media (max-width:" in answer.body  # narrow screens get their own layout


def test_api_errors_stay_json_while_page_errors_are_html(gallery: Gallery) -> None:
    api = request(gallery.url, "GET", "/v1/models/acme/nope", headers={"Accept": "text/html"})
    assert api.status == 404 and api.error["type"] == "NotFoundError"
    unknown_by_browser = get_page(gallery.url, "/no/such/page")
    assert unknown_by_browser.status == 404 and unknown_by_browser.headers["content-type"].startswith("text/html")
    unknown_by_program = request(gallery.url, "GET", "/no/such/page")
    assert unknown_by_program.status == 404 and unknown_by_program.error["type"] == "HTTPNotFound"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_pages_only_read(gallery: Gallery, method: str) -> None:
    for path in ("/", f"/models/{TUNED}/1.0", "/keys"):
        page = get_page(gallery.url, path, method=method)
        assert page.status == 405, (method, path)
        assert page.headers["allow"] in ("GET,HEAD", "HEAD,GET")
    assert get_page(gallery.url, f"/models/{TUNED}/1.0").status == 200  # nothing changed


def test_keys_page_lists_trusted_keys_with_roles_and_namespaces(gallery: Gallery) -> None:
    page = get_page(gallery.url, "/keys")
    key_id = gallery.publisher_key.public.key_id
    assert re.search(rf"{key_id} ed25519 publisher acme/\* trusted", page.text)
    assert "Approvals none required" in page.text and "Licenses any" in page.text


# ---- a node whose policy changes, a lineage that loops -------------------------------------------


def _node_with(tmp: Path, key: PrivateKey) -> tuple[NodeServer, Client, RegistryClient]:
    node = NodeServer(make_home(tmp / "node", policy((key, "publisher")))).start()
    client = Client(make_home(tmp / "publisher", policy((key, "publisher"))))
    return node, client, RegistryClient(node.url)


def _publish_and_push(client: Client, remote: RegistryClient, tmp: Path, key: PrivateKey, name: str,
                      lineage: list[tuple[str, str]]) -> None:
    make_model(tmp / name, seed=len(name))
    admitted = client.publish(tmp / name, name=name, version="1.0", license="Apache-2.0", key=key,
                              publisher="Acme", lineage=lineage)
    remote.push(admitted.envelope, admitted.snapshot)


def test_release_refused_by_the_nodes_policy_now_is_marked(tmp_path: Path, pub_key: PrivateKey) -> None:
    node, client, remote = _node_with(tmp_path, pub_key)
    try:
        with client:
            _publish_and_push(client, remote, tmp_path, pub_key, "acme/kept", [])
        assert "refused" not in get_page(node.url, "/").text  # seen, and remembered, as accepted
        with Client(node.home) as admin:  # the node's admin revokes the key after the release was accepted
            admin.save_policy(admin.policy.revoke(pub_key.public.key_id))
        home = get_page(node.url, "/")
        assert "1 refused by this node's policy" in home.text
        page = get_page(node.url, "/models/acme/kept")
        assert page.status == 200
        assert "refused by this node's policy" in page.text and "key is revoked" in page.text
        assert f"{pub_key.public.key_id} publisher revoked" in page.text
        keys = get_page(node.url, "/keys")
        assert "revoked" in keys.text
    finally:
        node.close()


def test_lineage_that_loops_stops_where_it_repeats(tmp_path: Path, pub_key: PrivateKey) -> None:
    node, client, remote = _node_with(tmp_path, pub_key)
    try:
        with client:
            # acme/a names acme/b before b exists (so unpinned); b then names a (pinned).
            with pytest.warns(SeedvaultWarning, match="does not pin its manifest digest"):
                _publish_and_push(client, remote, tmp_path, pub_key, "acme/a", [("distilled-from", "acme/b@1.0")])
            before = get_page(node.url, "/models/acme/a")
            assert "acme/b@1.0 (not on this registry)" in before.text
            assert '<a href="/models/acme/b/1.0"' not in before.html
            _publish_and_push(client, remote, tmp_path, pub_key, "acme/b", [("merged-from", "acme/a@1.0")])
        page = get_page(node.url, "/models/acme/a")
        assert page.status == 200
        assert "distilled-from acme/b@1.0 (not pinned by digest)" in page.text
        assert page.html.count('class="ancestor"') == 1  # a -> b, and b's link back to a is not drawn again
    finally:
        node.close()
