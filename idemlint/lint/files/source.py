"""A Python file's bytes as text, the way Python itself reads them (PEP 263).

A file may declare its encoding (``# -*- coding: latin-1 -*-``) or start with a UTF-8
byte-order mark. Decoding every file as UTF-8 reported such a file as "does not parse",
although Python runs it; every place that turns a file's bytes into text (the summariser,
the pre-check, the flake8 plugin's unsaved-buffer check) goes through here instead.
"""

from __future__ import annotations

import codecs
import io
import tokenize

_BOM = codecs.BOM_UTF8


def _may_declare(content: bytes) -> bool:
    """Whether the first two lines could hold a coding declaration or the file starts with
    a byte-order mark (otherwise it is UTF-8, and ``tokenize`` need not look)."""
    if content.startswith(_BOM):
        return True
    end = content.find(b"\n")
    if end != -1:
        end = content.find(b"\n", end + 1)
    head = content if end == -1 else content[:end]
    return b"coding" in head


def encoding_of(content: bytes) -> str:
    """The encoding Python reads ``content`` with; raises :class:`SyntaxError` for an
    unknown or contradictory declaration, as Python does."""
    if not _may_declare(content):
        return "utf-8"
    encoding, _ = tokenize.detect_encoding(io.BytesIO(content).readline)
    return encoding


def decode_source(content: bytes) -> str:
    """``content`` as text; raises :class:`UnicodeDecodeError` or :class:`SyntaxError`
    (see :func:`decode_error`)."""
    encoding = encoding_of(content)
    if encoding == "utf-8":
        return content.decode("utf-8")
    try:
        return content.decode(encoding)
    except LookupError as exc:  # pragma: no cover - detect_encoding checks the codec
        raise SyntaxError(f"unknown encoding: {encoding}") from exc


def decoded_or_none(content: bytes) -> str | None:
    """``content`` as text, or None when it cannot be decoded."""
    try:
        return decode_source(content)
    except (UnicodeDecodeError, SyntaxError):
        return None


def decode_error(content: bytes) -> tuple[str | None, str]:
    """``(text, "")``, or ``(None, why)`` naming what stops the file being read as text."""
    try:
        return decode_source(content), ""
    except UnicodeDecodeError as exc:
        return None, f"cannot decode file as {exc.encoding}: {exc.reason} at byte {exc.start}"
    except SyntaxError as exc:
        return None, f"cannot decode file: {exc.msg}"


def encode_source(text: str) -> bytes:
    """Text given for a file (an editor's buffer) as the bytes it would have on disk: in
    the encoding it declares, else UTF-8."""
    raw = text.encode("utf-8", "surrogatepass")
    try:
        encoding = encoding_of(raw)
    except SyntaxError:
        return raw
    if encoding in ("utf-8", "utf-8-sig"):
        return raw
    try:
        return text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return raw
