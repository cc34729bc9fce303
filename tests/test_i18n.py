"""Languages: the message catalogs (complete, placeholders intact, in step with the code and compiled), the rule
that every text the API writes for users is marked for translation, Babel's formatting of amounts and dates, and
the API answering in the caller's language (``Accept-Language``, else the user's stored locale, else English)."""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_keywords
from babel.messages.pofile import read_po
from fastapi import FastAPI
from sqlmodel import Session

from api.errors import DOCUMENTED
from api.main import create_app
from api.schemas import CLOSED_TEXT, CaseDetail
from recovery import i18n
from recovery.i18n import (
    BABEL_LOCALES,
    CATALOG_DIR,
    Joined,
    Listed,
    Message,
    MessageError,
    amount,
    format_amount,
    format_date,
    format_datetime,
    format_number,
    placeholders,
    render,
    separated,
    translate,
)
from recovery.locales import SUPPORTED
from recovery.models import CaseStatus, TraceResult, Transfer
from store import cases, users
from store.cases import Case
from tests.api_fixtures import TX, Api

ROOT = Path(__file__).resolve().parent.parent
POT = CATALOG_DIR / "messages.pot"
NOT_FOUND_EN = "no case 'case-x' among yours; list your cases with GET /v1/cases"


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {m.id for m in catalog if m.id and isinstance(m.id, str)}


TEMPLATE = _read(POT)
MESSAGE_IDS = _ids(TEMPLATE)


# --- the catalogs ---------------------------------------------------------------------------------


def test_fifteen_languages_each_with_a_catalog() -> None:
    assert len(SUPPORTED) == 15 and set(BABEL_LOCALES) == set(SUPPORTED)
    for tag, babel_id in BABEL_LOCALES.items():
        assert i18n.catalog_file(tag, ".po") == CATALOG_DIR / babel_id / "LC_MESSAGES" / "messages.po"
        assert i18n.catalog_file(tag, ".po").is_file(), f"no catalog for {tag}: pybabel init -l {babel_id} (README)"
    assert len(MESSAGE_IDS) >= 90  # the API's own texts, at least


@pytest.mark.parametrize("tag", SUPPORTED)
def test_a_catalog_translates_every_message_of_the_template_and_no_other(tag: str) -> None:
    """Every message of ``messages.pot`` has a non-empty translation that is not fuzzy (``pybabel compile`` leaves
    fuzzy entries out: the user would read English), and the catalog has no message the template lacks."""
    catalog = _read(i18n.catalog_file(tag, ".po"), locale=BABEL_LOCALES[tag])
    assert str(catalog.locale) == BABEL_LOCALES[tag]
    entries = {m.id: m for m in catalog if m.id}
    missing = sorted(MESSAGE_IDS - set(entries))
    extra = sorted(set(entries) - MESSAGE_IDS)
    untranslated = sorted(str(i) for i, m in entries.items() if not (isinstance(m.string, str) and m.string.strip()))
    fuzzy = sorted(str(i) for i, m in entries.items() if m.fuzzy)
    assert not missing, f"{tag}: messages not in the catalog (run make catalogs, then translate them): {missing}"
    assert not extra, f"{tag}: messages the template no longer has (run make catalogs): {extra}"
    assert not untranslated, f"{tag}: untranslated: {untranslated}"
    assert not fuzzy, f"{tag}: fuzzy (review the translation and drop the fuzzy flag): {fuzzy}"


@pytest.mark.parametrize("tag", SUPPORTED)
def test_a_translation_has_exactly_the_placeholders_of_its_message(tag: str) -> None:
    """Each ``{name}`` of the message id is in the translation, and nothing else is: no missing, misspelt (``{nmae}``),
    broken (``{name``, ``{0}``, ``{name!r}``, ``{name:>5}``) or extra placeholder."""
    catalog = _read(i18n.catalog_file(tag, ".po"), locale=BABEL_LOCALES[tag])
    wrong: list[str] = []
    for message in catalog:
        if not message.id or not isinstance(message.id, str) or not isinstance(message.string, str):
            continue
        wanted = set(placeholders(message.id))
        try:
            found = set(placeholders(message.string))
        except ValueError as exc:
            wrong.append(f"{message.id!r}: {exc}")
            continue
        if found != wanted:
            wrong.append(f"{message.id!r}: missing {sorted(wanted - found)}, extra {sorted(found - wanted)}")
    assert not wrong, f"{tag}:\n" + "\n".join(wrong)


def test_the_placeholder_check_catches_broken_placeholders() -> None:
    assert placeholders("no case {case_id} among {where}") == ["case_id", "where"]
    for broken in ("{case_id", "case_id}", "{0}", "{}", "{a.b}", "{a[0]}", "{a!r}", "{a:>5}"):
        with pytest.raises(ValueError):
            placeholders(broken)
    assert placeholders("{{literal}} braces") == []


def _extract_keywords() -> dict[str, Any]:
    """The keywords ``make catalogs`` extracts with, read from the Makefile (one source of truth)."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("EXTRACT_KEYWORDS"))
    names = re.findall(r"-k\s+(\S+)", line)
    assert "--no-default-keywords" in line and {"N_", "Message", "translate:2"} <= set(names)
    keywords: dict[str, Any] = parse_keywords(names)
    return keywords


def _extracted() -> set[str]:
    found: set[str] = set()
    keywords = _extract_keywords()
    for package in ("recovery", "store", "fees", "chains", "services", "workflows", "api", "cli"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=keywords
        ):
            found.update([message] if isinstance(message, str) else [m for m in message if m])
    return found


def test_the_template_is_in_step_with_the_code() -> None:
    """What ``pybabel extract`` finds in the code is what ``messages.pot`` holds: a message added, changed or
    removed in the code without ``make catalogs`` fails here."""
    found = _extracted()
    assert not found - MESSAGE_IDS, f"marked in the code but not in messages.pot (make catalogs): {found - MESSAGE_IDS}"
    assert not MESSAGE_IDS - found, f"in messages.pot but no longer in the code (make catalogs): {MESSAGE_IDS - found}"
    for msgid in MESSAGE_IDS:
        placeholders(msgid)  # well-formed in English too
        assert "%" not in msgid, f"{msgid!r}: brace placeholders only (a % would be read as a C format)"


@pytest.mark.parametrize("tag", SUPPORTED)
def test_the_compiled_catalog_is_the_one_of_the_source(tag: str) -> None:
    """``make install`` compiles each ``.po`` into the ``.mo`` the API reads; a stale or missing one would answer
    in old texts or in English."""
    mo = i18n.catalog_file(tag)
    assert mo.is_file(), f"{mo} is not compiled: run make install"
    with mo.open("rb") as file:
        compiled = {k: v for k, v in gettext.GNUTranslations(file)._catalog.items() if k}  # type: ignore[attr-defined]
    source = _read(i18n.catalog_file(tag, ".po"), locale=BABEL_LOCALES[tag])
    assert compiled == {m.id: m.string for m in source if m.id}, f"{mo} is stale: run make install"


# --- the rule: every text the API writes for users goes through the catalogs --------------------------

SINK_ARGUMENTS: dict[str, tuple[str, int | None]] = {
    "HTTPException": ("detail", 1),
    "StarletteHTTPException": ("detail", 1),
    "unauthorized": ("detail", 0),
    "error_response": ("detail", 1),
    "_error": ("detail", 4),
    "NextActionOut": ("text", None),
    "UserStep": ("text", None),
}
"""Calls whose argument (by keyword, or by position) is a text the user reads."""
MORE_SINK_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ClaimPreview": ("reason", "next", "unavailable_reason", "caveats"),
    "unavailable": ("why",),
    "_rejected": ("reason",),
    "append": (),  # caveats.append(...): the first argument, see _check_node
}
"""More calls whose keyword arguments are texts the user reads (the claim-time answer's)."""
TRANSLATORS = {"translate", "tr"}
"""``translate``, and ``tr``: ``translate`` bound to the reader's language (services/claim_preview.py)."""
USER_TEXT_SOURCES = ("services/claim_preview.py",)
"""Modules outside ``api/`` that write texts the API answers with (the claim-time answer)."""
MARKERS = {"Message", "N_", "translate", "render", "Listed", "Joined", "MessageError"}
INTERNAL_EXCEPTIONS = {"AssertionError", "RuntimeError", "NotImplementedError", "HTTPException", "MessageError"}
PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
PENDING: dict[tuple[str, str], str] = {}
"""Functions whose texts are not marked yet, and why; each must still have an unmarked text (else remove it)."""


@dataclass(frozen=True)
class Unmarked:
    path: str
    function: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}: {self.what}"


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _module_values(trees: dict[str, ast.Module]) -> dict[str, list[ast.expr]]:
    """Every module-level ``NAME = value`` of the API's modules (a name defined twice has both values)."""
    values: dict[str, list[ast.expr]] = {}
    for tree in trees.values():
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    values.setdefault(target.id, []).append(value)
    return values


class _Checker:
    """The rule, over the source of ``api/`` (see :func:`test_every_text_the_api_writes_for_users_is_marked`)."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.trees = trees
        self.constants = _module_values(trees)
        self.found: list[Unmarked] = []

    def unmarked(self, node: ast.expr | None, seen: frozenset[str] = frozenset()) -> str | None:
        """Why ``node`` is a text written for users without going through the catalogs; None when it is not one."""
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return f"the literal {node.value!r}" if isinstance(node.value, str) and node.value.strip() else None
        if isinstance(node, ast.JoinedStr):
            return "an f-string"
        if isinstance(node, ast.BinOp):
            return self.unmarked(node.left, seen) or self.unmarked(node.right, seen)
        if isinstance(node, ast.BoolOp):
            return next((why for v in node.values if (why := self.unmarked(v, seen))), None)
        if isinstance(node, ast.IfExp):
            return self.unmarked(node.body, seen) or self.unmarked(node.orelse, seen)
        if isinstance(node, ast.List | ast.Tuple):
            return next((why for v in node.elts if (why := self.unmarked(v, seen))), None)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "format":
                return self.unmarked(node.func.value, seen) and "a str.format of a literal"
            return None  # Message(...), translate(...), str(exc), ...: marked, or not a text the API writes
        if isinstance(node, ast.Name | ast.Subscript):
            name = node.id if isinstance(node, ast.Name) else _name(node.value)
            if not name or name in seen:
                return None
            for value in self.constants.get(name, []):
                parts = value.values if isinstance(value, ast.Dict) and isinstance(node, ast.Subscript) else [value]
                for part in parts:
                    why = self.unmarked(part, seen | {name})
                    if why:
                        return f"{name}, {why}"
        return None

    def check(self) -> list[Unmarked]:
        for path, tree in self.trees.items():
            self._visit(path, tree, "<module>")
        return self.found

    def _visit(self, path: str, node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            self._check_node(path, child, inner)
            self._visit(path, child, inner)

    def _flag(self, path: str, function: str, node: ast.AST, what: str | None, where: str) -> None:
        if what:
            self.found.append(Unmarked(path, function, getattr(node, "lineno", 0), f"{where}: {what}"))

    def _check_node(self, path: str, node: ast.AST, function: str) -> None:
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in SINK_ARGUMENTS:
                keyword, position = SINK_ARGUMENTS[name]
                value = next((k.value for k in node.keywords if k.arg == keyword), None)
                if value is None and position is not None and len(node.args) > position:
                    value = node.args[position]
                self._flag(path, function, node, self.unmarked(value), f"{name}({keyword}=...)")
            if name in ("Message", "N_"):
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)) and not isinstance(
                    first, ast.Name | ast.Subscript
                ):
                    self._flag(path, function, node, "not a plain string literal", f"{name}'s message id")
            for keyword in MORE_SINK_KEYWORDS.get(name, ()):
                value = next((k.value for k in node.keywords if k.arg == keyword), None)
                self._flag(path, function, node, self.unmarked(value), f"{name}({keyword}=...)")
            if name == "append" and path in USER_TEXT_SOURCES and node.args:
                self._flag(path, function, node, self.unmarked(node.args[0]), "append(...)")
            if name in ("Message", *TRANSLATORS):
                for keyword_ in node.keywords:
                    value = keyword_.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str) and PROSE.search(value.value):
                        self._flag(path, function, node, f"the literal {value.value!r}", f"{name}({keyword_.arg}=...)")
                    elif isinstance(value, ast.JoinedStr) and PROSE.search(ast.unparse(value)):
                        self._flag(path, function, node, "an f-string", f"{name}({keyword_.arg}=...)")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "detail":
                    self._flag(path, function, node, self.unmarked(value), '{"detail": ...}')
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = _name(node.exc.func)
            if name and name not in INTERNAL_EXCEPTIONS and node.exc.args:
                self._flag(path, function, node, self.unmarked(node.exc.args[0]), f"raise {name}(...)")


def _api_trees() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text(), filename=str(path))
        for path in [*sorted((ROOT / "api").rglob("*.py")), *(ROOT / p for p in USER_TEXT_SOURCES)]
    }


def _check(source: str) -> list[str]:
    return [u.what for u in _Checker({"api/x.py": ast.parse(source)}).check()]


def test_every_text_the_api_writes_for_users_is_marked() -> None:
    """The rule, read from the source of ``api/`` with ``ast``.

    A *user-facing position* is: the ``detail`` of ``HTTPException`` (or ``unauthorized``, ``error_response``, the
    body-size middleware's ``_error``), the value of a ``"detail"`` key in a dict literal (a JSON body), the ``text``
    of ``NextActionOut``, and the message of an exception the API raises (``raise X("...")``; not
    ``AssertionError``, ``RuntimeError``, ``NotImplementedError``, which no user reads).

    An expression there is *unmarked* when it is a string literal, an f-string, a ``+``/``%`` concatenation or a
    ``"...".format()`` of one, a conditional (``a if c else b``, ``a or b``) with an unmarked branch, or a name (or a
    subscript of one) bound at the top of an ``api`` module to such a value (for a dict, any of its values). It is
    *marked* when it is a call of ``Message``, ``N_``, ``translate``, ``render``... or of anything else (``str(exc)``
    hands on a lower layer's text, which carries its own :class:`~recovery.i18n.Message` once that layer is
    translated), or a local variable.

    Also: the message id of ``Message``/``N_`` is a plain string literal (or a name bound to an ``N_``-marked id), so
    ``pybabel extract`` finds it; and a value given to ``Message``/``translate`` is not English prose (a literal of
    two words or more): prose is a ``Message`` of its own, so it is translated too."""
    found = _Checker(_api_trees()).check()
    pending = {(u.path, u.function) for u in found} & set(PENDING)
    unexpected = [str(u) for u in found if (u.path, u.function) not in PENDING]
    assert not unexpected, "texts for users not marked for translation (wrap them in Message):\n" + "\n".join(
        unexpected
    )
    assert pending == set(PENDING), f"no unmarked text left in {set(PENDING) - pending}: remove it from PENDING"


def test_the_rule_finds_unmarked_texts() -> None:
    assert _check('raise HTTPException(status_code=404, detail="no such case")')
    assert _check('raise HTTPException(404, f"no case {case_id}")')
    assert _check('raise HTTPException(404, "no case " + case_id)')
    assert _check('raise HTTPException(404, "no case {}".format(case_id))')
    assert _check('raise HTTPException(404, detail=x if y else "none")')
    assert _check('raise unauthorized(f"missing token: {HELP}")')
    assert _check('HELP = "send a token"\nraise HTTPException(401, detail=HELP)')
    assert _check('TEXT = {1: "Nothing to do."}\nNextActionOut(action=a, text=TEXT[s])')
    assert _check('JSONResponse(content={"detail": "you already filed this", "case_id": c})')
    assert _check('raise ValueError("must be a number")')
    assert _check('raise TxHashFormatError(f"{tx!r} is not a hash")')
    assert _check("Message(f'no case {case_id}')")
    assert _check("Message('{a} is {b}', a=x, b='not on the roster')")
    assert _check('error_response(413, "too large")')
    assert _check('ClaimPreview(available=True, next="Nothing to do.", as_of=now)')
    assert _check('ClaimPreview(available=True, next=tr(N_("Nothing to do.")), caveats=["Provisional."], as_of=now)')
    assert _check('UserStep(kind=k, text=f"Accept the fee of {fee}")')
    assert _check("tr(N_('{reason} It is worth {value}'), reason=r, value='more than enough')")
    assert not _check('ClaimPreview(available=True, next=tr(N_("Nothing to do.")), caveats=[_provisional(tr)])')


def test_the_rule_lets_marked_texts_and_other_layers_texts_through() -> None:
    assert not _check('raise HTTPException(404, detail=Message("no case {case_id}", case_id=c))')
    assert not _check('HELP = Message("send a token")\nraise unauthorized(Message("missing: {help}", help=HELP))')
    assert not _check('TEXT = {1: N_("Nothing to do.")}\nNextActionOut(action=a, text=translate(locale, TEXT[s]))')
    assert not _check("raise HTTPException(422, detail=str(exc))")
    assert not _check("raise HTTPException(422, detail=detail)")
    assert not _check('raise AssertionError("unreachable")')
    assert not _check("Message('send {example}', example='{\"tx_hash\": \"0x...\"}')")
    assert not _check('x = ", ".join(names) or Message("empty")\nraise HTTPException(403, detail=x)')


# --- rendering and formatting -----------------------------------------------------------------------


def test_translate_falls_back_to_english_for_an_unsupported_or_missing_language() -> None:
    msgid = "no case {case_id} among yours; list your cases with GET /v1/cases"
    assert (
        translate("xx", msgid, case_id="'c'")
        == translate(None, msgid, case_id="'c'")
        == NOT_FOUND_EN.replace("case-x", "c")
    )
    assert translate("de-AT", msgid, case_id="'c'").startswith("kein Fall 'c'")  # de-AT is German
    assert translate("zh-TW", msgid, case_id="'c'") == translate("zh-Hant", msgid, case_id="'c'")
    assert translate("ja", "a text no catalog has {x}", x=1) == "a text no catalog has 1"


def test_a_broken_translation_answers_in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "kaputt {nmae}"

    monkeypatch.setattr(i18n, "_translations", lambda locale: Broken())
    assert translate("de", "hello {name}", name="bob") == "hello bob"


def test_a_message_is_its_english_text_and_renders_in_any_language() -> None:
    message = Message("no case {case_id} among yours; list your cases with GET /v1/cases", case_id="'case-x'")
    assert message == NOT_FOUND_EN and isinstance(message, str)
    assert str(ValueError(message)) is not None and str(ValueError(message)).msgid == message.msgid  # type: ignore[attr-defined]
    assert message.render("ja").startswith("お客様のケースに 'case-x' はありません")
    nested = Message(
        "invalid request: {problems}", problems=Joined([Message("must be text"), Message("must be a list")])
    )
    assert str(nested) == "invalid request: must be text; must be a list"
    assert nested.render("fr") == "requête non valide : doit être du texte; doit être une liste"
    assert MessageError(message).message is message
    listed = Listed(["COMPLETED", "REJECTED", "EXPIRED"], style="or")
    assert listed == "COMPLETED, REJECTED, or EXPIRED" and listed.render("de") == "COMPLETED, REJECTED oder EXPIRED"


def test_amounts_are_formatted_by_babel_from_base_units_exactly() -> None:
    assert amount(1_234_500_000, 6) == Decimal("1234.5")
    assert format_amount(1_234_500_000, 6, "de") == "1.234,5"  # German: comma decimals, dot groups
    assert format_amount(1_234_500_000, 6, "en") == "1,234.5"
    assert format_amount(1_234_500_000, 6, "fr") == "1\u202f234,5"
    assert format_amount(1_234_500_000, 6, "pt-BR") == "1.234,5"
    assert format_amount(5, 6, "de") == "0,000005" and format_amount(0, 18, "de") == "0"
    wei = 2**256 - 1  # every digit of a 256-bit amount, at 18 decimals: no float, no 28-digit context
    assert format_amount(wei, 18, "en").replace(",", "") == f"{str(wei)[:-18]}.{str(wei)[-18:]}"
    assert format_number(Decimal("1E+3"), "de") == "1.000"
    assert translate(
        "de",
        "request body too large: the limit is {limit} bytes; send only the fields the operation documents (see /docs)",
        limit=Decimal("2048.5"),
    ).startswith("Anfragetext zu groß: Die Grenze liegt bei 2.048,5")


def test_dates_are_formatted_by_babel_for_the_locale_in_utc() -> None:
    at = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
    assert format_date(date(2026, 3, 1), "de") == "1. März 2026"
    assert format_date(at, "ja") == "2026年3月1日"
    assert format_datetime(at, "de") == "1. März 2026, 10:05:00 UTC"
    assert format_datetime(at, "en") == "March 1, 2026, 10:05:00\u202fAM UTC"
    assert format_datetime(at.replace(tzinfo=None), "ja") == "2026年3月1日 10:05:00 UTC"  # naive is UTC
    assert "2026" in format_datetime(at, "ar") and "مارس" in format_datetime(at, "ar")
    expired = translate("es", "the API token expired at {expired_at}: {what_to_do}", expired_at=at, what_to_do="x")
    assert expired == "el token de API caducó el 1 de marzo de 2026, 10:05:00 UTC: x"


# --- the API in the caller's language -----------------------------------------------------------------


def _file_case(api: Api, status: CaseStatus = CaseStatus.AWAITING_APPROVAL, user: str = "alice") -> str:
    with Session(api.engine) as session:
        cases.create_case(session, case_id="case-i18n", user_id=user, chain="bsc", tx_hash=TX, log_index=0)
        row = session.get(Case, "case-i18n")
        assert row is not None
        row.status = status
        session.add(row)
        session.commit()
    return "case-i18n"


def _set_locale(api: Api, user: str, locale: str) -> None:
    with Session(api.engine) as session:
        users.set_locale(session, user_id=user, locale=locale)


@pytest.mark.parametrize(
    ("language", "expected", "content_language"),
    [
        ("ja", "お客様のケースに 'case-x' はありません。GET /v1/cases でケースの一覧を確認してください", "ja"),
        ("ar", "لا توجد حالة 'case-x' ضمن حالاتك؛ اعرض حالاتك باستخدام GET /v1/cases", "ar"),
        ("pt-BR", "nenhum caso 'case-x' entre os seus; liste os seus casos com GET /v1/cases", "pt-BR"),
        ("fr-CH, en;q=0.5", "aucun dossier 'case-x' parmi les vôtres ; listez vos dossiers avec GET /v1/cases", "fr"),
        ("xx-YY", NOT_FOUND_EN, "en"),  # unsupported: the user's locale (en by default)
        ("", NOT_FOUND_EN, "en"),
    ],
)
async def test_the_same_error_in_the_callers_language(
    api: Api, language: str, expected: str, content_language: str
) -> None:
    headers = api.auth() | ({"Accept-Language": language} if language else {})
    response = await api.http.get("/v1/cases/case-x/feedback", headers=headers)
    assert response.status_code == 404 and response.json() == {"detail": expected}
    assert response.headers["content-language"] == content_language
    assert "accept-language" in response.headers["vary"].lower()


async def test_without_a_header_the_users_stored_locale_and_the_header_wins_over_it(api: Api) -> None:
    _set_locale(api, "alice", "uk")
    stored = await api.http.get("/v1/cases/case-x/feedback", headers=api.auth())
    assert stored.headers["content-language"] == "uk"
    assert stored.json()["detail"] == "серед ваших заявок немає 'case-x'; список ваших заявок: GET /v1/cases"
    unsupported = await api.http.get("/v1/cases/case-x/feedback", headers=api.auth() | {"Accept-Language": "xx"})
    assert unsupported.headers["content-language"] == "uk"  # a header that names no supported language
    asked = await api.http.get("/v1/cases/case-x/feedback", headers=api.auth() | {"Accept-Language": "ko"})
    assert asked.headers["content-language"] == "ko" and asked.json()["detail"].startswith("회원님의 케이스 중에")
    other = await api.http.get("/v1/cases/case-x/feedback", headers=api.auth("bob"))  # bob keeps English
    assert other.headers["content-language"] == "en" and other.json()["detail"] == NOT_FOUND_EN


async def test_refusals_before_the_user_is_known_and_validation_errors_are_translated(api: Api) -> None:
    anonymous = await api.http.get("/v1/cases", headers={"Accept-Language": "zh-CN"})
    assert anonymous.status_code == 401 and anonymous.headers["content-language"] == "zh-Hans"
    assert anonymous.json()["detail"].startswith("缺少 API 令牌：请以 'Authorization: Bearer <token>' 发送")
    english = await api.http.get("/v1/cases", headers={"Accept-Language": "xx"})
    assert english.json()["detail"].startswith("missing API token: send your API token")

    bad = await api.http.post(
        "/v1/cases", json={"tx_hash": "nope", "extra": 1}, headers=api.auth() | {"Accept-Language": "de"}
    )
    assert bad.status_code == 422 and bad.headers["content-language"] == "de"
    assert bad.json()["detail"] == (
        "ungültige Anfrage: tx_hash: muss eine Transaktions-ID sein: 0x und 64 Hexadezimalzeichen auf EVM-Chains oder "
        "64 Hexadezimalzeichen auf Bitcoin, Tron und dem XRP Ledger (kopieren Sie sie aus Ihrer Wallet oder einem "
        "Block-Explorer); unbekanntes Feld 'extra': Entfernen Sie es"
    )
    limit = await api.http.get("/v1/cases", params={"limit": "x"}, headers=api.auth() | {"Accept-Language": "ja"})
    assert limit.json()["detail"] == "無効なリクエストです：limit：整数である必要があります"
    pydantic = await api.http.get("/v1/cases", params={"limit": "x"}, headers=api.auth())  # English: pydantic's words
    assert pydantic.json()["detail"].startswith("invalid request: limit: Input should be a valid integer")
    huge = await api.http.post("/v1/cases", content=b"{" * 5000, headers={"Accept-Language": "ru"})
    assert huge.status_code == 413 and huge.headers["content-language"] == "ru"
    assert huge.json()["detail"].startswith("тело запроса слишком большое: предел 2048 байт")
    method = await api.http.delete("/v1/cases", headers={"Accept-Language": "tr"})
    assert (
        method.status_code == 405
        and method.json()["detail"] == "/v1/cases üzerinde DELETE kullanılamaz: GET, POST kullanın"
    )
    assert not api.fakes.traces and not api.case_rows()


async def test_next_action_in_the_readers_language_each_cached_apart(api: Api) -> None:
    case_id = _file_case(api)
    reads: dict[str, list[httpx.Response]] = {}
    for language in ("es", "en", "ja", "es"):
        response = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"Accept-Language": language})
        assert response.status_code == 200 and response.headers["content-language"] == language
        reads.setdefault(language, []).append(response)
    texts = {language: responses[0].json()["next_action"]["text"] for language, responses in reads.items()}
    assert texts == {
        "es": "Nada: un ingeniero de recuperación está revisando tu caso.",
        "en": "Nothing: a recovery engineer is reviewing your case.",
        "ja": "対応は不要です。復旧エンジニアがケースを確認しています。",
    }
    assert len({responses[0].headers["etag"] for responses in reads.values()}) == 3  # one copy per language
    assert (
        reads["es"][0].content == reads["es"][1].content
        and reads["es"][0].headers["etag"] == reads["es"][1].headers["etag"]
    )
    etag = reads["ja"][0].headers["etag"]
    unchanged = await api.http.get(
        f"/v1/cases/{case_id}", headers=api.auth() | {"Accept-Language": "ja", "If-None-Match": etag}
    )
    assert unchanged.status_code == 304
    _set_locale(api, "alice", "ar")  # no header: the stored locale
    stored = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())
    assert stored.headers["content-language"] == "ar"
    assert stored.json()["next_action"]["text"] == "لا شيء: يراجع مهندس استرداد حالتك الآن."


def _usdt_to(recipient: str) -> TraceResult:
    transfer = Transfer(
        chain="bsc",
        tx_hash=TX,
        log_index=7,
        token_address="0x55d398326f99059fF775485246999027B3197955",
        asset="USDT",
        decimals=18,
        sender="0x" + "11" * 20,
        recipient=recipient,
        amount=100 * 10**18,
    )
    return TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=True, transfers=[transfer])


async def test_a_claims_refusals_in_the_claimants_language(api: Api) -> None:
    api.fakes.trace_result = _usdt_to(api.addresses["bob"])
    foreign = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth() | {"Accept-Language": "ko"})
    assert foreign.status_code == 403 and foreign.headers["content-language"] == "ko"
    assert foreign.json()["detail"].startswith("이 입금은 다른 계정에 속한 주소로 보내졌습니다")

    api.fakes.trace_result = _usdt_to(api.addresses["alice"])
    filed = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["case_id"]
    _set_locale(api, "alice", "ja")  # the stored locale, no header: the 409 is written once the user is known
    again = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert again.status_code == 409 and again.headers["content-language"] == "ja"
    assert again.json() == {
        "detail": f"この入金についてはすでに申請済みです。GET /v1/cases/{case_id} で状況を確認してください",
        "case_id": case_id,
    }
    claimed = await api.http.post(
        "/v1/cases", json={"tx_hash": TX}, headers=api.auth("bob") | {"Accept-Language": "id"}
    )
    assert claimed.status_code == 403
    assert claimed.json()["detail"].startswith("deposit ini dikirim ke alamat milik akun lain")


@pytest.mark.parametrize("status", sorted(CLOSED_TEXT, key=str))
def test_closed_texts_in_every_language(status: CaseStatus) -> None:
    case = Case(case_id="c", user_id="alice", tx_hash=TX, status=status, reason="")
    for tag in SUPPORTED:
        text = CaseDetail.model_validate(CaseDetail.fields_of(case, [], locale=tag)).next_action.text
        assert text == translate(tag, CLOSED_TEXT[status]) and text
        assert (text == CLOSED_TEXT[status]) == (tag == "en")


def _failing_app(api: Api) -> FastAPI:
    app = create_app(api.app.state.settings, engine=api.engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app


async def test_the_500_is_in_the_callers_language_too(api: Api) -> None:
    transport = httpx.ASGITransport(app=_failing_app(api), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.get("/boom", headers={"Accept-Language": "vi"})
    assert response.status_code == 500 and response.headers["content-language"] == "vi"
    assert response.json()["detail"].startswith("lỗi nội bộ (sự cố ") and "boom" not in response.text


def test_the_spec_documents_accept_language_and_content_language(api: Api) -> None:
    spec = api.app.openapi()
    operations = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert operations
    for op in operations:
        header = next(p for p in op["parameters"] if p["in"] == "header" and p["name"] == "Accept-Language")
        assert not header["required"] and header["schema"] == {"type": "string"}
        assert all(tag in header["description"] for tag in SUPPORTED)
        assert "422" in op["responses"]  # true of every operation: an unknown query parameter is refused
        for response in op["responses"].values():
            assert response["headers"]["Content-Language"] == {"$ref": "#/components/headers/ContentLanguage"}
    assert spec["components"]["headers"]["ContentLanguage"]["schema"]["enum"] == list(SUPPORTED)
    assert "Accept-Language" in spec["info"]["description"] and 422 in DOCUMENTED


def test_many_separated_texts_nest_shallow_and_read_in_order() -> None:
    """``separated`` nests its texts by halves: 600 findings render (a chain 600 deep would not), in order, with
    the reader's separator."""
    texts = [Message("{topics} topics, {data} data bytes", topics=n, data=0) for n in range(600)]
    joined = separated(texts)
    assert str(joined) == "; ".join(str(text) for text in texts)
    german = render(joined, "de")
    assert (
        german != str(joined)
        and german.count(";") == 599
        and german.startswith(translate("de", texts[0].msgid, topics=0, data=0))
    )
