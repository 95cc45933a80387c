"""Secrets out of URLs before a person sees them: one implementation for every URL we print.

Used by the store (database URLs), the CLI and the remote judge (HTTP URLs).
"""

from __future__ import annotations

import re

import sqlalchemy as sa

__all__ = ["mask_url"]

_SECRET_KEY = re.compile(r"password|secret|token|key", re.IGNORECASE)
_MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with its password and every secret query value replaced by ``***``.

    A query key counts as secret when it contains ``password``, ``secret``, ``token`` or
    ``key`` (any case). Text that is not a URL is masked the same way, as far as it can be
    recognised, so a mistyped URL is never printed with its password.

    Example:
        >>> mask_url("postgresql://alice:s3cret@db.example/hpo")
        'postgresql://alice:***@db.example/hpo'
        >>> mask_url("postgresql://alice@db/hpo?sslpassword=x&api_token=y&sslmode=require")
        'postgresql://alice@db/hpo?api_token=***&sslmode=require&sslpassword=***'
        >>> mask_url("sqlite:///hpo.db")
        'sqlite:///hpo.db'
        >>> mask_url("not a url ://bob:pw@host?password=pw")
        'not a url ://bob:***@host?password=***'
    """
    try:
        parsed = sa.make_url(url)
    except Exception:  # not a URL at all: mask what looks like credentials
        masked = re.sub(r"(//[^/:@\s]*:)[^@/\s]*@", rf"\g<1>{_MASK}@", url)
        return re.sub(
            r"([?&][^=&\s]*(?:password|secret|token|key)[^=&\s]*=)[^&\s]*",
            rf"\g<1>{_MASK}",
            masked,
            flags=re.IGNORECASE,
        )
    placeholder = "PANDALMMASKEDVALUE"  # rendered verbatim, unlike "***" (percent-escaped)
    query = {
        key: (placeholder if _SECRET_KEY.search(key) else value)
        for key, value in parsed.query.items()
    }
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace(placeholder, _MASK)
