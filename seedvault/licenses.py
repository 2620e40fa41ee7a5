"""SPDX license expressions: validated, normalized, and judged against an allowed list.

A manifest names its license as an SPDX expression (`Apache-2.0`, `MIT OR Apache-2.0`,
`GPL-2.0-only WITH Classpath-exception-2.0`, `LicenseRef-llama3`). People and model cards
spell ids loosely (`apache-2.0`, `mit`), so ids are matched case-insensitively and written
back in their SPDX spelling; deprecated ids become their current form (`GPL-2.0+` ->
`GPL-2.0-or-later`). `LicenseRef-*` (and `DocumentRef-*:LicenseRef-*`) name licenses SPDX
does not list, and are kept as written: their meaning is their author's, so they are never
mapped onto a listed license.

The license list and the expression grammar come from `license-expression` (the SPDX list
as ScanCode maintains it); this module adds the rules above and the error messages.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

from seedvault._text import quote
from seedvault.errors import UsageError

MAX_EXPRESSION_CHARS = 1000
_REF = re.compile(r"(?i)^(?:(DocumentRef-[A-Za-z0-9.-]+):)?LicenseRef-([A-Za-z0-9.-]+)$")
_EXAMPLES = "such as Apache-2.0, MIT OR Apache-2.0, or LicenseRef-NAME for a license SPDX does not list"


@cache
def _spdx() -> tuple[Any, dict[str, Any]]:
    """The structural parser (no known symbols: nothing is renamed while parsing) and the SPDX
    ids with their old spellings, lower-cased. Built on first use: it costs ~40 ms."""
    from license_expression import Licensing, get_spdx_licensing

    table: dict[str, Any] = {}
    for symbol in get_spdx_licensing().known_symbols.values():
        for spelling in (symbol.key, *symbol.aliases):
            if not _REF.match(spelling):  # ScanCode's own LicenseRef-scancode-* are not SPDX ids
                table.setdefault(spelling.lower(), symbol)
    return Licensing(), table


def _suggest(raw: str) -> str:
    _, table = _spdx()
    ids = sorted({s.key for s in table.values()})
    close = difflib.get_close_matches(raw.lower(), [i.lower() for i in ids], n=3, cutoff=0.6)
    by_lower = {i.lower(): i for i in ids}
    if not close:
        return "see https://spdx.org/licenses/ for the ids, or name it LicenseRef-NAME"
    first, *others = (by_lower[c] for c in close)
    return f"did you mean {first}?" + (f" (also close: {', '.join(others)})" if others else "")


def _symbol(raw: str, what: str, expression: str, *, exception: bool) -> str:
    ref = _REF.match(raw)
    if ref:
        document, name = ref.groups()
        return (f"DocumentRef-{document[len('DocumentRef-'):]}:" if document else "") + f"LicenseRef-{name}"
    _, table = _spdx()
    known = table.get(raw.lower())
    if known is None:
        raise UsageError(
            f"{what}: expected an SPDX license expression {_EXAMPLES}, found {quote(expression)} "
            f"({quote(raw)} is not an SPDX {'exception' if exception else 'license'} id)",
            hint=_suggest(raw),
        )
    if bool(known.is_exception) != exception:
        raise UsageError(
            f"{what}: expected {'an exception after WITH' if exception else 'a license id'}, found "
            f"{quote(known.key)}, which is {'a license' if exception else 'an exception (it goes after WITH)'}, "
            f"in {quote(expression)}"
        )
    return str(known.key)


def _render(node: Any, what: str, expression: str, top: bool = True) -> str:
    from license_expression import LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        return (f"{_symbol(node.license_symbol.key, what, expression, exception=False)} WITH "
                f"{_symbol(node.exception_symbol.key, what, expression, exception=True)}")
    if isinstance(node, LicenseSymbol):
        return _symbol(node.key, what, expression, exception=False)
    parser, _ = _spdx()
    operator = " AND " if isinstance(node, parser.AND) else " OR "
    text = operator.join(_render(arg, what, expression, top=False) for arg in node.args)
    return text if top else f"({text})"


def normalize(expression: str, what: str = "license") -> str:
    """The expression in SPDX spelling, or a UsageError naming what was wrong and the
    closest id."""
    from license_expression import ExpressionError

    text = expression.strip()
    if not text:
        raise UsageError(f"{what}: expected an SPDX license expression {_EXAMPLES}, found nothing")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise UsageError(f"{what}: expected at most {MAX_EXPRESSION_CHARS} characters, found {len(text):,}")
    parser, _ = _spdx()
    try:
        tree = parser.parse(text, validate=False, strict=False)
    except ExpressionError as exc:
        reason = str(exc).split(":", 1)[0].removesuffix(" as in").rstrip(".")
        raise UsageError(
            f"{what}: expected an SPDX license expression {_EXAMPLES}, found {quote(expression)} "
            f"({reason[:1].lower() + reason[1:]})",
            hint="join ids with AND, OR or WITH, not '/' or ','" if re.search(r"[/,;&|+]", text) else None,
        ) from None
    for raw in (s.key for s in parser.license_symbols(tree, decompose=True)):
        if " " in raw.strip():  # two ids with no operator between them, or an id spelled with spaces
            _, table = _spdx()
            if raw.lower() not in table:
                parts = raw.split()
                raise UsageError(f"{what}: expected ids joined by AND, OR or WITH, found {quote(raw)} in "
                                 f"{quote(expression)}",
                                 hint=f"write {' AND '.join(parts)} (all apply) or {' OR '.join(parts)} (a choice)")
    return _render(tree, what, expression)


def is_valid(expression: str) -> bool:
    try:
        normalize(expression)
    except UsageError:
        return False
    return True


def allowed(expression: str, allowed_list: tuple[str, ...]) -> bool:
    """Whether a release under EXPRESSION may be used when only ALLOWED_LIST (normalized
    expressions) is acceptable. The whole expression may be listed; otherwise `A OR B` needs
    one side allowed (the user may choose it), `A AND B` both, and `L WITH E` its license
    (an exception only adds permissions) or the whole `L WITH E` listed. An expression that
    is not valid SPDX is never allowed by a list."""
    try:
        normalized = normalize(expression)
    except UsageError:
        return False
    wanted = {a.lower() for a in allowed_list}
    if normalized.lower() in wanted:
        return True
    parser, _ = _spdx()
    return _allows(parser.parse(normalized, validate=False, strict=False), wanted, parser)


def _allows(node: Any, wanted: set[str], parser: Any) -> bool:
    from license_expression import LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        return (f"{node.license_symbol.key} WITH {node.exception_symbol.key}".lower() in wanted
                or node.license_symbol.key.lower() in wanted)
    if isinstance(node, LicenseSymbol):
        return bool(node.key.lower() in wanted)
    results = (_allows(arg, wanted, parser) for arg in node.args)
    return all(results) if isinstance(node, parser.AND) else any(results)
