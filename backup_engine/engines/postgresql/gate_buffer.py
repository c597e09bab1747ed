"""The bytes of an upload between the stream and the splitter.

Blocks are read on demand into one bytearray; what has been consumed is dropped once it is
most of the buffer (amortised O(1) per byte); line numbers are counted forward from a mark
with bytes.count, so finding the line of a statement costs the distance since the last one.
"""

from __future__ import annotations

from typing import BinaryIO

from pglast import parser
from pglast.parser import ParseError

from backup_engine import errors

BLOCK_SIZE = 1 << 20
HEAD_BYTES = 1 << 16  # how far to look for the first token of a refused statement
SANITIZE = bytes(range(128)) + b"q" * 128  # non-ASCII bytes lex like letters; a `q` starts no special literal


def refused(line: int, what: str) -> errors.UploadRefused:
    """The refusal for an upload that cannot be split at `line`."""
    return errors.UploadRefused.at(line, what)


class UploadBuffer:
    """The upload's bytes between the stream and the splitter: blocks read on demand, consumed
    bytes dropped, line numbers counted forward, NUL bytes refused on sight."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.buf = bytearray()
        self.pos = 0            # next unconsumed byte
        self.eof = False
        self.line_no, self.line_mark = 1, 0  # line number at buffer index line_mark
        self.prev_byte = b"\n"  # the byte before buf[0], for "at the start of a line"
        self.bytes_read = 0
        self.restrict_lines = 0
        self.batch_resume = 0   # no batch before this buffer index (a failed try covered it)

    # --- reading ----------------------------------------------------------------------------------------
    def read_block(self) -> bool:
        """Append one block from the stream; False at its end. NUL bytes are refused on sight."""
        if self.eof:
            return False
        block = self.stream.read(BLOCK_SIZE)
        if not block:
            self.eof = True
            return False
        nul = block.find(b"\x00")
        if nul >= 0:
            raise refused(self.line_at(len(self.buf) + nul, extend=block), "a NUL byte (not SQL text)")
        self.buf += block
        self.bytes_read += len(block)
        return True

    def compact_to(self, keep: int) -> int:
        """Drop the bytes before `keep` once they are most of the buffer (amortised O(1) per byte);
        returns by how much buffer indices moved down."""
        if keep <= BLOCK_SIZE or keep * 2 <= len(self.buf):
            return 0
        self.line_at(keep)
        self.prev_byte = bytes(self.buf[keep - 1:keep])
        del self.buf[:keep]
        self.line_mark -= keep
        self.batch_resume = max(0, self.batch_resume - keep)
        self.pos -= keep
        return keep

    def line_at(self, index: int, extend: bytes = b"") -> int:
        """1-based line of buffer index `index` (moving forward is O(distance))."""
        if extend:
            return self.line_no + self.buf.count(b"\n", self.line_mark) + extend.count(b"\n", 0, index - len(self.buf))
        if index >= self.line_mark:
            self.line_no += self.buf.count(b"\n", self.line_mark, index)
        else:
            self.line_no -= self.buf.count(b"\n", index, self.line_mark)
        self.line_mark = index
        return self.line_no

    def take(self, end: int) -> bytes:
        """A copy of buf[pos:end] (one copy, not the two of bytes(bytearray slice))."""
        with memoryview(self.buf) as view:
            return view[self.pos:end].tobytes()

    def text(self, start: int, end: int) -> str:
        """buf[start:end] decoded straight from the buffer (no intermediate bytes copy)."""
        with memoryview(self.buf) as view, view[start:end] as part:
            return str(part, "utf-8")

    def find(self, needle: bytes, low: int, high: int) -> int:
        """Index of `needle` in buf[low:high] (reading as needed), or -1."""
        while True:
            found = self.buf.find(needle, low, high)
            if found >= 0 or len(self.buf) >= high:
                return found
            low = max(low, len(self.buf) - len(needle) + 1)  # a short read must not make this quadratic
            if not self.read_block():
                return -1

    def fill(self, high: int) -> int:
        """Read until the buffer reaches `high` or the stream ends; the end actually reached."""
        while len(self.buf) < high and self.read_block():
            pass
        return min(high, len(self.buf))

    def check_length(self, length: int) -> None:
        if length > self.limit:
            raise self.too_long()

    def too_long(self) -> errors.UploadRefused:
        return refused(self.first_line(), f"a statement longer than {self.limit} bytes (max_statement_bytes)")

    def first_line(self) -> int:
        """Line of the first token after pos (where the open statement starts), found by the scanner
        in the next HEAD_BYTES; else of the first byte that is not blank."""
        head = self.take(self.pos + HEAD_BYTES)
        text = head.translate(SANITIZE).decode("ascii")
        try:
            tokens = parser.scan(text)
        except ParseError as exc:
            tokens = scan_quietly(text[:exc.args[1] or 0])
        for token in tokens:
            if token.name not in ("SQL_COMMENT", "C_COMMENT"):
                return self.line_at(self.pos + token.start)
        return self.line_at(self.pos + len(head) - len(head.lstrip(b" \t\r\n")))


def scan_quietly(text: str) -> list:
    try:
        return parser.scan(text)
    except ParseError:
        return []
