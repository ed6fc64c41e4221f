"""A parser for the subset of the Alloy configuration syntax that the orderops configuration uses.

Grammar (Alloy syntax reference: blocks, attributes, expressions)::

    body   := (block | attribute)*
    block  := NAME ('.' NAME)* [STRING] '{' body '}'
    attribute := NAME '=' expr
    expr   := STRING | NUMBER | 'true' | 'false' | 'null' | list | object | reference | call
    list   := '[' [expr (',' expr)* [',']] ']'
    object := '{' [key '=' expr (',' key '=' expr)* [',']] '}'      key := NAME | STRING
    reference := NAME ('.' NAME)*            call := reference '(' [expr (',' expr)*] ')'

Comments: ``//`` to end of line and ``/* ... */``. Strings are double-quoted with Go escapes, or
back-quoted raw strings. Parse errors raise :class:`SyntaxError_` with ``line:column``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Block", "Attribute", "Ref", "Call", "SyntaxError_", "parse"]


class SyntaxError_(ValueError):
    """A syntax error; message starts with ``<line>:<column>:``."""


@dataclass
class Ref:
    path: tuple[str, ...]
    line: int


@dataclass
class Call:
    func: tuple[str, ...]
    args: list[Any]
    line: int


@dataclass
class Attribute:
    name: str
    value: Any
    line: int


@dataclass
class Block:
    name: str
    label: str | None
    line: int
    attributes: list[Attribute] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+) | (?P<lcomment>//[^\n]*) | (?P<bcomment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),.=])
""", re.VERBOSE | re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        if not m:
            raise SyntaxError_(f"{line}:{col}: illegal character {text[pos]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "lcomment", "bcomment"):
            out.append((kind, m.group(), line, col))
        pos = m.end()
    out.append(("eof", "", text.count("\n") + 1, 1))
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self, value: str | None = None, kind: str | None = None):
        tok = self.peek()
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = value or kind
            raise SyntaxError_(f"{tok[2]}:{tok[3]}: expected {want}, got {tok[1] or 'end of file'!r}")
        self.i += 1
        return tok

    def body(self, end: str | None) -> tuple[list[Attribute], list[Block]]:
        attrs: list[Attribute] = []
        blocks: list[Block] = []
        while True:
            tok = self.peek()
            if end is None and tok[0] == "eof" or end is not None and tok[1] == end:
                return attrs, blocks
            name_tok = self.take(kind="name")
            if self.peek()[1] == "=":
                self.take("=")
                attrs.append(Attribute(name_tok[1], self.expr(), name_tok[2]))
                continue
            parts = [name_tok[1]]
            while self.peek()[1] == ".":
                self.take(".")
                parts.append(self.take(kind="name")[1])
            label = None
            if self.peek()[0] in ("string", "raw"):
                label = self._string(self.take())
            self.take("{")
            a, b = self.body("}")
            self.take("}")
            blocks.append(Block(".".join(parts), label, name_tok[2], a, b))

    def _string(self, tok) -> str:
        if tok[0] == "raw":
            return tok[1][1:-1]
        return json.loads(tok[1])

    def expr(self) -> Any:
        tok = self.peek()
        if tok[0] in ("string", "raw"):
            self.i += 1
            return self._string(tok)
        if tok[0] == "number":
            self.i += 1
            return float(tok[1]) if any(c in tok[1] for c in ".eE") else int(tok[1])
        if tok[1] == "[":
            self.take("[")
            items = []
            while self.peek()[1] != "]":
                items.append(self.expr())
                if self.peek()[1] != ",":
                    break
                self.take(",")
            self.take("]")
            return items
        if tok[1] == "{":
            self.take("{")
            obj = {}
            while self.peek()[1] != "}":
                key_tok = self.take()
                if key_tok[0] == "name":
                    key = key_tok[1]
                elif key_tok[0] in ("string", "raw"):
                    key = self._string(key_tok)
                else:
                    raise SyntaxError_(f"{key_tok[2]}:{key_tok[3]}: expected an object key, got {key_tok[1]!r}")
                self.take("=")
                obj[key] = self.expr()
                if self.peek()[1] != ",":
                    break
                self.take(",")
            self.take("}")
            return obj
        if tok[0] == "name":
            if tok[1] in ("true", "false", "null"):
                self.i += 1
                return {"true": True, "false": False, "null": None}[tok[1]]
            parts = [self.take(kind="name")[1]]
            while self.peek()[1] == ".":
                self.take(".")
                parts.append(self.take(kind="name")[1])
            if self.peek()[1] == "(":
                self.take("(")
                args = []
                while self.peek()[1] != ")":
                    args.append(self.expr())
                    if self.peek()[1] != ",":
                        break
                    self.take(",")
                self.take(")")
                return Call(tuple(parts), args, tok[2])
            return Ref(tuple(parts), tok[2])
        raise SyntaxError_(f"{tok[2]}:{tok[3]}: expected an expression, got {tok[1] or 'end of file'!r}")


def parse(text: str) -> list[Block]:
    """Parse a configuration file into its top-level blocks; raises :class:`SyntaxError_`."""
    parser = _Parser(text)
    attrs, blocks = parser.body(None)
    if attrs:
        raise SyntaxError_(f"{attrs[0].line}:1: attribute {attrs[0].name!r} is not allowed at the top level")
    return blocks
