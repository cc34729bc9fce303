"""Texts in the reader's language: message ids marked in the code, message catalogs, and Babel formatting.

- **Marking.** A text a user reads is written once, in English, as a message id with named ``{placeholders}``
  (``str.format`` brace syntax, never ``%``): ``N_("...")`` marks an id where it is defined (a constant), and
  ``Message("...", name=value)`` is a text with its values, not yet in any language. ``pybabel extract``
  collects the ids of ``N_``, ``Message`` and ``translate`` into ``recovery/catalogs/messages.pot`` (``make
  catalogs``); each language's ``<babel id>/LC_MESSAGES/messages.po`` holds its translations, compiled to
  ``.mo`` by ``make install``.
- **Rendering.** ``translate(locale, msgid, **params)`` looks the id up in the locale's compiled catalog
  (English, the id itself, when the catalog, the message or a well-formed translation is missing) and fills in
  the values, each formatted for the locale: a :class:`Message` rendered in the same language, a ``datetime``
  or ``date`` with Babel (UTC), a ``Decimal`` with Babel's number format (every decimal it has: a USD figure
  keeps its cents), a :class:`Percent` as the locale writes a percentage. Integers are shown as they are (counts,
  limits, identifiers); an amount is a ``Decimal`` made by :func:`amount` from integer base units.
- A :class:`Message` *is* its English text (a ``str``), so code that logs it, compares it or passes it through
  ``str(exc)`` keeps working; whoever shows it to a user calls :func:`render` with the reader's locale.

Pure: importing this module reads no file and imports no Babel; catalogs are loaded on first use, once per
locale.
"""

from __future__ import annotations

import copy
import functools
import gettext
import logging
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from recovery.locales import DEFAULT_LOCALE, SUPPORTED, match_locale

if TYPE_CHECKING:
    from babel.numbers import NumberPattern

log = logging.getLogger(__name__)

CATALOG_DIR = Path(__file__).parent / "catalogs"
"""``<babel id>/LC_MESSAGES/messages.po`` (source) and ``.mo`` (compiled at install) per language, and the
template ``messages.pot``."""
DOMAIN = "messages"

BABEL_LOCALES: dict[str, str] = {
    "en": "en",
    "zh-Hans": "zh_Hans_CN",
    "zh-Hant": "zh_Hant_TW",
    "es": "es",
    "pt-BR": "pt_BR",
    "ru": "ru",
    "uk": "uk",
    "tr": "tr",
    "vi": "vi",
    "ko": "ko",
    "ja": "ja",
    "id": "id",
    "fr": "fr",
    "de": "de",
    "ar": "ar",
}
"""Our BCP 47 tags (``recovery.locales.SUPPORTED``) to Babel's locale identifiers, which also name the catalogs'
directories."""
assert set(BABEL_LOCALES) == set(SUPPORTED)

Param = Any
"""A placeholder's value: text, a :class:`Message` (a :class:`Percent` too), a number, a ``Decimal``, a ``date`` or
``datetime``."""


def N_(msgid: str) -> str:
    """Marks ``msgid`` for extraction where it is defined; returns it unchanged (render it with :func:`translate`)."""
    return msgid


def supported(locale: str | None) -> str:
    """The supported tag for ``locale`` (any spelling ``match_locale`` knows); English when there is none."""
    return (match_locale(locale) if locale else None) or DEFAULT_LOCALE


def babel_locale(locale: str | None) -> str:
    """Babel's identifier for one of our tags (``zh-Hans`` is ``zh_Hans_CN``); English for anything else."""
    return BABEL_LOCALES[supported(locale)]


def catalog_file(locale: str, suffix: str = ".mo") -> Path:
    """Where the compiled (``.mo``) or source (``.po``) catalog of ``locale`` lives."""
    return CATALOG_DIR / babel_locale(locale) / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


@functools.cache
def _translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalog of ``locale`` (a supported tag); no catalog (not compiled yet) translates nothing."""
    path = catalog_file(locale)
    try:
        with path.open("rb") as file:
            return gettext.GNUTranslations(file)
    except FileNotFoundError:
        if locale != DEFAULT_LOCALE:
            log.warning("no compiled catalog %s: texts in %s fall back to English (run `make install`)", path, locale)
        return gettext.NullTranslations()


def placeholders(text: str) -> list[str]:
    """The ``{names}`` of a brace-format text, in order (``ValueError`` for a malformed one: ``{``, ``{0}``, ``{}``,
    ``{a.b}``, a conversion or a format spec)."""
    names: list[str] = []
    for _literal, field, spec, conversion in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{field}}} in {text!r}: only plain {{name}} placeholders are allowed")
        names.append(field)
    return names


def _value(value: Param, locale: str) -> str:
    if isinstance(value, Message):
        return value.render(locale)
    if isinstance(value, datetime):
        return format_datetime(value, locale)
    if isinstance(value, date):
        return format_date(value, locale)
    if isinstance(value, Decimal):
        return format_number(value, locale)
    return str(value)


def _fill(text: str, params: Mapping[str, Param], locale: str) -> str:
    return text.format_map({name: _value(value, locale) for name, value in params.items()})


def translate(locale: str | None, msgid: str, /, **params: Param) -> str:
    """``msgid`` in ``locale`` (any spelling; English when unsupported) with its ``{placeholders}`` filled in.

    A translation that cannot be filled in (a placeholder the message does not give: a broken catalog, which
    ``tests/test_i18n.py`` refuses) falls back to the English text rather than failing the answer."""
    tag = supported(locale)
    text = _translations(tag).gettext(msgid) if msgid else msgid  # gettext("") is the catalog's header
    try:
        return _fill(text, params, tag)
    except (KeyError, IndexError, ValueError) as exc:
        if text == msgid:
            raise
        log.error("translation of %r in %s cannot be filled in (%r); answering in English", msgid, tag, exc)
        return _fill(msgid, params, tag)


class Message(str):
    """A text for a user: its English rendering (so it is a ``str`` wherever one is expected), with the message
    id and values kept to render it in another language (:meth:`render`).

    ``str(message)`` is the message itself, so an exception made with one (``raise SomeError(Message(...))``)
    hands it on through ``str(exc)``; an f-string or ``+`` makes plain English text of it."""

    msgid: str
    params: Mapping[str, Param]

    def __new__(cls, msgid: str, /, **params: Param) -> Message:
        self = super().__new__(cls, _fill(msgid, params, DEFAULT_LOCALE))
        self.msgid = msgid
        self.params = params
        return self

    def __str__(self) -> str:
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Param]]:
        return (self.msgid,), dict(self.params)

    def render(self, locale: str | None) -> str:
        return translate(locale, self.msgid, **self.params)


class Phrased(Message):
    """A message whose English is given as it is (another library's wording, such as pydantic's validation
    messages, which callers may already match on), and rendered from ``msgid`` in every other language."""

    english: str

    def __new__(cls, english: str, msgid: str, /, **params: Param) -> Phrased:
        self = str.__new__(cls, english)
        self.english, self.msgid, self.params = english, msgid, params
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (self.english, self.msgid), dict(self.params)

    def render(self, locale: str | None) -> str:
        return self.english if supported(locale) == DEFAULT_LOCALE else translate(locale, self.msgid, **self.params)


def render(text: str, locale: str | None) -> str:
    """``text`` for a reader of ``locale``: a :class:`Message` translated, any other text as it is."""
    return text.render(locale) if isinstance(text, Message) else str(text)


class Joined(Message):
    """Texts shown one after the other (``a; b``), each rendered in the reader's language."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: Sequence[str], separator: str = "; ") -> Joined:
        self = str.__new__(cls, separator.join(parts))
        self.msgid, self.params, self.parts, self.separator = "", {}, tuple(parts), separator
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (self.parts, self.separator), {}

    def render(self, locale: str | None) -> str:
        return self.separator.join(render(part, locale) for part in self.parts)


ListStyle = Literal["standard", "or"]


class Listed(Message):
    """Items worded as a list in the reader's language (``A, B or C``, ``A、B或C``), by Babel; ``style`` is one of
    Babel's list styles (``standard``: and, ``or``)."""

    items: tuple[str, ...]
    style: ListStyle

    def __new__(cls, items: Sequence[str], style: ListStyle = "standard") -> Listed:
        self = str.__new__(cls, _format_list(items, style, DEFAULT_LOCALE))
        self.msgid, self.params, self.items, self.style = "", {}, tuple(items), style
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (self.items, self.style), {}

    def render(self, locale: str | None) -> str:
        return _format_list(self.items, self.style, locale)


def _format_list(items: Sequence[str], style: ListStyle, locale: str | None) -> str:
    from babel.lists import format_list

    return format_list(list(items), style=style, locale=babel_locale(locale))


class MessageError(ValueError):
    """A ``ValueError`` whose text is a :class:`Message`: raised by validators, shown in the reader's language."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message


# --- formatting (Babel) ---------------------------------------------------------------------------


def amount(base_units: int, decimals: int) -> Decimal:
    """The exact ``Decimal`` of an integer amount in base units, at any size (``amount(100_500_000, 6) ==
    Decimal("100.5")``, without trailing zeros: ``amount(0, 18)`` is ``0``); built from its digits, never through a
    float or a rounding context."""
    if base_units == 0:
        return Decimal(0)
    digits, exponent = str(abs(base_units)), -decimals
    while exponent < 0 and len(digits) > 1 and digits.endswith("0"):
        digits, exponent = digits[:-1], exponent + 1
    return Decimal((int(base_units < 0), tuple(int(d) for d in digits), exponent))


def format_number(value: Decimal | int, locale: str | None) -> str:
    """A number in the locale's digits and separators, every decimal kept as the value has it, trailing zeros too
    (``Decimal("1234.50")`` is ``1.234,50`` in German, ``1,234.50`` in English): a cent stays a cent."""
    return _format_decimal(value, "decimal", locale)


def format_percent(value: Decimal | int, locale: str | None) -> str:
    """A percentage (``5`` is five percent) as the locale writes one, every decimal kept: ``2.5%``, ``2,5 %`` in
    German, ``%2,5`` in Turkish."""
    return _format_decimal(value, "percent", locale)


def _format_decimal(value: Decimal | int, kind: Literal["decimal", "percent"], locale: str | None) -> str:
    number = value if isinstance(value, Decimal) else Decimal(value)
    digits, exponent = number.as_tuple().digits, int(number.as_tuple().exponent)
    babel = babel_locale(locale)
    with localcontext() as context:  # Babel quantizes: wide enough for a 256-bit amount's every digit
        context.prec = max(context.prec, len(digits) + abs(exponent) + 4)
        scaled = number.scaleb(-2) if kind == "percent" else number  # Babel's percent pattern multiplies by 100
        return _number_pattern(babel, kind, max(0, -exponent)).apply(scaled, babel)


@functools.cache
def _number_pattern(locale: str, kind: Literal["decimal", "percent"], places: int) -> NumberPattern:
    """The locale's pattern for a number (or a percentage) showing exactly ``places`` decimals. Babel's own
    ``decimal_quantization=False`` keeps every decimal but drops trailing zeros (``25.00`` would be ``25``)."""
    from babel import Locale

    babel = Locale.parse(locale)
    pattern = copy.copy((babel.percent_formats if kind == "percent" else babel.decimal_formats)[None])
    pattern.frac_prec = (places, places)
    return pattern


def format_amount(base_units: int, decimals: int, locale: str | None) -> str:
    """An amount given in integer base units, for the locale (``format_amount(1_234_500_000, 6, "de") ==
    "1.234,5"``)."""
    return format_number(amount(base_units, decimals), locale)


def format_date(value: date, locale: str | None) -> str:
    """A calendar date in the locale's long form (``1. März 2026``)."""
    from babel.dates import format_date as babel_format_date

    day = value.astimezone(UTC).date() if isinstance(value, datetime) and value.tzinfo else value
    return babel_format_date(day, format="long", locale=babel_locale(locale))


def format_datetime(value: datetime, locale: str | None) -> str:
    """A moment in UTC in the locale's long form, the zone named (``March 1, 2026, 10:05:00 AM UTC``); a naive
    ``datetime`` is taken as UTC."""
    from babel.dates import format_datetime as babel_format_datetime

    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return babel_format_datetime(aware, format="long", tzinfo=UTC, locale=babel_locale(locale))


# --- message refs (timeline messages and case reasons, docs/i18n.md) -------------------------------


class AmountText(Message):
    """An amount of an asset (``1,234.5 USDT``), the number formatted for the reader's language."""

    base_units: int
    decimals: int
    asset: str

    def __new__(cls, base_units: int, decimals: int, asset: str) -> AmountText:
        self = str.__new__(cls, f"{format_amount(base_units, decimals, DEFAULT_LOCALE)} {asset}")
        self.msgid, self.params = "", {}
        self.base_units, self.decimals, self.asset = base_units, decimals, asset
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (self.base_units, self.decimals, self.asset), {}

    def render(self, locale: str | None) -> str:
        return f"{format_amount(self.base_units, self.decimals, locale)} {self.asset}"


class Percent(Message):
    """A percentage (``Percent(Decimal("2.5"))`` is 2.5 percent) as the reader's language writes one (``2.5%``,
    ``2,5 %``, ``%2,5``), by Babel: a percent sign is never part of a message id (``%`` reads as a C format)."""

    percent: Decimal

    def __new__(cls, percent: Decimal) -> Percent:
        self = str.__new__(cls, format_percent(percent, DEFAULT_LOCALE))
        self.msgid, self.params, self.percent = "", {}, percent
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (self.percent,), {}

    def render(self, locale: str | None) -> str:
        return format_percent(self.percent, locale)


def decode(params: Mapping[str, Any]) -> dict[str, Param]:
    """The values of a message ref's JSON ``params`` (``recovery.models.MessageRef``), ready for
    :func:`translate`: tagged datetimes, dates, amounts, decimals, percentages and nested refs become what formats
    them per language."""
    return {name: _decode_value(value) for name, value in params.items()}


def _decode_value(value: Any) -> Param:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "datetime":
            moment = datetime.fromisoformat(inner)
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        if tag == "date":
            return date.fromisoformat(inner)
        if tag == "amount":
            return AmountText(int(inner["base_units"]), int(inner["decimals"]), str(inner["asset"]))
        if tag == "decimal":
            return Decimal(inner)
        if tag == "percent":
            return Percent(Decimal(inner))
        if tag == "message":
            return Message(inner["msgid"], **decode(inner.get("params") or {}))
    return value


def render_ref(locale: str | None, msgid: str, params: Mapping[str, Any] | None) -> str:
    """A message ref (id and JSON values) in ``locale``; English when the catalog has no translation."""
    return translate(locale, msgid, **decode(params or {}))


# --- messages handed on as JSON (a lower layer's text inside a reason or a timeline message) --------


class Stored(Message):
    """A message rebuilt from its JSON (:func:`message_json`): its English as it was sent, its id and its values
    as a message ref keeps them (tagged). Made without formatting or reading anything, so that it can be rebuilt
    anywhere (a workflow's sandbox decodes activity results); rendered like a ref (:func:`render_ref`)."""

    def __new__(cls, english: str, msgid: str, params: Mapping[str, Any]) -> Stored:
        self = str.__new__(cls, english)
        self.msgid, self.params = msgid, dict(params)
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Param]]:  # type: ignore[override]
        return (str.__str__(self), self.msgid, dict(self.params)), {}

    def render(self, locale: str | None) -> str:
        return render_ref(locale, self.msgid, self.params)


def message_json(text: str) -> dict[str, Any] | None:
    """A message as a message ref's JSON (``{"msgid": ..., "params": {...}}``, values tagged as :func:`decode`
    reads them); None for plain text, and for a :class:`Joined` or :class:`Listed` (their English is handed on)."""
    if isinstance(text, Stored):
        return {"msgid": text.msgid, "params": dict(text.params)}
    if isinstance(text, AmountText | Percent | Joined | Listed) or not isinstance(text, Message) or not text.msgid:
        return None
    return {"msgid": text.msgid, "params": encode(text.params)}


def encode(params: Mapping[str, Param]) -> dict[str, Any]:
    """A message's values as a message ref's JSON, the inverse of :func:`decode`: a nested message, an amount, a
    percentage, a date, a moment or a ``Decimal`` tagged; text and integers as they are."""
    return {name: _encode_value(value) for name, value in params.items()}


def _encode_value(value: Param) -> Any:
    if isinstance(value, AmountText):
        inner = {"base_units": str(value.base_units), "decimals": value.decimals, "asset": value.asset}
        return {"amount": inner}
    if isinstance(value, Percent):
        return {"percent": str(value.percent)}
    if isinstance(value, str):
        nested = message_json(value)
        return str.__str__(value) if nested is None else {"message": nested}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, int):
        return value
    return str(value)


SEPARATED = N_("{first}; {second}")
"""Two texts one after the other (findings, parts not read), separated as the reader's language does it."""
SPACED = N_("{first} {second}")
"""Two texts one after the other with a space between them (two sentences, a note and what follows it)."""


def separated(texts: Sequence[str], msgid: str = SEPARATED) -> str:
    """``a; b; c`` (``a b c`` with :data:`SPACED`): the texts one after the other, each rendered in the reader's
    language and the separator too (nested messages); plain text when none of them is a message."""
    if not any(isinstance(text, Message) for text in texts):
        return ("; " if msgid == SEPARATED else " ").join(texts)
    if len(texts) == 1:
        return texts[0]
    middle = len(texts) // 2  # nested by halves: as deep as the logarithm of the number of texts
    return Message(msgid, first=separated(texts[:middle], msgid), second=separated(texts[middle:], msgid))
