"""Secret redaction: the configured secret values never leave the process in text.

Nodes echo what they were sent: an RPC provider's error says ``invalid project id /v3/<key>``, a proxy
repeats the ``Authorization`` header, a database driver prints its URL. Reducing URLs to their shape where
*we* print them (``chains.endpoints.redact_url``) does not catch what a node or a library writes into an
exception message, so the values themselves are redacted wherever text leaves the process:

- :class:`Redactor` knows the secret values of a :class:`~recovery.settings.Settings` (see
  :func:`secrets_of`) and replaces every occurrence of each, also URL-encoded, JSON-escaped and as the
  base64 of a Basic-auth header, with ``***``;
- :class:`RedactingFilter` is a ``logging.Filter`` for handlers (:func:`install_log_redaction` puts one
  on every handler of the process: the worker's and the API's logs);
- :func:`install_excepthook` redacts an uncaught exception's traceback on stderr;
- ``workflows.failure_redaction`` redacts activity failures before they are stored in Temporal's history.

What counts as a secret (values shorter than :data:`MIN_SECRET_CHARS` are never redacted: replacing every
``"ab"`` of a log would make it unreadable and protect nothing):

- in every URL of the settings (chain endpoints, the database URL): the user info's password, and the user
  name when it is the only credential (``https://<key>@host``) or looks like a key; the ``user:password``
  pair and its base64 (a Basic-auth header); every query-string value under a secret-sounding name
  (``apikey``, ``token``...) and any other query value of :data:`MIN_QUERY_VALUE_CHARS` or more characters;
  path segments that look like API keys (``/v3/<key>``, see :func:`looks_like_key`);
- every ``SecretStr``/``SecretBytes`` field, every text field whose name says it is secret (``password``,
  ``token``, ``api_key``, ``webhook_secret``, ``mnemonic``, ``seed``...; never ``public``) and every value
  of a mapping whose name mentions headers (``headers``, ``rpc_headers``);
- the signer's seed file and the decision-attestation key file, when they exist.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

REDACTED = "***"
MIN_SECRET_CHARS = 4
"""Shorter values are not redacted (see the module doc)."""
MIN_QUERY_VALUE_CHARS = 8
"""A query-string value under a name that does not say "secret" counts as one from this length on
(``?network=mainnet`` stays readable, ``?x=<20 characters>`` does not)."""
MAX_SECRET_FILE_BYTES = 4096

_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "key",
        "mnemonic",
        "pass",
        "passphrase",
        "passwd",
        "password",
        "private",
        "pwd",
        "secret",
        "seed",
        "session",
        "sig",
        "signature",
        "token",
    }
)
"""Words of a field or query-parameter name (split on ``_``, ``-`` and ``.``) that make its value a secret."""
_NOT_SECRET_WORDS = frozenset({"public", "file", "path", "dir", "url", "urls"})
"""A name with one of these is not a secret value itself (``attestation_public_keys``, ``seed_file``)."""
_KEY_MARKERS = frozenset({"v1", "v2", "v3", "key", "keys", "apikey", "api-key", "api_key", "token"})
"""A path segment right after one of these is an API key (``https://mainnet.infura.io/v3/<key>``)."""
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_\-.~=+]+$")


def _name_is_secret(name: str) -> bool:
    words = {w for w in re.split(r"[_\-.\s]+", name.lower()) if w}
    if words & _NOT_SECRET_WORDS:
        return False
    return bool(words & _SECRET_WORDS) or "apikey" in name.lower().replace("_", "").replace("-", "")


def looks_like_key(segment: str) -> bool:
    """An opaque token rather than a word: 16 or more URL-safe characters with both digits and letters
    (Infura and Alchemy keys, QuickNode tokens, UUIDs, 64-hex Ankr keys), or a long hex run."""
    if len(segment) < 16 or not _KEY_CHARS.fullmatch(segment):
        return False
    has_digit = any(c.isdigit() for c in segment)
    has_alpha = any(c.isalpha() for c in segment)
    return has_digit and has_alpha or bool(re.fullmatch(r"[0-9a-fA-F]{24,}", segment))


def url_secrets(url: str, *, usernames: bool = True) -> set[str]:
    """The secret values in one URL (see the module doc): credentials, query values, key-like path segments.
    ``usernames=False`` (database URLs: ``postgres`` is a user name and a word of every log) keeps the user
    name out, but not the password or the ``user:password`` pair."""
    found: set[str] = set()
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return found
    if not parts.scheme or not parts.netloc:
        return found
    userinfo, _, _ = parts.netloc.rpartition("@")
    if userinfo:
        raw_user, has_password, raw_password = userinfo.partition(":")
        user, password = unquote(raw_user), unquote(raw_password)
        if has_password and password:
            found |= {password, raw_password, userinfo}
            for pair in {f"{user}:{password}", f"{raw_user}:{raw_password}"}:
                found.add(base64.b64encode(pair.encode()).decode())
        alone = not (has_password and password)
        if usernames and user and (looks_like_key(user) or len(user) >= 12 or (alone and len(user) >= 8)):
            found |= {user, raw_user}
            found.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if _name_is_secret(name) or len(value) >= MIN_QUERY_VALUE_CHARS or looks_like_key(value):
            found.add(value)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    for i, segment in enumerate(segments):
        after_marker = i > 0 and segments[i - 1].lower() in _KEY_MARKERS and len(segment) >= 8
        if after_marker or looks_like_key(segment):
            found.add(segment)
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


def _walk(value: Any, name: str, found: set[str]) -> None:
    """Collect secrets from a settings value; ``name`` is the field (or mapping key) it is under."""
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, SecretBytes):
        found.add(value.get_secret_value().decode(errors="replace"))
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            _walk(getattr(value, field, None), field, found)
    elif isinstance(value, Mapping):
        headers = "header" in name.lower()
        for key, item in value.items():
            if headers and isinstance(item, str):
                found.add(item)
                scheme, _, credential = item.partition(" ")
                if credential and scheme.lower() in ("bearer", "basic", "token"):
                    found.add(credential.strip())
            else:
                _walk(item, str(key), found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, name, found)
    elif isinstance(value, str):
        if "://" in value:
            database = "database" in name.lower() or "db" in re.split(r"[_\-.]", name.lower())
            found |= url_secrets(value, usernames=not database)
        elif _name_is_secret(name):
            found.add(value)


def _read_secret_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        if not path.is_file() or path.stat().st_size > MAX_SECRET_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text or None


def secrets_of(settings: BaseModel) -> set[str]:
    """Every secret value configured in ``settings`` (a :class:`~recovery.settings.Settings`, or any model)."""
    found: set[str] = set()
    _walk(settings, "", found)
    for field in ("seed_file", "attestation_key_file"):
        content = _read_secret_file(getattr(settings, field, None))
        if content:
            found.add(content)
            found.add(" ".join(content.split()))  # a mnemonic as the signer normalises it
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


def _forms(secret: str) -> Iterator[str]:
    """The ways a value may appear in text: as is, URL-encoded (either hex case), URL-decoded, JSON-escaped."""
    yield secret
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        yield encoded
        yield re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
    yield unquote(secret)
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]


class Redactor:
    """Replaces known secret values in text with ``***``. Holds the values, never shows them (``repr``
    gives their number only). An empty redactor returns text unchanged and is falsy."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS)
        forms = {f for s in self._secrets for f in _forms(s) if len(f) >= MIN_SECRET_CHARS}
        # Longest first, so that a secret containing another is replaced whole.
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    @classmethod
    def from_settings(cls, settings: BaseModel, *, extra: Iterable[str] = ()) -> Redactor:
        return cls(secrets_of(settings) | set(extra))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def merged(self, other: Redactor) -> Redactor:
        """A redactor for the secrets of both."""
        return Redactor(self._secrets | other._secrets)

    def redact(self, text: str) -> str:
        """``text`` with every known secret (in any of its encodings) replaced by ``***``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def leaks(self, text: str) -> bool:
        """Whether ``text`` contains a known secret."""
        return self._pattern is not None and bool(text) and self._pattern.search(text) is not None

    def redact_value(self, value: Any) -> Any:
        """A JSON-like value (str, numbers, lists, dicts) with its strings redacted; any other object is kept
        when its ``repr`` holds no secret, else replaced by its redacted ``str``."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if type(value) in (list, tuple):  # exact types (a NamedTuple is rebuilt differently): others below
            return type(value)(self.redact_value(v) for v in value)
        if type(value) is dict:
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        try:
            shown = repr(value)
        except Exception:
            return REDACTED
        return self.redact(str(value)) if self.leaks(shown) or self.leaks(str(value)) else value


# --- logging --------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception text and stack before a handler formats it.

    Installed on *handlers* (a filter on a logger does not see records propagated from its children).
    String arguments are redacted in place, so formatters that read ``record.args`` (uvicorn's access log)
    keep working; an argument whose ``str``/``repr`` holds a secret is replaced by its redacted text. The
    traceback is formatted here and stored redacted in ``record.exc_text``, which formatters use as is."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        if not redactor:
            return True
        if isinstance(record.msg, str):
            record.msg = redactor.redact(record.msg)
        elif redactor.leaks(str(record.msg)):
            record.msg = redactor.redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(self._arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: self._arg(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            message = None
        if message is not None and redactor.leaks(message):  # a secret split over arguments
            record.msg, record.args = redactor.redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = redactor.redact(text)
        elif record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True

    def _arg(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        try:
            text, shown = str(value), repr(value)
        except Exception:
            return value
        if self.redactor.leaks(text) or self.redactor.leaks(shown):
            return self.redactor.redact(text)
        return value


_filter = RedactingFilter(Redactor())
"""The process's one filter: every :func:`install_log_redaction` adds its secrets to it."""


def _all_handlers() -> Iterator[logging.Handler]:
    yield from logging.getLogger().handlers
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers
    if logging.lastResort is not None:
        yield logging.lastResort


def install_log_redaction(redactor: Redactor) -> RedactingFilter:
    """Redact ``redactor``'s secrets on every handler of the process: the root logger's, those of other
    loggers (uvicorn's) and ``logging.lastResort`` (where records go when no handler is configured). Call it
    after logging is configured (handlers added later are not covered); calling it again adds secrets."""
    _filter.redactor = _filter.redactor.merged(redactor)
    for handler in _all_handlers():
        if _filter not in handler.filters:
            handler.addFilter(_filter)
    return _filter


def remove_log_redaction() -> None:
    """Take the filter off every handler and forget its secrets (for tests)."""
    for handler in _all_handlers():
        handler.removeFilter(_filter)
    _filter.redactor = Redactor()


def install_excepthook(redactor: Redactor) -> None:
    """Print an uncaught exception's traceback redacted (Python prints it to stderr, i.e. the process's log)."""
    if not redactor:
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        text = "".join(traceback.format_exception(kind, exc, tb))
        sys.stderr.write(redactor.redact(text))
        sys.stderr.flush()

    sys.excepthook = hook
