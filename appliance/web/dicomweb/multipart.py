"""multipart/related bodies (RFC 2387, PS3.18 8.6.1.2): written part by part as a stream for
WADO-RS, read whole and checked before anything is stored for STOW-RS.

Each part written carries its own Content-Type with its transfer syntax, and a blank line (CRLF
CRLF) after its headers, which dicomweb-client and cornerstone need. A body to read is checked
entirely first (every delimiter, every part's headers and the closing delimiter): a malformed body
is refused as a whole, so nothing of it is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from appliance.web.dicomweb.accept import MediaRange, parse_media_type

CRLF = b"\r\n"


class MalformedMultipart(Exception):
    """The body is not a well-formed multipart/related body; the message says where."""


class Searchable(Protocol):
    """bytes or an mmap of a spooled body: what the reader needs."""

    def find(self, sub: bytes, start: int = ..., /) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...
    def __len__(self) -> int: ...


def new_boundary() -> str:
    return uuid.uuid4().hex


def content_type(part_type: str, boundary: str) -> str:
    """The response's Content-Type: `multipart/related; type="…"; boundary=…`."""
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def part_header(boundary: str, media_type: str, transfer_syntax_uid: str = "", location: str = "") -> bytes:
    """The delimiter and headers opening one part."""
    value = f"{media_type}; transfer-syntax={transfer_syntax_uid}" if transfer_syntax_uid else media_type
    lines = [f"--{boundary}", f"Content-Type: {value}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def stream(boundary: str, parts: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
    """The body: each (part header, content) pair followed by CRLF, then the closing delimiter.

    Two writes a part: the CRLF ending a part goes with the next part's header (or the closing
    delimiter), and the content as it was read, never copied into a larger buffer (a series of 600
    CT images is 300 MB)."""
    ending = b""
    for header, content in parts:
        yield ending + header
        yield content
        ending = CRLF
    yield ending + f"--{boundary}--\r\n".encode()


@dataclass(frozen=True)
class Part:
    """One part of a body read: its Content-Type and where its content lies in the body."""

    media_type: MediaRange
    start: int
    end: int


def boundary_of(content_type_header: str | None) -> tuple[MediaRange, bytes]:
    """The request's media type and its boundary; MalformedMultipart when it has none."""
    declared = parse_media_type(content_type_header or "")
    boundary = declared.parameters.get("boundary", "")
    if not boundary or len(boundary) > 70:  # RFC 2046 5.1.1
        raise MalformedMultipart("the Content-Type names no usable boundary")
    return declared, boundary.encode("ascii", "replace")


def read_parts(body: Searchable, boundary: bytes, default_type: str) -> list[Part]:
    """Every part of `body`, checked from the first delimiter to the closing one.

    Raises MalformedMultipart when a delimiter, a part's headers or the closing delimiter is wrong.
    """
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    if position < 0 or (position > 0 and body[position - 2 : position] != CRLF):
        raise MalformedMultipart("no opening delimiter")
    position += len(delimiter)
    parts: list[Part] = []
    while True:
        if body[position : position + 2] == b"--":
            break
        line_end = body.find(CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MalformedMultipart(f"bad delimiter line after part {len(parts)}")
        headers_end = line_end if body[line_end + 2 : line_end + 4] == CRLF else body.find(CRLF + CRLF, line_end)
        if headers_end < 0:
            raise MalformedMultipart(f"part {len(parts) + 1} has no end to its headers")
        start = headers_end + 4
        end = body.find(CRLF + delimiter, start)
        if end < 0:
            raise MalformedMultipart(f"part {len(parts) + 1} is not closed by a delimiter")
        media_type = part_media_type(body[line_end + 2 : headers_end], default_type)
        parts.append(Part(media_type, start, end))
        position = end + 2 + len(delimiter)
    if not parts:
        raise MalformedMultipart("the body holds no part")
    return parts


def part_media_type(headers: bytes, default_type: str) -> MediaRange:
    """The Content-Type among a part's headers (the body's `type` when the part has none)."""
    for line in headers.split(CRLF):
        name, _, value = line.decode("latin-1").partition(":")
        if not value and line.strip():
            raise MalformedMultipart("a part header has no colon")
        if name.strip().lower() == "content-type":
            return parse_media_type(value)
    return parse_media_type(default_type)
