"""Untrusted text documents (TOML, JSON) parsed into plain values, every way they can fail
turned into one InputError naming the file.

Python's parsers fail in more ways than their documented errors: a TOML or JSON document
nested a few thousand levels deep exhausts the recursion limit (RecursionError), and an
integer of more than 4,300 digits is refused by `int()` (a ValueError that is not a
TOMLDecodeError or JSONDecodeError). Both are bad input, not failures of the machinery.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from verifier.errors import InputError

# Deeper documents are refused before parsing: no format the verifier reads nests beyond a
# handful of levels, and Python's parsers recurse once per level.
MAX_DEPTH = 100


def read_text(path: str | Path, what: str) -> str:
    """A file's text as UTF-8; InputError naming `what` it should have been."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            str(path), f"cannot read {what}: not UTF-8 text (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read {what}: {exc.strerror or exc}") from None


def toml_naming(path: str | Path, key: str) -> str | None:
    """The text of a `.toml` file with a line that opens a top-level `key` table or sets
    `key` (`[key]`, `[key.sub]`, `key = ...`, the key quoted or not), else None: tells a
    file's kind from its text, without parsing a possibly huge maze map."""
    path = Path(path)
    if path.suffix.lower() != ".toml" or not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    pattern = rf'^[ \t]*(\[[ \t]*)?["\']?{re.escape(key)}["\']?[ \t]*[\].=]'
    return text if re.search(pattern, text, re.M) else None


def parse_toml(text: str, source: str, parse_float: Callable[[str], Any] = float) -> dict[str, Any]:
    """TOML text as a dict; InputError naming `source` (and the line, where known) for
    malformed text, nesting deeper than MAX_DEPTH and integers Python cannot read."""
    _check_depth(text, source, toml=True)
    try:
        return tomllib.loads(text, parse_float=parse_float)
    except tomllib.TOMLDecodeError as exc:
        message, place = split_toml_error(str(exc))
        raise InputError(source, f"TOML syntax error: {message}", place) from None
    except RecursionError:
        raise InputError(source, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # int() of more than sys.get_int_max_str_digits() digits
        raise InputError(source, _number_problem(exc)) from None


def parse_json(text: str | bytes, source: str) -> Any:
    """JSON text as plain values; InputError naming `source` for malformed text, nesting
    deeper than MAX_DEPTH and integers Python cannot read."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(source, f"not UTF-8 text (byte {exc.start})") from None
    _check_depth(text, source, toml=False)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InputError(source, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise InputError(source, _number_problem(exc)) from None


def split_toml_error(message: str) -> tuple[str, str | None]:
    """tomllib's message without its position, and the position as a place."""
    match = re.search(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$", message)
    if not match:
        return message, None
    place = f"line {match.group(1)}, column {match.group(2)}" if match.group(1) else "end of file"
    return message[: match.start()], place


def _number_problem(exc: ValueError) -> str:
    if "digits" in str(exc):
        return (
            f"a number of more than {sys.get_int_max_str_digits()} digits; numbers this "
            "long are refused"
        )
    return f"unreadable value ({' '.join(str(exc).split())})"


# Brackets and braces outside strings, the nesting of TOML and JSON values. Strings are
# skipped whole: TOML's basic, literal and multi-line strings, JSON's strings.
_TOML_SKIP = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*'
)
_JSON_SKIP = re.compile(r'"(?:\\.|[^"\\])*"')


def _check_depth(text: str, source: str, toml: bool) -> None:
    """InputError if brackets nest deeper than MAX_DEPTH outside strings (a scan without
    recursion, vectorised for large tables; the parser would exhaust Python's recursion
    limit)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    bare = np.frombuffer((_TOML_SKIP if toml else _JSON_SKIP).sub("", text).encode(), np.uint8)
    steps = _STEP[bare]
    if len(steps) and int(np.cumsum(steps, dtype=np.int64).max()) > MAX_DEPTH:
        raise InputError(source, f"nested deeper than {MAX_DEPTH} levels")


_STEP = np.zeros(256, dtype=np.int8)  # +1 for [ and {, -1 for ] and }, by byte
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
