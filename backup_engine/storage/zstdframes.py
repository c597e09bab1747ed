"""Where zstd frames end, from their headers alone: a truncation check for streamed reads.

`zstandard`'s streaming reader bounds its output (a small bomb cannot fill memory) but returns
a clean end-of-file when the input stops in the middle of a frame, and its `decompressobj`
reports frame ends but hands back the whole output of any input at once. So reads go through the
streaming reader, and this tracker follows the compressed bytes beside it, counting frame and
block headers (RFC 8878 section 3.1) without decompressing anything: at end of input it says
whether the last frame was complete.
"""

from __future__ import annotations

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50
DICT_ID_SIZES = (0, 1, 2, 4)
CONTENT_SIZE_SIZES = (0, 2, 4, 8)
RLE_BLOCK = 1
RESERVED_BLOCK = 3


class FrameError(ValueError):
    """The bytes are not a sequence of zstd frames."""


class FrameTracker:
    """Fed the compressed bytes in order; `complete` is true between frames."""

    def __init__(self) -> None:
        self._pending = bytearray()  # a header being collected
        self._need = 4  # bytes of header wanted next, or 0 while skipping
        self._skip = 0  # bytes of block content (or skippable frame) still to pass over
        self._state = "magic"
        self._checksum = False
        self._last_block = False

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._pending and self._skip == 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                if not self._skip:
                    self._after_skip()
                continue
            take = min(self._need - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) == self._need:
                header, self._pending = bytes(self._pending), bytearray()
                self._on_header(header)

    def _on_header(self, header: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(header, "little")
            if magic == ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
                self._state, self._need = "skippable", 4
            else:
                raise FrameError("not a zstd frame")
        elif self._state == "skippable":
            self._state = "skipping"
            self._skip_or_finish(int.from_bytes(header, "little"))
        elif self._state == "descriptor":
            descriptor = header[0]
            if descriptor & 0x08:
                raise FrameError("reserved bit set in a zstd frame header")
            single_segment = bool(descriptor & 0x20)
            content_size = CONTENT_SIZE_SIZES[descriptor >> 6] or (1 if single_segment else 0)
            self._checksum = bool(descriptor & 0x04)
            rest = (0 if single_segment else 1) + DICT_ID_SIZES[descriptor & 0x03] + content_size
            self._state = "frame-header"
            if rest:
                self._need = rest
            else:
                self._on_header(b"")
        elif self._state == "frame-header":
            self._state, self._need = "block", 3
        elif self._state == "block":
            value = int.from_bytes(header, "little")
            self._last_block = bool(value & 1)
            kind, size = (value >> 1) & 0x03, value >> 3
            if kind == RESERVED_BLOCK:
                raise FrameError("reserved block type in a zstd frame")
            self._state = "block-body"
            self._skip_or_finish(1 if kind == RLE_BLOCK else size)
        elif self._state == "checksum":
            self._state, self._need = "magic", 4

    def _skip_or_finish(self, size: int) -> None:
        self._skip = size
        if not size:
            self._after_skip()

    def _after_skip(self) -> None:
        if self._state == "skipping":
            self._state, self._need = "magic", 4
        elif self._last_block and self._checksum:
            self._state, self._need = "checksum", 4
        elif self._last_block:
            self._state, self._need = "magic", 4
        else:
            self._state, self._need = "block", 3
