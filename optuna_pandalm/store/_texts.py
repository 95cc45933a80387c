"""How texts are hashed and made storable: hashes are of what the judge saw, storage is lenient."""

from __future__ import annotations

import hashlib

__all__ = ["storable", "text_hash"]


def text_hash(text: str) -> str:
    """SHA-256 (hex) of a text, also defined for lone surrogates.

    Example:
        >>> text_hash("")[:12]
        'e3b0c44298fc'
        >>> text_hash("caf\\udce9") == text_hash("caf\\udce9")
        True
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def storable(text: str) -> str:
    """``text`` as every database accepts it: NUL (refused by PostgreSQL) becomes U+FFFD and
    unencodable surrogates become ``?``.

    Example:
        >>> storable("a\\x00b"), storable("caf\\udce9")
        ('a\\ufffdb', 'caf?')
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
