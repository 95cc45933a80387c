"""Secrets out of URLs before a person sees them: one implementation for every URL we print.

Used by the store (database URLs), the CLI (URLs and error messages) and the remote judge
(HTTP URLs). Masking works on the text, not on a parsed URL, so it also finds URLs inside
an error message and URLs no parser accepts (``alice:hunter2@secret@host``, whose password
holds an ``@``).
"""

from __future__ import annotations

import re

__all__ = ["mask_secrets", "mask_url"]

_MASK = "***"

# "//user:" opens the user info of a URL; its password runs to the last "@" before the
# query (a password may hold "@" or "/"), and never past a blank or a quote.
_USER_INFO = re.compile(r"//[^/:@\s'\"?#]*:")
_TOKEN_END = re.compile(r"[\s'\"]")

# A query or DSN value whose key names a secret (password, sslpassword, passwd, api_key,
# auth_token, client_secret, ...), after "?", "&", ";", a blank or the start of the text.
_SECRET_VALUE = re.compile(
    r"((?:^|[?&;\s])[^=&;\s'\"?]*(?:pass|secret|token|key)[^=&;\s'\"?]*=)[^&;\s'\"]*",
    re.IGNORECASE,
)


def _mask_passwords(text: str) -> str:
    pieces: list[str] = []
    position = 0
    for match in _USER_INFO.finditer(text):
        if match.start() < position:  # inside a password already masked
            continue
        start = match.end()
        end = _TOKEN_END.search(text, start)
        token = text[start : end.start() if end else len(text)]
        at = token.split("?", 1)[0].rfind("@")
        if at < 0:  # "//host:5432/db": a port, not a password
            continue
        pieces += [text[position:start], _MASK]
        position = start + at
    return "".join(pieces) + text[position:]


def mask_secrets(text: str) -> str:
    """``text`` with every password of a URL in it and every secret query value replaced by
    ``***``: for error messages that may quote a URL.

    A query key counts as secret when it contains ``pass``, ``secret``, ``token`` or
    ``key`` (any case).

    Example:
        >>> mask_secrets("could not connect to 'postgresql://bob:pw@db:5432/hpo': refused")
        "could not connect to 'postgresql://bob:***@db:5432/hpo': refused"
        >>> mask_secrets("dsn host=db user=bob password=pw")
        'dsn host=db user=bob password=***'
    """
    return _SECRET_VALUE.sub(rf"\g<1>{_MASK}", _mask_passwords(text))


def mask_url(url: str) -> str:
    """``url`` with its password and every secret query value replaced by ``***``.

    A query key counts as secret when it contains ``pass``, ``secret``, ``token`` or
    ``key`` (any case). Text that is not a URL is masked the same way, so a mistyped URL
    is never printed with its password.

    Example:
        >>> mask_url("postgresql://alice:s3cret@db.example/hpo")
        'postgresql://alice:***@db.example/hpo'
        >>> mask_url("postgresql://alice:hunter2@secret@host/db")
        'postgresql://alice:***@host/db'
        >>> mask_url("postgresql://alice@db/hpo?sslpassword=x&api_token=y&sslmode=require")
        'postgresql://alice@db/hpo?sslpassword=***&api_token=***&sslmode=require'
        >>> mask_url("sqlite:///hpo.db")
        'sqlite:///hpo.db'
        >>> mask_url("not a url ://bob:pw@host?password=pw")
        'not a url ://bob:***@host?password=***'
    """
    return mask_secrets(url)
