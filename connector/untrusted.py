"""Placeholder until the hostile-input branch lands (it replaces this file)."""

from __future__ import annotations

from typing import Any


class UntrustedInput(ValueError):
    pass


def check_shape(obj: Any, *, max_depth: int = 64, max_nodes: int = 1_000_000, max_string: int = 1_000_000) -> None:
    stack = [(obj, 0, "")]
    nodes = 0
    while stack:
        value, depth, path = stack.pop()
        nodes += 1
        if depth > max_depth:
            raise UntrustedInput(f"{path or '(top)'} nested deeper than {max_depth} levels")
        if nodes > max_nodes:
            raise UntrustedInput(f"more than {max_nodes} values")
        if isinstance(value, dict):
            stack += [(v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, str) and len(value) > max_string:
            raise UntrustedInput(f"{path} is longer than {max_string} characters")


_BAD = {c for c in range(32) if c not in (9, 10, 13)}


def _clean(s: str) -> str:
    return "".join(ch for ch in s if ord(ch) not in _BAD and not 0xD800 <= ord(ch) <= 0xDFFF)


def strip_controls(obj: Any) -> tuple[Any, list[str]]:
    changed: list[str] = []

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                ck = _clean(k) if isinstance(k, str) else k
                if ck != k:
                    changed.append(f"{path}.{ck}" if path else str(ck))
                out[ck] = walk(v, f"{path}.{ck}" if path else str(ck))
            return out
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            c = _clean(value)
            if c != value:
                changed.append(path)
            return c
        return value

    return walk(obj, ""), changed


def loads_bounded(data, *, max_depth: int = 64, max_bytes: int = 10 * 1024 * 1024):
    import json

    if isinstance(data, bytes | bytearray):
        if len(data) > max_bytes:
            raise UntrustedInput(f"more than {max_bytes} bytes")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise UntrustedInput("body is not UTF-8") from None
    if not data.strip():
        raise UntrustedInput("body is empty")
    try:
        value = json.loads(data)
    except RecursionError:
        raise UntrustedInput(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise UntrustedInput(f"body is not JSON: {exc}") from None
    check_shape(value, max_depth=max_depth)
    return value
