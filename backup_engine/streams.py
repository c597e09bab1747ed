"""Small helpers over binary streams that every layer reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 1 << 20


def lines(stream: BinaryIO, block: int = BLOCK) -> Iterator[bytes]:
    """The stream's lines (each with its newline, the last maybe without), read in large blocks."""
    carry = b""
    while chunk := stream.read(block):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        start = 0
        while start < cut:  # split at \n only: a carriage return inside a value stays in its line
            end = data.index(b"\n", start) + 1
            yield data[start:end]
            start = end
    if carry:
        yield carry
