"""Splitting an upload into statements as it streams, with PostgreSQL's own lexer and parser.

The server's grammar decides where a statement ends; we only choose where to ask. Text is
read in blocks into one buffer. For the next statement we parse up to the first `;` byte
(almost always its end, one parse per statement). When that `;` lies inside a literal or a
comment, PostgreSQL's scanner (pglast.split, on an ASCII stand-in of the text so offsets are
bytes and never quadratic) finds the first `;` token, looking at windows that double in size,
so a statement is scanned O(1) times over. Only a BEGIN ATOMIC body has `;` tokens inside a
statement; for it the scanner's tokens are followed through BEGIN ATOMIC ... END. The
statement is then parsed alone, and what the caller sends is exactly the text we parsed.

`COPY ... FROM stdin` data is never parsed: it runs from the next line to a line `\\.`,
found by searching whole blocks; its rows are counted with bytes.count.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pglast import parser
from pglast.parser import ParseError

from backup_engine import errors
from backup_engine.engines.postgresql.gate_buffer import SANITIZE, UploadBuffer, refused, scan_quietly
from backup_engine.engines.postgresql.gate_copy import CopyData
from backup_engine.engines.postgresql.gate_tree import TreeError, load_json, parse, unwrap

END_OF_INPUT = "syntax error at end of input"
BLANK = b" \t\r"
RESTRICT_COMMANDS = ("\\restrict", "\\unrestrict")
MAX_RESTRICT_LINES = 2
MESSAGE_CHARS = 160
BATCH_BYTES = 1 << 16  # how much text one parse may take when statements end cleanly
FAST_TRIES = 8  # parses up to successive `;` bytes before asking the scanner where the statement ends
SKIPPED = object()  # a psql \restrict line was dropped: look again


@dataclass
class Piece:
    """One statement as the upload holds it; `copy_data` is set for COPY ... FROM stdin."""

    line: int
    sql: str
    stmt: dict[str, Any]
    copy_data: CopyData | None = None


class Splitter(UploadBuffer):
    """Statements of one upload stream, in order (iterate `pieces()` once)."""

    # --- statements -------------------------------------------------------------------------------------
    def pieces(self) -> Iterator[Piece]:
        while True:
            self.compact_to(self.pos)
            found = self.next_statements()
            if found is None:
                return
            end, statements = found
            base = self.pos
            for index, statement in enumerate(statements):
                statements[index] = {}  # each tree is freed once checked
                start = statement.get("stmt_location", 0)
                length = statement.get("stmt_len") or end - base - start
                piece = Piece(self.line_at(base + start), self.text(base + start, base + start + length),
                              statement["stmt"])
                del statement
                self.pos = base + start + length + 1
                if _copy_from_stdin(piece.stmt):  # what a batch parsed after it was data: dropped
                    piece.copy_data = self.start_copy(piece.line)
                    yield piece
                    piece.copy_data.drain()
                    break
                yield piece

    def next_statements(self) -> tuple[int, list[dict[str, Any]]] | None:
        """Where the next statement(s) end (buffer index) and their parse; None at the end."""
        while True:
            found = self.next_once()
            if found is not SKIPPED:
                return found

    def next_once(self) -> Any:
        batch = self.batch()
        if batch is not None:
            return batch
        semicolon = self.pos - 1
        for _ in range(FAST_TRIES):  # pg_dump's "-- Name: x; Type: TABLE; ..." comments hold `;` too
            semicolon = self.find(b";", semicolon + 1, self.pos + self.limit + 1)
            if semicolon < 0:
                return self.final_statements()
            outcome, result = self.attempt(semicolon + 1)
            if outcome != "incomplete":
                return (semicolon + 1, result) if outcome == "complete" else SKIPPED
        end = self.first_terminator(2 * (semicolon + 1 - self.pos))
        if end is None:
            return self.final_statements()
        outcome, result = self.attempt(end + 1)
        if outcome == "incomplete":  # a `;` inside BEGIN ATOMIC ... END
            end = self.atomic_end(2 * (end + 1 - self.pos))
            if end is None:
                return self.final_statements()
            outcome, result = self.attempt(end + 1, final=True)
        if outcome == "incomplete":
            self.refuse_incomplete(end + 1, result)
        return (end + 1, result) if outcome == "complete" else SKIPPED

    def batch(self) -> tuple[int, list[dict[str, Any]]] | None:
        """Many statements in one parse, up to the last `;` in the next BATCH_BYTES: most
        of a dump goes this way. Anything unusual (a literal open at the cut, COPY data the parser
        cannot read, a psql line, bad UTF-8) returns None, or the part before it, and the careful
        path takes over. What follows a COPY statement in a batch is discarded by pieces()."""
        if self.pos < self.batch_resume:
            return None  # the last try covered this text: each byte is tried in one batch at most
        high = self.fill(self.pos + BATCH_BYTES)
        self.batch_resume = high
        end = self.buf.rfind(b";", self.pos, high)
        for _ in range(2):
            if end < 0:
                return None
            try:
                decoded = self.text(self.pos, end + 1)
                statements = parse(decoded)
            except (UnicodeDecodeError, TreeError):
                return None
            except ParseError as exc:  # cut before the error (or the literal left open) and try once more
                where = exc.args[1]
                if where is None:
                    return None
                end = self.buf.rfind(b";", self.pos, self.pos + len(decoded[:where].encode("utf-8")))
                continue
            if not statements or not statements[-1].get("stmt_len") or any(
                    statement.get("stmt_len", 0) > self.limit for statement in statements):
                return None
            self.batch_resume = 0
            return end + 1, statements
        return None

    def final_statements(self) -> Any:
        """What is left when no `;` follows: comments, a last statement without `;`, or a refusal."""
        end = self.fill(self.pos + self.limit + 2)
        if not self.eof or end - self.pos > self.limit:
            raise self.too_long()
        outcome, result = self.attempt(end, final=True)
        if outcome == "skipped":
            return SKIPPED
        if outcome != "complete":
            self.refuse_incomplete(end, result)
        if not result:
            self.pos = end
            return None
        return end, result

    def attempt(self, end: int, final: bool = False) -> tuple[str, Any]:
        """Parse buf[pos:end]: ("complete", statements) when it ends a statement, ("incomplete", error)
        when more text could finish it, ("skipped", None) after a psql \\restrict line; else refuse."""
        try:
            decoded = self.text(self.pos, end)
        except UnicodeDecodeError as exc:
            raise refused(self.line_at(self.pos + exc.start), "text that is not valid UTF-8") from exc
        try:
            tree = parser.parse_sql_json(decoded)
        except ParseError as exc:
            message = str(exc.args[0])
            if message.startswith("unterminated") or message == END_OF_INPUT:
                return "incomplete", exc
            if self.restrict_line(decoded, exc.args[1]):
                return "skipped", None
            raise self.parse_refusal(decoded, exc) from exc
        del decoded  # a huge statement is held as few times as possible
        try:
            statements = load_json(tree).get("stmts", [])
        except TreeError as exc:
            raise refused(self.first_line(), f"a statement {exc}") from exc
        del tree
        if statements and not statements[-1].get("stmt_len") and not final:
            return "incomplete", None  # the last `;` was in a comment
        if not statements and not final:
            return "incomplete", None
        return "complete", statements

    def parse_refusal(self, decoded: str, exc: ParseError) -> errors.UploadRefused:
        where = exc.args[1] if len(exc.args) > 1 and exc.args[1] is not None else None
        if where is None:
            return refused(self.first_line(), " ".join(str(exc.args[0]).split())[:MESSAGE_CHARS])
        line = self.line_at(self.pos + len(decoded[:where].encode("utf-8")))
        if decoded[where:where + 1] == "\\":
            command = decoded[where:].split(maxsplit=1)[0][:30]
            return refused(line, f"psql meta-command {command}")
        return refused(line, " ".join(str(exc.args[0]).split())[:MESSAGE_CHARS])

    def refuse_incomplete(self, end: int, error: Any) -> None:
        if self.eof and end >= len(self.buf):
            raise refused(self.first_line(), "the upload ends inside a statement, string or comment"
                                                       " (truncated?)")
        if isinstance(error, ParseError):
            raise self.parse_refusal(self.text(self.pos, end), error)
        raise refused(self.line_at(self.pos), "a statement that does not end")

    def restrict_line(self, decoded: str, where: int | None) -> bool:
        """A `\\restrict KEY` / `\\unrestrict KEY` line (pg_dump 17.6+) between statements: drop it.
        pg_dump writes one of each; a third is refused (and each costs a parse of what follows)."""
        if where is None or decoded[where:where + 1] != "\\" or self.restrict_lines >= MAX_RESTRICT_LINES:
            return False
        newline = decoded.find("\n", where)
        words = decoded[where:newline if newline >= 0 else len(decoded)].split()
        before = decoded[:where]
        line_start = before.rfind("\n") + 1
        if not (len(words) == 2 and words[0] in RESTRICT_COMMANDS and words[1].isascii() and words[1].isalnum()
                and not before[line_start:].strip(" \t") and (line_start > 0 or self.at_line_start())):
            return False
        try:
            if parse(before):
                return False  # a statement is open before it: not a boundary
        except (ParseError, TreeError):
            return False
        self.line_at(self.pos)
        self.pos += len(decoded[:newline + 1 if newline >= 0 else len(decoded)].encode("utf-8"))
        self.restrict_lines += 1
        return True

    def at_line_start(self) -> bool:
        return (self.buf[self.pos - 1:self.pos] if self.pos else self.prev_byte) == b"\n"

    # --- finding the end of a statement with the scanner --------------------------------------------------
    def window(self, want: int) -> tuple[str, bool]:
        """An ASCII stand-in of buf[pos:...]: to the first `;` at or past pos+want, at most 2*want;
        and whether it reaches the end of the stream."""
        want = min(want, self.limit + 1)
        high = self.pos + min(2 * want, self.limit + 2)
        semicolon = self.find(b";", self.pos + want, high)
        end = semicolon + 1 if semicolon >= 0 else self.fill(high)
        return self.take(end).translate(SANITIZE).decode("ascii"), self.eof and end >= len(self.buf)

    def first_terminator(self, want: int) -> int | None:
        """Buffer index of the first `;` token that ends a statement (by the scanner), or None at the end."""
        while True:
            text, at_end = self.window(want)
            cut, lexer_error = len(text), None
            try:
                slices = parser.split(text, with_parser=False, only_slices=True)
            except ParseError as exc:
                cut = exc.args[1] if exc.args[1] is not None else len(text)
                lexer_error = None if str(exc.args[0]).startswith("unterminated") else exc
                slices = _split_quietly(text[:cut])
            if slices:
                stop = slices[0].stop
                stop += len(text[stop:cut]) - len(text[stop:cut].lstrip())
                if text[stop:stop + 1] == ";":
                    return self.pos + stop
            if lexer_error is not None:
                raise self.parse_refusal(text, lexer_error)
            if at_end:
                return None
            self.check_length(len(text))
            want = 2 * len(text)

    def atomic_end(self, want: int) -> int | None:
        """Buffer index of the `;` after BEGIN ATOMIC ... END, following the scanner's tokens."""
        while True:
            text, at_end = self.window(want)
            lexer_error = None
            try:
                tokens = parser.scan(text)
            except ParseError as exc:
                lexer_error = None if str(exc.args[0]).startswith("unterminated") else exc
                tokens = scan_quietly(text[:exc.args[1] or 0])
            depth = parens = 0
            previous = ""
            for token in tokens:
                name = token.name
                if name in ("SQL_COMMENT", "C_COMMENT"):
                    continue
                if name == "ASCII_40":
                    parens += 1
                elif name == "ASCII_41":
                    parens -= 1
                elif name == "ATOMIC" and previous == "BEGIN_P" or name == "CASE" and depth:
                    depth += 1
                elif name == "END_P" and depth:
                    depth -= 1
                elif name == "ASCII_59" and parens == 0 and depth == 0:
                    return self.pos + token.start
                previous = name
            if lexer_error is not None:
                raise self.parse_refusal(text, lexer_error)
            if at_end:
                return None
            self.check_length(len(text))
            want = 2 * len(text)

    # --- COPY data --------------------------------------------------------------------------------------
    def start_copy(self, line: int) -> CopyData:
        """After COPY ... FROM stdin; only blanks may follow on its line, then the data starts."""
        newline = self.find(b"\n", self.pos, self.pos + self.limit)
        if newline < 0:
            raise refused(line, "COPY ... FROM stdin without data lines after it")
        if self.buf[self.pos:newline].strip(BLANK):
            raise refused(line, "text after COPY ... FROM stdin on its line")
        self.pos = newline + 1
        return CopyData(self, line + 1, codecs.getincrementaldecoder("utf-8")())


def _copy_from_stdin(stmt: dict[str, Any]) -> bool:
    kind, node = unwrap(stmt)
    return kind == "CopyStmt" and bool(node.get("is_from")) and "filename" not in node and not node.get("is_program")


def _split_quietly(text: str) -> tuple[slice, ...]:
    try:
        return parser.split(text, with_parser=False, only_slices=True)
    except ParseError:
        return ()

