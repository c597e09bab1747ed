"""The data of one `COPY ... FROM stdin` block, as a file for psycopg2's copy_expert.

Data runs from the line after the COPY statement to a line that is exactly `\\.` (text format
escapes a backslash in a value, so a data line is never that). The block is found by searching
whole buffers for "\\n\\\\.", rows are counted with bytes.count, and the data is checked to be
UTF-8 as it passes (an incremental decoder, so a character split across blocks is fine); no
Python work happens per line, and no line needs to fit in memory.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

from backup_engine import errors

if TYPE_CHECKING:
    from backup_engine.engines.postgresql.gate_buffer import UploadBuffer

TERMINATOR_PREFIXES = (b"", b"\\", b"\\.", b"\\.\r")  # a partial last line that may still become `\.`
READ_SIZE = 1 << 20


class CopyData:
    """read(n)/readline() over the data lines, never past the `\\.` line; `copy_rows` when done."""

    def __init__(self, splitter: UploadBuffer, line: int, decoder: codecs.IncrementalDecoder) -> None:
        self.splitter = splitter
        self.line = line
        self.decoder = decoder
        self.data_end = splitter.pos            # [splitter.pos, data_end) is confirmed data
        self.search_from = splitter.pos - 1     # the newline before the first data line
        self.terminator_end: int | None = None  # set once the `\.` line is found
        self.copy_rows = 0
        self.done = False
        self.confirm()

    # --- file interface ---------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_SIZE), b""))
        splitter = self.splitter
        while splitter.pos >= self.data_end:
            if self.finish():
                return b""
            self.more()
        return self.take(min(self.data_end, splitter.pos + size))

    def readline(self, size: int | None = -1) -> bytes:
        splitter = self.splitter
        scanned = splitter.pos  # a long line is searched once over, not once per block
        while True:
            newline = splitter.buf.find(b"\n", scanned, self.data_end)
            limit = splitter.pos + size if size is not None and size >= 0 else None
            if newline >= 0 or (splitter.pos < self.data_end and self.terminator_end is not None) or (
                    limit is not None and limit <= self.data_end):
                end = newline + 1 if newline >= 0 else self.data_end
                return self.take(end if limit is None else min(end, limit))
            if self.finish():
                return b""
            scanned = max(splitter.pos, self.data_end) - self.more()

    def take(self, end: int) -> bytes:
        """The data up to `end`, consumed (one copy)."""
        splitter = self.splitter
        with memoryview(splitter.buf) as view:
            chunk = view[splitter.pos:end].tobytes()
        splitter.pos = end
        return chunk

    def drain(self) -> None:
        """Skip what the caller did not read (still counted and checked), up to the `\\.` line."""
        while not self.finish():
            self.splitter.pos = self.data_end
            if not self.finish():
                self.more()

    # --- finding the end --------------------------------------------------------------------------------
    def finish(self) -> bool:
        """True once every data byte is read; then the position moves past the `\\.` line."""
        if self.done:
            return True
        if self.terminator_end is not None and self.splitter.pos >= self.data_end:
            self.splitter.pos = self.terminator_end
            self.done = True
        return self.done

    def more(self) -> int:
        """Read another block (dropping consumed bytes first) and confirm what it holds; returns by
        how much buffer indices moved down."""
        splitter = self.splitter
        keep = min(splitter.pos, self.search_from)
        shift = splitter.compact_to(keep)
        self.data_end -= shift
        self.search_from -= shift
        if splitter.read_block():
            self.confirm()
            return shift
        tail = bytes(splitter.buf[self.data_end:])
        if tail in (b"\\.", b"\\.\r") and splitter.buf[self.data_end - 1:self.data_end] == b"\n":
            self.terminator_end = len(splitter.buf)  # `\.` as the very last line, without a newline
        else:
            self.refuse(len(splitter.buf), "the upload ends inside COPY data (no \\. line)")
        self.check_text(b"", final=True)
        return shift

    def confirm(self) -> None:
        """Extend the confirmed data as far as the buffer allows, stopping at the `\\.` line."""
        buf = self.splitter.buf
        while self.terminator_end is None:
            found = buf.find(b"\n\\.", self.search_from)
            if found < 0:
                newline = buf.rfind(b"\n", self.search_from)
                held = newline >= 0 and bytes(buf[newline + 1:]) in TERMINATOR_PREFIXES
                self.accept(newline + 1 if held else len(buf))
                self.search_from = max(self.search_from, self.data_end - 1)
                return
            start = found + 1
            after = bytes(buf[start + 2:start + 4])
            if after[:1] == b"\n" or after == b"\r\n":
                self.accept(start)
                self.terminator_end = start + 2 + (1 if after[:1] == b"\n" else 2)
            elif after in (b"", b"\r"):
                self.accept(start)      # the data before is certain; the line may still be `\.`
                self.search_from = found
                return
            else:
                self.search_from = start

    def accept(self, end: int) -> None:
        """Bytes up to `end` are data: count their rows and check their encoding."""
        if end <= self.data_end:
            return
        chunk = self.splitter.buf[self.data_end:end]
        self.copy_rows += chunk.count(b"\n")
        self.check_text(chunk)
        self.data_end = end

    def check_text(self, chunk: bytes | bytearray, final: bool = False) -> None:
        if chunk.isascii() and not final and not self.decoder.getstate()[0]:
            return
        try:
            self.decoder.decode(bytes(chunk), final)
        except UnicodeDecodeError as exc:
            self.refuse(self.data_end + max(exc.start, 0), "COPY data that is not valid UTF-8")

    def refuse(self, index: int, what: str) -> None:
        index = min(index, len(self.splitter.buf))
        raise errors.UploadRefused.at(self.splitter.line_at(index), what)
