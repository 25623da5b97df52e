"""Explicit bounds for untrusted JSON: what a webhook body, a queue page or a vendor reply may be
before the engine walks, stores or logs it.

Python's own tools fail on hostile shapes in ways that stop the flow: `json.loads` raises
RecursionError (not ValueError) on a body nested ~1,000 deep, every recursive walk of a parsed
body does the same much earlier, and PostgreSQL refuses a NUL character or a lone UTF-16
surrogate anywhere in a text or JSON column. Everything here is iterative (no recursion, so no
depth can exhaust the stack) and reports the first offending place as a readable path such as
`items[0].options`.

- `loads_bounded(data)`: bytes or text -> parsed JSON, or `UntrustedInput`; never RecursionError.
- `check_shape(obj)`: raises `UntrustedInput` when obj is nested too deep, has too many values or
  too long a string.
- `strip_controls(obj)`: a copy without NUL, the other C0 controls (tab, newline and carriage
  return are kept) and lone surrogates, plus the paths where something was removed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from connector import jsontext
from connector.redact import DEFAULT as REDACT
from connector.redact import free_key as _free_key

MAX_DEPTH = 64  # containers inside containers; real UltraCart orders stay under 10
MAX_NODES = 1_000_000  # values of any kind in one document; a 100-order page holds ~100,000
MAX_STRING = 1_000_000  # characters in one string or key; UltraCart's longest field is 10,000
MAX_BYTES = 64 * 1024 * 1024  # of JSON text; UltraCart caps a webhook delivery at 900 KB

# C0 controls except tab, newline and carriage return, and UTF-16 surrogates. json.loads joins a
# valid escaped pair into one character, so any surrogate left in a str is a lone one.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
PATH_PARTS = 16  # keys and indexes a path shows before "... (n more levels)"
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Structural characters and whole strings of JSON text, to find where nesting gets too deep.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)

Path = tuple[str | int, ...]
# While walking, a path is a linked (parent, key) pair: a tuple per level would cost memory
# quadratic in the depth (100,000 levels: billions of entries). Only a reported path is unrolled.
Link = tuple[Any, str | int] | None


def _unlink(link: Link) -> Path:
    parts: list[str | int] = []
    while link is not None:
        link, key = link
        parts.append(key)
    return tuple(reversed(parts))


class UntrustedInput(ValueError):
    """Untrusted JSON that breaks one of the bounds; `path` names where (or is "" for the whole
    document), and the message says what a person needs to fix it."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


def path_text(path: Path, length: int | None = None) -> str:
    """`("items", 0, "options")` -> `items[0].options`. Odd keys are quoted and cut to 60
    characters, and card numbers or configured secrets are masked: paths end up in hold reasons
    and log lines. `length`: the whole path's length when `path` holds only its start."""
    out: list[str] = []
    length = len(path) if length is None else length  # the path may be given by its start only
    path = path[:PATH_PARTS]  # a path 1,000 levels deep is not readable; its start says where
    more = length - len(path)
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            part = str(part)
            out.append(f"[{json.dumps(part[:60] + ('...' if len(part) > 60 else ''))}]")  # json escapes controls
    if more:
        out.append(f"... ({more} more levels)")
    return REDACT.text("".join(out)) if out else "(top level)"


def _to_last_key(path: Path) -> Path:
    """The path up to its last dict key: `items[0].options[0][0][0]` says `items[0].options`."""
    end = len(path)
    while end > 0 and isinstance(path[end - 1], int):
        end -= 1
    return path[:end] if end else path


def _items(container: dict | list):
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def check_shape(obj: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES, max_string: int = MAX_STRING) -> None:
    """Raise `UntrustedInput` naming the first offending path, in document order, when `obj`
    nests containers deeper than `max_depth` (the top-level object is level 1), holds more than
    `max_nodes` values (the top level, every list item and every dict value), or has a string or
    key longer than `max_string` characters. Iterative: any depth is safe to check."""
    if isinstance(obj, str) and len(obj) > max_string:
        raise UntrustedInput(f"(top level) is a string of {len(obj):,} characters, over the limit of {max_string:,}")
    if not isinstance(obj, dict | list):
        return
    if max_depth < 1:
        raise UntrustedInput(f"(top level) nested deeper than {max_depth} levels")
    nodes = 1
    stack: list[tuple[Any, int, Link]] = [(_items(obj), 1, None)]
    while stack:
        items, depth, link = stack[-1]
        for key, value in items:
            nodes += 1
            if nodes > max_nodes:
                where = path_text(_unlink((link, key)))
                raise UntrustedInput(f"{where} takes the document over the limit of {max_nodes:,} values", where)
            if isinstance(key, str) and len(key) > max_string:
                where = path_text(_unlink(link))
                raise UntrustedInput(f"{where} has a key of {len(key):,} characters, over the limit of {max_string:,}", where)
            if isinstance(value, str):
                if len(value) > max_string:
                    where = path_text(_unlink((link, key)))
                    raise UntrustedInput(f"{where} is a string of {len(value):,} characters, over the limit of {max_string:,}", where)
            elif isinstance(value, dict | list):
                if depth >= max_depth:
                    where = path_text(_to_last_key(_unlink((link, key))))
                    raise UntrustedInput(f"{where} nested deeper than {max_depth} levels", where)
                stack.append((_items(value), depth + 1, (link, key)))
                break  # descend now: "first" is first in document order
        else:
            stack.pop()


def plainly_safe(obj: Any, *, max_depth: int = MAX_DEPTH, max_string: int = MAX_STRING) -> bool:
    """True when `obj` surely passes `check_shape` (with these bounds) and `strip_controls` has
    nothing to remove, told from its JSON text: no escape in it (so no control character and no
    lone surrogate anywhere), no longer than `max_string` (so no string, and no count of
    values, is over a bound) and nesting at most `max_depth` deep. False says only "walk it"."""
    text = jsontext.plain(obj)
    return text is not None and len(text) <= min(max_string, MAX_NODES) and jsontext.depth_within(text, max_depth)


def strip_controls(obj: Any) -> tuple[Any, list[str]]:
    """A copy of `obj` (JSON as json.loads returns it) without NUL, the other C0 control characters (tab, newline and
    carriage return stay) and lone UTF-16 surrogates, in keys and values, and the paths of what
    changed, in document order. PostgreSQL cannot store NUL or a surrogate, so the engine holds
    an order for which this list is not empty.

    When nothing needs cleaning `obj` itself is returned with an empty list (no copy: the common
    case is the fast one). When a cleaned key collides with another key of the same object, the
    later of the two gets a `~2` (`~3` ...) suffix, so no value is lost. Iterative: any depth is safe."""
    if not _has_unstorable(obj):
        return obj, []
    if isinstance(obj, str):
        return _UNSTORABLE.sub("", obj), ["(top level)"]
    changed: list[str] = []
    root: Any = {} if isinstance(obj, dict) else []
    # Each level carries the start of its path and the path's length: reporting a change costs
    # the same at any depth (a NUL at each of 100,000 levels must not take quadratic time).
    stack: list[tuple[Any, Any, Path, int]] = [(_items(obj), root, (), 0)]
    while stack:
        items, dst, head, length = stack[-1]
        for key, value in items:
            dirty = False
            if isinstance(dst, dict):
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    key = _UNSTORABLE.sub("", key)
                    dirty = True
                if key in dst:  # source keys are unique: only a cleaned key can collide
                    key = _free_key(dst, key)
                    dirty = True
            child = None
            if isinstance(value, str):
                if _UNSTORABLE.search(value):
                    value = _UNSTORABLE.sub("", value)
                    dirty = True
            elif isinstance(value, dict | list):
                child = value
                value = {} if isinstance(value, dict) else []
            if dirty:
                changed.append(path_text(head + (key,), length + 1))
            if isinstance(dst, dict):
                dst[key] = value
            else:
                dst.append(value)
            if child is not None:
                stack.append((_items(child), value, head + (key,) if length < PATH_PARTS else head, length + 1))
                break
        else:
            stack.pop()
    return root, changed


def _has_unstorable(obj: Any) -> bool:
    """Whether any key or string in obj holds a character strip_controls removes (no copy)."""
    if isinstance(obj, str):
        return _UNSTORABLE.search(obj) is not None
    search = _UNSTORABLE.search
    stack = [obj]
    while stack:
        container = stack.pop()
        if isinstance(container, dict):
            for key, value in container.items():
                if isinstance(key, str) and search(key):
                    return True
                if isinstance(value, str):
                    if search(value):
                        return True
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(container, list):
            for value in container:
                if isinstance(value, str):
                    if search(value):
                        return True
                elif isinstance(value, dict | list):
                    stack.append(value)
    return False


def loads_bounded(
    data: bytes | bytearray | str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_string: int = MAX_STRING,
) -> Any:
    """Parse untrusted JSON text: the parsed value, or `UntrustedInput` (a ValueError) for text
    that is too large, not JSON, not UTF-8, nested deeper than `max_depth`, or breaking the other
    bounds of `check_shape`. Never RecursionError. NaN and Infinity (which Python accepts but
    JSON and PostgreSQL do not) are refused too."""
    size = len(data)  # characters for str: at most its UTF-8 size, so never a looser limit
    if size > max_bytes:
        raise UntrustedInput(f"body of {size:,} bytes is over the limit of {max_bytes:,}")
    try:
        obj = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        # The C parser gives up past ~1,000 levels; say where max_depth was first crossed.
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        offset = _too_deep_at(raw, max_depth)
        where = f" at byte {offset:,}" if offset is not None else ""
        raise UntrustedInput(f"JSON nested deeper than {max_depth} levels{where}") from None
    except UntrustedInput:
        raise
    except UnicodeDecodeError as exc:
        raise UntrustedInput(f"body is not UTF-8 (byte {exc.start:,})") from None
    except ValueError as exc:  # JSONDecodeError, and int strings over Python's 4,300-digit limit
        raise UntrustedInput(f"body is not JSON: {str(exc)[:200]}") from None
    check_shape(obj, max_depth=max_depth, max_nodes=max_nodes, max_string=max_string)
    return obj


def _refuse_constant(name: str) -> Any:
    raise UntrustedInput(f"{name} is not a JSON number")


def _too_deep_at(raw: bytes, max_depth: int) -> int | None:
    """Byte offset of the first bracket that opens level max_depth + 1, skipping strings."""
    depth = 0
    for m in _JSON_TOKEN.finditer(raw):
        c = raw[m.start()]
        if c in b"[{":
            depth += 1
            if depth > max_depth:
                return m.start()
        elif c in b"]}":
            depth -= 1
    return None
