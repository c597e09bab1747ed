"""Screening untrusted PostgreSQL SQL (uploads) statement by statement, as it streams past.

A small lexer follows what psql and the server would see: string literals (standard and
`E'...'`), quoted identifiers, dollar quotes, line and nested block comments, and the data
lines of `COPY ... FROM stdin`. Outside literals and comments it refuses what must never run
from an upload: psql backslash commands, server-side `COPY ... PROGRAM` or COPY to/from a
server file, transaction control (a `COMMIT` would end the restore's single transaction and
make a half restore permanent), `DO` blocks, `LOAD`, and the server's file-access functions.

It cannot see SQL that a function builds at run time (`EXECUTE`): restoring uploads with a
role that is not a superuser remains the real defence (see README, known limits).
"""

from __future__ import annotations

import re

from backup_engine import errors

_INTERESTING = re.compile(r"""(?<![A-Za-z0-9_$])[Ee]'|['";\\]|--|/\*|\$""")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_STANDARD_STRING_END = re.compile(r"(?:[^']|'')*'")
_ESCAPE_STRING_END = re.compile(r"(?:[^'\\]|\\.|'')*'", re.S)
_IDENTIFIER_END = re.compile(r'(?:[^"]|"")*"')
_COMMENT_TOKEN = re.compile(r"/\*|\*/")
_RESTRICT_LINE = re.compile(rb"^\\(?:un)?restrict\s+\S+\s*$")

_COPY_FROM_STDIN = re.compile(r"^\s*COPY\b.*\bFROM\s+STDIN\b", re.S)
_REFUSED = [
    (re.compile(r"^\s*COPY\b.*\bPROGRAM\b", re.S), "server-side COPY to or from a program"),
    (re.compile(r"^\s*COPY\b.*\b(?:FROM|TO)\s+'", re.S), "server-side COPY to or from a file"),
    # The lexer reads strings the standard way; a file must not switch the server to the other.
    (re.compile(r"\bSTANDARD_CONFORMING_STRINGS\b(?!\s*(?:=|TO)\s*(?:ON|'ON'|TRUE)\s*$)"),
     "changing standard_conforming_strings"),
    (re.compile(r"\bSET_CONFIG\s*\((?!\s*'SEARCH_PATH'\s*,)"), "set_config of anything but search_path"),
    (re.compile(r"^\s*(?:BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)"
                r"\b"), "transaction control"),
    (re.compile(r"^\s*DO\b"), "an anonymous code block (DO)"),
    (re.compile(r"^\s*LOAD\b"), "loading a server library (LOAD)"),
    (re.compile(r"\b(?:LO_IMPORT|LO_EXPORT|PG_READ_FILE|PG_READ_BINARY_FILE|PG_LS_DIR|PG_STAT_FILE|PG_FILE_WRITE)\s*\("),
     "a server file-access function"),
]

NORMAL, STRING, ESCAPE_STRING, IDENTIFIER, DOLLAR, COMMENT = range(6)


class UploadScreen:
    """Feed it an upload line by line; it raises InvalidRequest on the first refused statement
    and counts nothing itself (the caller keeps its own scanner for row counts)."""

    def __init__(self) -> None:
        self.state = NORMAL
        self.line_number = 0
        self.in_copy_data = False
        self._code: list[str] = []
        self._dollar_tag = ""
        self._comment_depth = 0
        self._literal_whole = True

    def feed(self, line: bytes) -> bytes:
        """The line to write out: unchanged, or a comment in place of a psql `\\restrict` line."""
        self.line_number += 1
        if b"\x00" in line:
            self._refuse("binary data")
        if self.in_copy_data:
            self.in_copy_data = line.rstrip(b"\r\n") != b"\\."
            return line
        if self.state == NORMAL and not "".join(self._code).strip() and _RESTRICT_LINE.match(line):
            return b"-- (psql \\restrict line of the uploaded dump removed; the restore sets its own)\n"
        self._lex(line.decode("utf-8", "replace"))
        return line

    def finish(self) -> None:
        if self.in_copy_data:
            raise errors.InvalidRequest(errors.UNSUPPORTED_PG_RESTORE, "the upload ends inside COPY data (truncated?)")
        if self.state != NORMAL:
            raise errors.InvalidRequest(errors.UNSUPPORTED_PG_RESTORE,
                                        "the upload ends inside a string, quoted name or comment (truncated?)")
        self._end_statement()

    def _refuse(self, what: str) -> None:
        raise errors.InvalidRequest(errors.UNSUPPORTED_PG_RESTORE,
                                    f"{what} on line {self.line_number} is not allowed in an upload")

    def _lex(self, text: str) -> None:
        position = 0
        while position < len(text):
            if self.state == NORMAL:
                position = self._normal(text, position)
            elif self.state in (STRING, ESCAPE_STRING, IDENTIFIER):
                ending = {STRING: _STANDARD_STRING_END, ESCAPE_STRING: _ESCAPE_STRING_END,
                          IDENTIFIER: _IDENTIFIER_END}[self.state]
                match = ending.match(text, position)
                if match is None:
                    self._literal_whole = False
                    return  # the literal goes on in the next line
                if self.state == IDENTIFIER:
                    self._code.append('"I"')
                else:  # keep short one-line strings visible to the checks (set_config's setting name)
                    content = text[position:match.end() - 1] if self._literal_whole else "..."
                    self._code.append("'" + (content if len(content) <= 64 else "...").replace(" ", "_") + "'")
                self.state, position = NORMAL, match.end()
            elif self.state == DOLLAR:
                end = text.find(self._dollar_tag, position)
                if end == -1:
                    return
                self._code.append("'S'")
                self.state, position = NORMAL, end + len(self._dollar_tag)
            else:
                position = self._comment(text, position)

    def _normal(self, text: str, position: int) -> int:
        match = _INTERESTING.search(text, position)
        if match is None:
            self._code.append(text[position:])
            return len(text)
        self._code.append(text[position:match.start()])
        token = match.group()
        if token == ";":
            self._end_statement()
        elif token == "'":
            self.state, self._literal_whole = STRING, True
        elif token in ("E'", "e'"):
            self.state, self._literal_whole = ESCAPE_STRING, True
        elif token == '"':
            self.state = IDENTIFIER
        elif token == "--":
            return len(text)
        elif token == "/*":
            self.state, self._comment_depth = COMMENT, 1
        elif token == "\\":
            command = text[match.start():].split(maxsplit=1)[0][:20]
            self._refuse(f"psql meta-command {command!r}")
        else:  # "$": a dollar quote opens, or a positional parameter / part of a name
            tag = _DOLLAR_TAG.match(text, match.start())
            if tag is None:
                self._code.append("$")
                return match.end()
            self.state, self._dollar_tag = DOLLAR, tag.group()
            return tag.end()
        return match.end()

    def _comment(self, text: str, position: int) -> int:
        while self._comment_depth:
            match = _COMMENT_TOKEN.search(text, position)
            if match is None:
                return len(text)
            self._comment_depth += 1 if match.group() == "/*" else -1
            position = match.end()
        self.state = NORMAL
        return position

    def _end_statement(self) -> None:
        statement = " ".join("".join(self._code).split()).upper()
        self._code = []
        if not statement:
            return
        for pattern, what in _REFUSED:
            if pattern.search(statement):
                self._refuse(what)
        if _COPY_FROM_STDIN.search(statement):
            self.in_copy_data = True
