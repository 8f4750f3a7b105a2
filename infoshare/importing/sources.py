"""An import's inputs: STIX bundles, TAXII envelopes and JSON lines, parsed strictly.

Pure: bytes in, objects out; no Flask, no database. Every JSON text goes through
strictjson, as a TAXII POST body does, so an import stores nothing a POST would refuse at
the door.

Two forms of file, told apart by the first line that is not blank:
- JSON lines, when that line is a whole JSON value by itself (and always for *.jsonl and
  *.ndjson): one STIX object per line, blank lines ignored, read a line at a time so a
  file of any size costs one line of memory. A line holding a bundle or an envelope
  gives its objects in order (a compact bundle is one line). A line that is not strict
  JSON is reported by its number and the rest of the file goes on.
- One JSON document otherwise (a pretty-printed bundle or envelope), read whole: at most
  `max_bytes`, because parsing it holds it all in memory.

Every object read comes with the position to start reading again after it (`Item.after`),
so an interrupted import can seek back to the line instead of re-reading the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import strictjson

SUFFIXES = (".json", ".jsonl", ".ndjson")  # what a DIR contributes
LINES_SUFFIXES = (".jsonl", ".ndjson")  # always JSON lines
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
STDIN = "-"


class Unrecognised(ValueError):
    """The input is none of the forms an import reads; nothing of it was read."""


@dataclass(frozen=True)
class Position:
    """Where reading may start again: a line's byte offset, the ordinal of its first
    object and its line number. A document has one position: its start."""

    offset: int = 0
    ordinal: int = 0
    line: int = 1


@dataclass(frozen=True)
class Item:
    ordinal: int  # the object's place in the input, from 0
    where: str  # "line 12" or "object 12", for messages
    obj: object  # the parsed object (None when problem says why there is none)
    after: Position  # where to start again once this item is committed
    problem: str = ""


def expand(arguments: tuple[str, ...]) -> list[str]:
    """FILE, DIR (every *.json, *.jsonl and *.ndjson under it, in sorted order) or '-'."""
    found: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if argument != STDIN and path.is_dir():
            found += sorted(str(p) for p in path.rglob("*")
                            if p.suffix.lower() in SUFFIXES and p.is_file())
        else:
            found.append(argument)
    return found


def identity(path: str, head_bytes: int = 65536) -> str:
    """What says a file is still the one a checkpoint was made on: its size, its
    modification time and a hash of its first bytes."""
    stat = os.stat(path)
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(head_bytes)).hexdigest()[:32]
    return f"{stat.st_size}:{stat.st_mtime_ns}:{head}"


def read(stream: BinaryIO, name: str, form: str | None = None, start: Position = Position(),
         max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, Iterator[Item]]:
    """The input's form ("json lines", "bundle", "envelope") and its items.

    `form` is what a checkpoint recorded (JSON lines resume at `start`); None finds out,
    and a *.jsonl or *.ndjson name is always JSON lines. Unrecognised when the input is
    neither JSON lines nor a bundle or envelope.
    """
    if start.offset:
        stream.seek(start.offset)
    lines = _lines(stream, start, max_bytes)
    if form == "json lines" or name.lower().endswith(LINES_SUFFIXES):
        return "json lines", _items_of_lines(lines, start.ordinal)
    if form is None:
        first = next(lines, None)
        if first is None:
            raise Unrecognised("it is empty")
        value, problem = _parse(first.text)
        if not problem:
            return "json lines", _items_of_lines(_chain(first, lines), start.ordinal)
        return _document(first, stream, max_bytes, problem)
    return _document(None, stream, max_bytes, "")


@dataclass(frozen=True)
class _Line:
    text: bytes
    number: int
    offset: int
    end: int  # the offset after it
    too_long: bool = False


def _lines(stream: BinaryIO, start: Position, max_bytes: int) -> Iterator[_Line]:
    """The lines that are not blank, with their numbers and offsets; a line longer than
    max_bytes is cut short (and said so) without holding the rest of it."""
    offset, number = start.offset, start.line
    while True:
        text = stream.readline(max_bytes + 1)
        if not text:
            return
        end = offset + len(text)
        too_long = len(text) > max_bytes and not text.endswith(b"\n")
        while too_long and (rest := stream.readline(1 << 20)):
            end += len(rest)
            if rest.endswith(b"\n"):
                break
        if text.strip():
            yield _Line(text, number, offset, end, too_long)
        offset, number = end, number + 1


def _chain(first: _Line, rest: Iterator[_Line]) -> Iterator[_Line]:
    yield first
    yield from rest


def _parse(text: bytes) -> tuple[object, str]:
    """The value, or why the text is not strict JSON (worded as a POST words it)."""
    try:
        return strictjson.loads(text), ""
    except strictjson.StrictJSONError as exc:
        return None, f"not strict JSON: {exc}"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON: {exc}"
    except RecursionError:
        return None, "nests too deeply to be STIX"


def _objects_of(value: object) -> list | None:
    """A bundle's or an envelope's objects; None for anything else."""
    if not isinstance(value, dict) or not isinstance(value.get("objects"), list):
        return None
    if value.get("type") == "bundle" or "type" not in value:
        return value["objects"]
    return None


def _form_of(value: object) -> str:
    return "bundle" if isinstance(value, dict) and value.get("type") == "bundle" else "envelope"


def _items_of_lines(lines: Iterator[_Line], ordinal: int) -> Iterator[Item]:
    for line in lines:
        here = Position(line.offset, ordinal, line.number)
        value, problem = _parse(line.text) if not line.too_long else (
            None, "the line is longer than the limit (--max-document-mib)")
        objects = _objects_of(value) if not problem else None
        entries = [value] if objects is None else objects
        if problem:
            entries = [None]
        for index, obj in enumerate(entries):
            last = index == len(entries) - 1
            after = Position(line.end, ordinal + 1, line.number + 1) if last else here
            yield Item(ordinal, f"line {line.number}", obj, after, problem)
            ordinal += 1


def _document(first: _Line | None, stream: BinaryIO, max_bytes: int,
              line_problem: str) -> tuple[str, Iterator[Item]]:
    """The whole input as one bundle or envelope."""
    head = first.text if first else b""
    data = head + stream.read(max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        raise Unrecognised(f"its first line is not JSON by itself ({line_problem}) and it "
                           f"is larger than one document may be ({max_bytes // 2**20} MiB, "
                           "--max-document-mib): write it as JSON lines")
    value, problem = _parse(data)
    if problem:
        raise Unrecognised(f"it is neither JSON lines (line {first.number if first else 1}: "
                           f"{line_problem}) nor one JSON document ({problem})")
    objects = _objects_of(value)
    if objects is None:
        raise Unrecognised("it is neither a STIX bundle ({\"type\": \"bundle\", \"objects\": "
                           "[...]}), a TAXII envelope ({\"objects\": [...]}) nor JSON lines")
    return _form_of(value), (Item(n, f"object {n + 1}", obj, Position())
                             for n, obj in enumerate(objects))
