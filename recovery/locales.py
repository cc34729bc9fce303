"""The languages users read the engine in: BCP 47 tags, English the fallback."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DEFAULT_LOCALE = "en"

SUPPORTED: tuple[str, ...] = (
    "en",
    "zh-Hans",
    "zh-Hant",
    "es",
    "pt-BR",
    "ru",
    "uk",
    "tr",
    "vi",
    "ko",
    "ja",
    "id",
    "fr",
    "de",
    "ar",
)
"""English, Simplified and Traditional Chinese, Spanish, Portuguese (Brazil), Russian, Ukrainian, Turkish,
Vietnamese, Korean, Japanese, Indonesian, French, German, Arabic."""

_BY_LOWER = {tag.lower(): tag for tag in SUPPORTED}
_ALIASES = {
    "zh": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-tw": "zh-Hant",
    "zh-hk": "zh-Hant",
    "zh-mo": "zh-Hant",
    "pt": "pt-BR",
    "in": "id",
}


def match_locale(tag: str) -> str | None:
    """The supported tag for ``tag`` (case and ``_``/``-`` insensitive; ``zh-TW`` is ``zh-Hant``, ``de-AT`` is
    ``de``); None when there is none."""
    wanted = tag.strip().replace("_", "-").lower()
    if not wanted:
        return None
    if wanted in _BY_LOWER:
        return _BY_LOWER[wanted]
    if wanted in _ALIASES:
        return _ALIASES[wanted]
    parts = wanted.split("-")
    for end in range(len(parts) - 1, 0, -1):
        prefix = "-".join(parts[:end])
        found = _BY_LOWER.get(prefix) or _ALIASES.get(prefix)
        if found:
            return found
    return None


def normalize_locale(tag: str) -> str:
    """The supported tag for ``tag``; ``ValueError`` naming the supported ones otherwise."""
    found = match_locale(tag)
    if found is None:
        raise ValueError(f"unsupported language {tag!r}: use one of {', '.join(SUPPORTED)}")
    return found


def negotiate(accept_language: str | None, *, fallback: str = DEFAULT_LOCALE) -> str:
    """The best supported tag for an HTTP ``Accept-Language`` header (by q-value, then order); ``fallback``
    when it names none (or is absent or malformed)."""
    if not accept_language:
        return fallback
    ranked: list[tuple[Decimal, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = Decimal(1)
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = Decimal(params[2:])
            except InvalidOperation:
                continue
            if not quality.is_finite():
                continue
        if tag.strip() == "*" or quality <= 0:
            continue
        ranked.append((-quality, position, tag))
    for _q, _pos, tag in sorted(ranked):
        found = match_locale(tag)
        if found is not None:
            return found
    return fallback
