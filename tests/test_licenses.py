"""SPDX license expressions: what publish, import and the policy accept, and how they match."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedvault import licenses
from seedvault.bridges.hf import HF_LICENSES
from seedvault.errors import UsageError
from seedvault.signing.policy import TrustPolicy


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("apache-2.0", "Apache-2.0"),  # the spelling model cards use
        ("  MIT ", "MIT"),
        ("mit or apache-2.0", "MIT OR Apache-2.0"),
        ("(mit OR apache-2.0) AND bsd-3-clause", "(MIT OR Apache-2.0) AND BSD-3-Clause"),
        ("gpl-2.0-only with classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
        ("GPL-2.0+", "GPL-2.0-or-later"),  # deprecated ids become their current form
        ("licenseref-llama3.1", "LicenseRef-llama3.1"),
        ("LicenseRef-Apache", "LicenseRef-Apache"),  # a user-defined ref is never mapped onto a listed id
        ("documentref-spdx:licenseref-x", "DocumentRef-spdx:LicenseRef-x"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
    ],
)
def test_normalized(given: str, normalized: str) -> None:
    assert licenses.normalize(given) == normalized
    assert licenses.normalize(normalized) == normalized  # idempotent


@pytest.mark.parametrize(
    ("given", "message", "hint"),
    [
        ("apache2", "'apache2' is not an SPDX license id", "did you mean Apache-2.0?"),
        ("NOT-A-LICENSE", "is not an SPDX license id", ""),
        ("llama3", "is not an SPDX license id", "LicenseRef-NAME"),
        ("MIT/Apache-2.0", "found 'MIT/Apache-2.0'", "not '/' or ','"),
        ("MIT Apache-2.0", "expected ids joined by AND, OR or WITH", "MIT AND Apache-2.0"),
        ("MIT OR", "requires two or more licenses", ""),
        ("MIT AND (Apache-2.0", "invalid expression", ""),
        ("Classpath-exception-2.0", "which is an exception (it goes after WITH)", ""),
        ("MIT WITH Apache-2.0", "expected an exception after WITH, found 'Apache-2.0'", ""),
        ("", "found nothing", ""),
        ("MIT OR " * 400 + "MIT", "at most 1000 characters", ""),
    ],
)
def test_refused_with_reason(given: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as info:
        licenses.normalize(given, "--license")
    text = info.value.diagnostics()
    assert text.startswith("--license: expected")
    assert message in text and hint in text
    assert "Traceback" not in text and "LicenseSymbol" not in text


@pytest.mark.parametrize(
    ("allowed", "expression", "ok"),
    [
        (("Apache-2.0",), "apache-2.0", True),  # case-insensitive, both ways
        (("apache-2.0",), "Apache-2.0", True),
        (("MIT",), "(MIT OR GPL-3.0-only) AND Apache-2.0", False),
        (("MIT", "Apache-2.0"), "(MIT OR GPL-3.0-only) AND Apache-2.0", True),
        (("GPL-2.0-only",), "GPL-2.0-only WITH Classpath-exception-2.0", True),  # an exception only adds rights
        (("GPL-2.0-only WITH Classpath-exception-2.0",), "GPL-2.0-only", False),
        (("LicenseRef-llama3",), "licenseref-LLAMA3", True),
        (("GPL-2.0-or-later",), "GPL-2.0+", True),
        (("NOT-A-LICENSE",), "NOT-A-LICENSE", False),  # nothing invalid is allowed by a list
    ],
)
def test_allowed(allowed: tuple[str, ...], expression: str, ok: bool) -> None:
    assert licenses.allowed(expression, allowed) is ok


def test_policy_normalizes_and_refuses(tmp_path: Path) -> None:
    policy = TrustPolicy().allow_licenses(("apache-2.0", "mit", "Apache-2.0"))
    assert policy.allowed_licenses == ("Apache-2.0", "MIT")  # normalized, each once
    with pytest.raises(UsageError) as info:
        policy.allow_licenses(("apache2",))
    assert "did you mean Apache-2.0?" in info.value.diagnostics()
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\nallowed_licenses = ["mit", "apache2"]\n')
    with pytest.raises(UsageError, match=r"allowed_licenses: expected an SPDX license expression"):
        TrustPolicy.load(path)
    path.write_text('version = 1\nallowed_licenses = ["mit"]\n')
    assert TrustPolicy.load(path).allowed_licenses == ("MIT",)


def test_hugging_face_map_is_valid_spdx() -> None:
    for card_id, spdx in HF_LICENSES.items():
        assert licenses.normalize(spdx) == spdx, card_id
