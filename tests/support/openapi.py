"""Validate the HTTP requests our adapters send against the vendors' own OpenAPI documents.

Usage in an adapter test::

    validator = spec_validator("shipbob-2026-01-openapi.json")   # skips when ../shared/specs is absent
    router = validated_router(validator, base_url="https://api.shipbob.com")
    router.get("/2026-01/channel").respond(200, json={"items": []})
    adapter = MyAdapter(config, AdapterContext("acme", transport=router.transport()))
    ...                                       # every request is checked as it is sent
    router.assert_valid()                     # also fails the test if adapter code swallowed an error

Against a real server (a sandbox on loopback) wrap the transport instead:
`ValidatingTransport(validator)` checks each request, then sends it with httpx's own transport.

The documents live outside the project tree (`../shared/specs/`). The official ones do not pass a
strict spec validator, so they are loaded without one; ShipBob's is normalised first (see
`normalise_shipbob` and `../shared/specs/README.md`). Requests may go to any base URL (a loopback
sandbox, the vendor's host, a prefix like `/rest/v2`): the path is matched against the spec's
templates after stripping that prefix.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
_SPEC_HOST = "http://spec.invalid"  # the one server every loaded spec is rewritten to
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# Query parameters a vendor really sends back in its own `next` links but its document does not
# list (ShipBob's cursor-paged endpoints hand out `...?Cursor=...`). Lower-case names.
_UNDOCUMENTED_QUERY: dict[str, frozenset[str]] = {
    "shipbob": frozenset({"cursor"}),
}


# --------------------------------------------------------------------------------------------
# ShipBob normalisation
# --------------------------------------------------------------------------------------------


def normalise_shipbob(spec: dict[str, Any]) -> dict[str, Any]:
    """Make ShipBob's generated document mean what ShipBob's API does (specs README).

    - keywords beside a `$ref` are dropped (OpenAPI 3.0 ignores them anyway);
    - `allOf` parts are merged into one object, so the parts stop rejecting each other's fields;
    - `additionalProperties: false` is kept only where `properties` are listed, so unknown fields
      are still caught but scalars and `oneOf` wrappers stop rejecting everything;
    - `oneOf` becomes `anyOf`: the generator renders C# inheritance as `oneOf: [Base, Derived]`
      (e.g. product variants), and an object valid for the derived type is valid for its base too,
      so "exactly one" could never hold for a real response.
    """
    spec = copy.deepcopy(spec)
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    done: dict[str, Any] = {}
    in_progress: set[str] = set()

    def component(ref: str) -> dict[str, Any]:
        name = ref.rsplit("/", 1)[-1]
        if name in done:
            return done[name]
        if name in in_progress:  # a cycle through allOf: leave the reference as it is
            return {"$ref": ref}
        in_progress.add(name)
        done[name] = walk(schemas[name])
        in_progress.discard(name)
        return done[name]

    def merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        props = dict(merged.get("properties") or {})
        required = list(merged.get("required") or [])
        closed = merged.get("additionalProperties") is False
        for part in node["allOf"]:
            part = component(part["$ref"]) if "$ref" in part else walk(part)
            if "allOf" in part:  # an unresolved cycle: keep the composition
                return node
            props.update(part.get("properties") or {})
            required += [r for r in part.get("required") or [] if r not in required]
            closed = closed or part.get("additionalProperties") is False
            for key in ("type", "description", "nullable"):
                if part.get(key) is not None:
                    merged.setdefault(key, part[key])
        merged["properties"] = props
        if required:
            merged["required"] = required
        if closed:
            merged["additionalProperties"] = False
        return merged

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": node["$ref"]}
        node = {k: walk(v) for k, v in node.items()}
        if "allOf" in node and isinstance(node["allOf"], list):
            node = merge_all_of(node)
        if "oneOf" in node and "anyOf" not in node:
            node["anyOf"] = node.pop("oneOf")
        if node.get("additionalProperties") is False and not node.get("properties"):
            del node["additionalProperties"]
        return node

    for name in list(schemas):
        component(f"#/components/schemas/{name}")
    paths = walk(spec.get("paths", {}))
    spec["components"] = walk({k: v for k, v in spec.get("components", {}).items() if k != "schemas"})
    spec["components"]["schemas"] = done
    spec["paths"] = paths
    return spec


# --------------------------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------------------------


class _OpenApiRequest:
    """An httpx.Request seen through openapi-core's Request protocol, moved onto the spec host."""

    def __init__(self, request: httpx.Request, path: str):
        self._request = request
        self.host_url = _SPEC_HOST
        self.path = path
        self.method = request.method.lower()
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )
        body = request.content
        self.body = body if body else None
        self.content_type = request.headers.get("content-type", "")


class _OpenApiResponse:
    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content or None
        self.content_type = response.headers.get("content-type", "application/json")


class SpecValidator:
    """One vendor's OpenAPI document, ready to check requests (and responses) we send or serve."""

    def __init__(self, name: str, spec: dict[str, Any]):
        self.name = name
        self.vendor = "shipbob" if name.lower().startswith("shipbob") else name.split("-", 1)[0].lower()
        servers = spec.get("servers") or [{"url": "/"}]
        # Paths under a server URL (UltraCart's /rest/v2) are accepted with or without it.
        self.server_prefixes = sorted(
            {urlsplit(s["url"]).path.rstrip("/") for s in servers if urlsplit(s["url"]).path.rstrip("/")},
            key=len,
            reverse=True,
        )
        spec = dict(spec, servers=[{"url": _SPEC_HOST}])
        spec = _bearer_for_oauth(spec)
        self.spec = spec
        self._templates = [(self._compile(p), p) for p in spec.get("paths", {})]
        # Literal templates first, so `/order/{id}` never shadows `/order:estimate`.
        self._templates.sort(key=lambda t: t[1].count("{"))
        self.openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        self.undocumented_query = _UNDOCUMENTED_QUERY.get(self.vendor, frozenset())

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", template)
        rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(rx + "/?$")

    # -- path matching ------------------------------------------------------------------------

    def match_path(self, path: str, base_path: str = "") -> tuple[str, str] | None:
        """(path relative to the spec, template) for a request path, or None."""
        candidates: list[str] = []
        if base_path and path.startswith(base_path.rstrip("/")):
            candidates.append(path[len(base_path.rstrip("/")) :] or "/")
        else:
            candidates.append(path)
            candidates += [path[len(p) :] for p in self.server_prefixes if path.startswith(p + "/")]
            # An unknown mount point (e.g. a sandbox at http://host/ultracart): try shorter tails.
            segments = path.split("/")
            candidates += ["/" + "/".join(segments[i:]) for i in range(2, len(segments))]
        for candidate in candidates:
            for rx, template in self._templates:
                if rx.match(candidate):
                    return candidate, template
        return None

    # -- requests -----------------------------------------------------------------------------

    def validate_request(self, request: httpx.Request, base_url: str | None = None) -> None:
        """Raise AssertionError naming what is wrong when `request` does not match the spec."""
        what = f"{self.name}: {request.method} {request.url}"
        base_path = urlsplit(base_url).path if base_url else ""
        found = self.match_path(request.url.path, base_path)
        if found is None:
            raise AssertionError(f"{what}: no path in the spec matches {request.url.path!r}")
        path, template = found
        item = self.spec["paths"][template]
        operation = item.get(request.method.lower())
        if operation is None:
            allowed = ", ".join(m.upper() for m in _METHODS if m in item)
            raise AssertionError(f"{what}: {template} allows {allowed}, not {request.method}")
        self._check_query_names(what, request, item, operation)
        try:
            self.openapi.validate_request(_OpenApiRequest(request, path))
        except Exception as exc:  # openapi-core raises a tree of its own errors
            raise AssertionError(f"{what} ({template}): {describe(exc)}") from None

    def _check_query_names(self, what: str, request: httpx.Request, item: dict, operation: dict) -> None:
        # openapi-core ignores unknown query parameters; a misspelt filter is silently ignored by
        # the vendor too, so catch it here.
        params = [self._resolve(p) if "$ref" in p else p for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
        declared = {p["name"] for p in params if p.get("in") == "query"}
        sent = {k for k, _ in request.url.params.multi_items()}
        unknown = sorted(n for n in sent - declared if n.lower() not in self.undocumented_query)
        if unknown:
            raise AssertionError(
                f"{what}: query parameter(s) {', '.join(unknown)} not in the spec "
                f"(known: {', '.join(sorted(declared)) or 'none'})"
            )

    def _resolve(self, node: dict) -> dict:
        target: Any = self.spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return target

    # -- responses (to keep the sandboxes honest) ---------------------------------------------

    def validate_response(self, request: httpx.Request, response: httpx.Response, base_url: str | None = None) -> None:
        """Raise AssertionError when a documented response does not match what the spec says.

        Statuses the operation does not document are not checked (nothing to check them against).
        """
        base_path = urlsplit(base_url).path if base_url else ""
        found = self.match_path(request.url.path, base_path)
        if found is None:
            raise AssertionError(f"{self.name}: no path in the spec matches {request.url.path!r}")
        documented = (self.spec["paths"][found[1]].get(request.method.lower()) or {}).get("responses", {})
        if str(response.status_code) not in documented and "default" not in documented:
            return  # e.g. an injected 500: the spec says nothing about its body
        try:
            self.openapi.validate_response(_OpenApiRequest(request, found[0]), _OpenApiResponse(response))
        except Exception as exc:
            raise AssertionError(
                f"{self.name}: response {response.status_code} to {request.method} {request.url} ({found[1]}): {describe(exc)}"
            ) from None


def _bearer_for_oauth(spec: dict[str, Any]) -> dict[str, Any]:
    """OAuth2 / OpenID schemes -> HTTP bearer: the token travels the same way, and openapi-core
    cannot check OAuth2 (it would accept a request with no credentials at all)."""
    schemes = spec.get("components", {}).get("securitySchemes") or {}
    if not any(s.get("type") in ("oauth2", "openIdConnect") for s in schemes.values()):
        return spec
    spec = copy.copy(spec)
    spec["components"] = dict(spec["components"])
    spec["components"]["securitySchemes"] = {
        name: {"type": "http", "scheme": "bearer"} if s.get("type") in ("oauth2", "openIdConnect") else s
        for name, s in schemes.items()
    }
    return spec


def describe(exc: BaseException) -> str:
    """openapi-core's error and its causes as one readable line, schema errors spelt out."""
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in chain:
        chain.append(node)
        node = node.__cause__  # not __context__: that is werkzeug noise from parameter parsing
    details = [d for n in chain for d in _schema_details(getattr(n, "schema_errors", None) or [])]
    if not details:
        return "; ".join(dict.fromkeys(str(n) or type(n).__name__ for n in chain))
    # The messages quote the whole body; the schema errors say what is wrong with it.
    headline = str(chain[0]).split(":", 1)[0] or type(chain[0]).__name__
    return headline + ": " + "; ".join(dict.fromkeys(details))


def _schema_details(errors: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for err in errors:
        where = "/".join(str(p) for p in getattr(err, "absolute_path", []) or []) or "body"
        context = getattr(err, "context", None) or []
        if context:  # oneOf / anyOf: the reasons each alternative failed
            out += [f"[{where}] {err.message}"] + [f"  ({'/'.join(map(str, c.absolute_path)) or where}) {c.message}" for c in context]
        else:
            out.append(f"[{where}] {getattr(err, 'message', err)}")
    return out


def _load_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@cache
def _cached_validator(filename: str) -> SpecValidator:
    spec = _load_document(SPECS_DIR / filename)
    if filename.lower().startswith("shipbob"):
        spec = normalise_shipbob(spec)
    return SpecValidator(filename, spec)


def spec_validator(filename: str) -> SpecValidator:
    """The (cached) validator of `../shared/specs/<filename>`; skips the test when it is absent."""
    if not (SPECS_DIR / filename).is_file():
        pytest.skip(f"../shared/specs not present: {SPECS_DIR / filename} is missing")
    return _cached_validator(filename)


# --------------------------------------------------------------------------------------------
# Wiring it into tests
# --------------------------------------------------------------------------------------------


class ValidatingRouter(respx.MockRouter):
    """A respx router that checks every request against a spec before answering it.

    Failures raise AssertionError inside the adapter's call and are also kept in `errors`, so
    `assert_valid()` still fails the test when adapter code caught the exception.
    """

    def __init__(self, validator: SpecValidator, base_url: str | None = None, **kwargs: Any):
        kwargs.setdefault("assert_all_called", False)
        super().__init__(base_url=base_url, **{"using": "httpx", **kwargs})  # the clients run on aiohttp: mock at httpx's level
        self.validator = validator
        self.spec_base_url = base_url
        self.errors: list[str] = []

    def _validate(self, request: httpx.Request) -> None:
        try:
            self.validator.validate_request(request, self.spec_base_url)
        except AssertionError as exc:
            self.errors.append(str(exc))
            raise

    def resolve(self, request: httpx.Request):  # type: ignore[override]
        self._validate(request)
        return super().resolve(request)

    async def aresolve(self, request: httpx.Request):  # type: ignore[override]
        self._validate(request)
        return await super().aresolve(request)

    def transport(self) -> httpx.MockTransport:
        """A transport to hand an adapter (AdapterContext.transport); no global patching needed."""
        return httpx.MockTransport(self.async_handler)

    def assert_valid(self) -> None:
        assert not self.errors, "requests not matching the spec:\n" + "\n".join(self.errors)


def validated_router(validator: SpecValidator, base_url: str | None = None, **kwargs: Any) -> ValidatingRouter:
    """A `ValidatingRouter`; add routes as with respx (`router.get(path).respond(...)`)."""
    return ValidatingRouter(validator, base_url, **kwargs)


class ValidatingTransport(httpx.AsyncBaseTransport):
    """Checks each request against a spec, then sends it for real (or through `inner`).

    With `responses=True` the answers are checked too: that keeps a sandbox faithful to the vendor.
    Errors are kept in `errors` as well as raised.
    """

    def __init__(
        self,
        validator: SpecValidator,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        base_url: str | None = None,
        responses: bool = False,
        skip_paths: Iterable[str] = ("/_sandbox",),
    ):
        self.validator = validator
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.base_url = base_url
        self.responses = responses
        self.skip_paths = tuple(skip_paths)
        self.errors: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        checked = not request.url.path.startswith(self.skip_paths)
        if checked:
            try:
                self.validator.validate_request(request, self.base_url)
            except AssertionError as exc:
                self.errors.append(str(exc))
                raise
        response = await self.inner.handle_async_request(request)
        if checked and self.responses:
            await response.aread()
            try:
                self.validator.validate_response(request, response, self.base_url)
            except AssertionError as exc:
                self.errors.append(str(exc))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def assert_valid(self) -> None:
        assert not self.errors, "traffic not matching the spec:\n" + "\n".join(self.errors)
