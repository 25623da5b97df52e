"""A loopback Extensiv 3PL Warehouse Manager: just the REST endpoints the Extensiv adapter uses.

Faithful where it matters to the connector (research notes A.6; Extensiv publishes no spec):
- `POST /AuthServer/api/Token`: Basic client id/secret, JSON `{grant_type: client_credentials,
  tpl: "{GUID}", user_login_id}` -> `{access_token, token_type, expires_in}`; tokens expire
  (`token_ttl_s`) and every API call without a live Bearer token is a bare 401;
- answers in PascalCase HAL+JSON (`application/hal+json`), lists as `{TotalResults, ResourceList}`
  (stock: `Summaries`) paged by `pgsiz` / `pgnum`; bodies are read case-insensitively;
- `GET /orders` filtered by RQL (`;`-joined `==`, `!=`, `=ge=`, `=gt=`, `=le=`, `=lt=` over the
  fields the adapter uses; an unknown field is a 400) and sorted by `sort`; order items and
  packages only with `detail=All` (or a `detail` list naming them), as Extensiv does;
- `POST /orders` validates customer, facility, ship-to, SKUs (the customer's active items) and,
  while `unique_references` is on (the customer option), refuses a repeated `referenceNum`;
  with it off a repeat really creates a second order, which is why the adapter looks first;
- shipping closes an order (`IsClosed`, `Status` 1, `ProcessDate`) with its packages and their
  tracking numbers; per order (by creation sequence or `plan()`): one package, two packages
  with the lines split, or a first label voided (its package emptied, tracking cleared) and the
  goods repacked; `cancel()` sets `Status` 2; every change stamps `LastModifiedDate`;
- `GET /inventory/stocksummaries?customerid=` per facility; creating allocates, shipping takes
  stock off the shelf; `GET /customers/{id}` (facilities) and `/customers/{id}/items`.

The server runs in its own thread (SandboxServer), so every state change holds `self._lock`.
Control API (never faulted): GET /_sandbox/state, POST /_sandbox/faults, /_sandbox/ship,
/_sandbox/stock, /_sandbox/cancel, /_sandbox/expire_tokens.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox.common import DEMO_PLAN, Edge, Planned, SandboxKit, ShipPlan, control_routes, halves
from connector.sandbox.faults import FaultMiddleware, Faults

HAL = "application/hal+json; charset=utf-8"
DEFAULT_TPL = "{6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40}"
DEFAULT_FACILITIES = {1: "Ontario (CA)", 2: "Allentown (PA)"}
# Cart-side method names the demo and tests use -> Extensiv routing (carrier|mode).
DEFAULT_ROUTES = {"Standard": "UPS|Ground", "Expedited": "UPS|2nd Day Air", "2-Day": "FedEx|FedEx 2Day"}
RQL_CLAUSE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=ge=|=gt=|=le=|=lt=)(.*)$", re.S)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]  # Extensiv dates carry no offset


def _ci(obj: Any, *path: str) -> Any:
    """Case-insensitive lookup, as Extensiv's JSON binding reads request bodies."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == key.lower()), None)
    return obj


def _hal(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=HAL)


class ApiError(Exception):
    """An Extensiv-style refusal: `{ErrorCode, Hint, Properties}`, or a bare status (401)."""

    def __init__(self, status: int, code: str = "", hint: str = "", properties: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {hint}")
        self.status, self.code, self.hint, self.properties = status, code, hint, properties or {}

    def response(self) -> Response:
        if not self.code:
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if self.status == 401 else None
            return Response(status_code=self.status, headers=headers)
        return _hal({"ErrorCode": self.code, "Hint": self.hint, "Properties": self.properties}, self.status)


# -- RQL -------------------------------------------------------------------------------------


def _split_rql(text: str) -> list[str]:
    """Split on `;` outside quoted strings."""
    parts, current, quote, escaped = [], "", "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\" and quote:
            current += ch
            escaped = True
        elif ch in "\"'" and (not quote or ch == quote):
            quote = "" if quote else ch
            current += ch
        elif ch == ";" and not quote:
            parts.append(current)
            current = ""
        else:
            current += ch
    if quote:
        raise ApiError(400, "InvalidRql", "unterminated string in rql")
    return [p for p in [*parts, current] if p.strip()]


def _literal(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _order_field(order: dict[str, Any], field: str) -> tuple[Any, type]:
    ro = order["ReadOnly"]
    fields: dict[str, tuple[Any, type]] = {
        "referencenum": (order.get("ReferenceNum") or "", str),
        "ponum": (order.get("PoNum") or "", str),
        "readonly.orderid": (ro["OrderId"], int),
        "readonly.customeridentifier.id": (ro["CustomerIdentifier"]["Id"], int),
        "readonly.facilityidentifier.id": (ro["FacilityIdentifier"]["Id"], int),
        "readonly.isclosed": (ro["IsClosed"], bool),
        "readonly.status": (ro["Status"], int),
        "readonly.lastmodifieddate": (datetime.fromisoformat(ro["LastModifiedDate"]), datetime),
        "readonly.creationdate": (datetime.fromisoformat(ro["CreationDate"]), datetime),
    }
    if field.lower() not in fields:
        raise ApiError(400, "InvalidRql", f"unknown or unsupported rql field '{field}'", {"field": field})
    return fields[field.lower()]


def _coerce(raw: str, kind: type, field: str) -> Any:
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if kind is int:
            return int(raw)
        if kind is datetime:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
        return raw
    except ValueError:
        raise ApiError(400, "InvalidRql", f"'{raw}' is not a valid value for {field}", {"field": field}) from None


def rql_filter(rql: str) -> list[tuple[str, str, str]]:
    """Parse an RQL filter into (field, operator, literal) clauses (all must hold)."""
    clauses = []
    for part in _split_rql(rql or ""):
        m = RQL_CLAUSE.match(part)
        if not m:
            raise ApiError(400, "InvalidRql", f"cannot parse rql clause '{part}'")
        clauses.append((m.group(1), m.group(2), _literal(m.group(3))))
    return clauses


def _matches(order: dict[str, Any], clauses: list[tuple[str, str, str]]) -> bool:
    for field, op, raw in clauses:
        value, kind = _order_field(order, field)
        wanted = _coerce(raw, kind, field)
        ok = {
            "==": value == wanted,
            "!=": value != wanted,
            "=ge=": value >= wanted,
            "=gt=": value > wanted,
            "=le=": value <= wanted,
            "=lt=": value < wanted,
        }[op]
        if not ok:
            return False
    return True


# -- the sandbox -----------------------------------------------------------------------------


class ExtensivSandbox(Planned):
    """State of one simulated Extensiv warehouse (one customer) plus its ASGI app and faults."""

    def __init__(
        self,
        *,
        client_id: str = "connector-client",
        client_secret: str = "sandbox-secret",
        tpl: str = DEFAULT_TPL,
        user_login_id: int = 42,
        customer_id: int = 17,
        customer_name: str = "Acme Pet Supply",
        facilities: dict[int, str] | None = None,
        products: list[str] | tuple[str, ...] = ("SKU-1", "SKU-2", "SKU-3"),
        token_ttl_s: float = 1800.0,
        unique_references: bool = True,
        split_every: int = 0,  # every Nth order (by creation) ships in two packages
        void_every: int = 0,  # every Nth order has its first label voided, then is repacked
        faults: Faults | None = None,
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.tpl = tpl.strip().strip("{}").lower()
        self.user_login_id = user_login_id
        self.customer_id, self.customer_name = customer_id, customer_name
        self.facilities = dict(facilities or DEFAULT_FACILITIES)
        self.token_ttl_s = token_ttl_s
        self.unique_references = unique_references
        self.split_every, self.void_every = split_every, void_every
        self._lock = threading.Lock()
        self._seq = {"order": 5000, "item": 90000, "package": 700000, "content": 800000, "sku": 300}
        self.items: dict[str, dict[str, Any]] = {}  # by SKU
        for sku in products:
            self.add_item(sku)
        self.stock: dict[str, dict[int, dict[str, int]]] = {}  # sku -> facility -> quantities
        self.orders: dict[int, dict[str, Any]] = {}  # by OrderId (references may repeat)
        self.plans: dict[str, ShipPlan] = {}
        self.tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.tokens_issued = 0
        self.create_attempts: dict[str, int] = defaultdict(int)
        self.create_count = 0
        self.requests: dict[str, int] = defaultdict(int)
        self.faults = faults or Faults()
        routes = [
            Route("/AuthServer/api/Token", self._token, methods=["POST"]),
            Route("/customers/{customer_id}", self._customer, methods=["GET"]),
            Route("/customers/{customer_id}/items", self._items, methods=["GET"]),
            Route("/orders", self._create_order, methods=["POST"]),
            Route("/orders", self._list_orders, methods=["GET"]),
            Route("/inventory/stocksummaries", self._stock_summaries, methods=["GET"]),
            *control_routes(self, stock_entry=lambda e: (str(e["sku"]), int(e["facility_id"]), int(e["available"]), e.get("on_hand"))),
            Route("/_sandbox/cancel", self._control_cancel, methods=["POST"]),
            Route("/_sandbox/expire_tokens", self._control_expire, methods=["POST"]),
        ]
        # Extensiv sends no rate headers: the edge only counts requests (the demo prints them).
        self.app = Edge(FaultMiddleware(Starlette(routes=routes), self.faults), self._count_request)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    def add_item(self, sku: str, *, active: bool = True) -> None:
        """Add an item to the customer's catalogue (a deactivated one refuses orders)."""
        with self._lock:
            self._add_item(sku, active)

    def set_stock(self, sku: str, facility_id: int, available: int, on_hand: int | None = None) -> None:
        """Put stock on a facility's shelf (on hand defaults to available; the rest is allocated)."""
        with self._lock:
            self.facilities.setdefault(facility_id, f"Facility {facility_id}")
            if sku not in self.items:
                self._add_item(sku, True)
            on_hand = available if on_hand is None else on_hand
            self.stock.setdefault(sku, {})[facility_id] = {"available": available, "on_hand": on_hand, "allocated": max(0, on_hand - available)}

    def ship_all(self) -> list[dict[str, Any]]:
        """Close every open order now; returns the new packages."""
        with self._lock:
            return [p for oid in list(self.orders) for p in self._ship(oid)]

    def ship(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for oid in self._ids_of(reference) for p in self._ship(oid)]

    def cancel(self, reference: str) -> None:
        with self._lock:
            for oid in self._ids_of(reference):
                ro = self.orders[oid]["ReadOnly"]
                if not ro["IsClosed"]:
                    self._release(self.orders[oid])
                    ro.update(Status=2, IsClosed=True, LastModifiedDate=_stamp(_now()))

    def expire_tokens(self) -> None:
        """Every issued token stops working (as when Extensiv revokes or they lapse)."""
        with self._lock:
            self.tokens.clear()

    def create(self, body: Any) -> dict[str, Any]:
        """What `POST /orders` does (raises ApiError); tests use it to add another channel's order."""
        with self._lock:
            return self._create(body)

    def orders_with_reference(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(self.orders[oid]) for oid in self._ids_of(reference)]

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "orders": {
                    str(oid): {"reference": o["ReferenceNum"], "status": o["ReadOnly"]["Status"], "closed": o["ReadOnly"]["IsClosed"],
                               "packages": copy.deepcopy(o["ReadOnly"]["Packages"])}
                    for oid, o in self.orders.items()
                },
                "create_attempts": dict(self.create_attempts),
                "create_count": self.create_count,
                "tokens_issued": self.tokens_issued,
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
                "items": sorted(self.items),
                "stock": {sku: {str(f): q for f, q in fs.items()} for sku, fs in self.stock.items()},
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _next(self, kind: str) -> int:
        self._seq[kind] += 1
        return self._seq[kind]

    def _add_item(self, sku: str, active: bool) -> None:
        self.items[sku] = {
            "ItemId": self._next("sku"),
            "Sku": sku,
            "Description": sku,
            "ReadOnly": {"Deactivated": not active, "CustomerIdentifier": {"Id": self.customer_id}},
        }

    def _count_request(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[f"{method} {path}"] += 1

    def _ids_of(self, reference: str) -> list[int]:
        return [oid for oid, o in self.orders.items() if o["ReferenceNum"] == reference]

    def _check_token(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self._lock:
            expiry = self.tokens.get(token)
            if expiry is None or expiry <= time.monotonic():
                self.tokens.pop(token, None)
                raise ApiError(401)

    def _allocate(self, order: dict[str, Any]) -> None:
        facility = order["ReadOnly"]["FacilityIdentifier"]["Id"]
        for item in order["OrderItems"]:
            q = self.stock.get(item["ItemIdentifier"]["Sku"], {}).get(facility)
            if q:
                take = min(q["available"], int(item["Qty"]))
                q["available"] -= take
                q["allocated"] += take
                item["_allocated"] = take

    def _release(self, order: dict[str, Any]) -> None:
        facility = order["ReadOnly"]["FacilityIdentifier"]["Id"]
        for item in order["OrderItems"]:
            q = self.stock.get(item["ItemIdentifier"]["Sku"], {}).get(facility)
            if q and item.get("_allocated"):
                q["available"] += item["_allocated"]
                q["allocated"] = max(0, q["allocated"] - item["_allocated"])
                item["_allocated"] = 0

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidJson", "the body must be an order object")
        if _ci(body, "customerIdentifier", "id") != self.customer_id:
            raise ApiError(400, "CustomerNotFound", "customerIdentifier does not name a customer this user can access",
                           {"customerIdentifier": _ci(body, "customerIdentifier")})
        if _ci(body, "facilityIdentifier", "id") not in self.facilities:
            raise ApiError(400, "FacilityNotFound", "facilityIdentifier does not name a facility of this customer",
                           {"facilityIdentifier": _ci(body, "facilityIdentifier")})
        if not str(_ci(body, "referenceNum") or "").strip():
            raise ApiError(400, "Validation", "referenceNum is required", {"field": "referenceNum"})
        ship_to = _ci(body, "shipTo") or {}
        for field in ("companyName", "address1", "city", "country"):
            if not str(_ci(ship_to, field) or "").strip():
                raise ApiError(400, "Validation", f"shipTo.{field} is required", {"field": f"shipTo.{field}"})
        items = _ci(body, "orderItems")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "Validation", "an order needs at least one orderItems entry", {"field": "orderItems"})
        for i, item in enumerate(items):
            sku = str(_ci(item, "itemIdentifier", "sku") or "")
            known = self.items.get(sku)
            if known is None or known["ReadOnly"]["Deactivated"]:
                raise ApiError(400, "ItemNotFound", f"no active item with SKU '{sku}' for customer {self.customer_id}", {"sku": sku})
            qty = _ci(item, "qty")
            if not isinstance(qty, int | float) or qty <= 0:
                raise ApiError(400, "Validation", f"orderItems[{i}].qty must be greater than 0", {"field": f"orderItems[{i}].qty"})

    def _create(self, body: Any) -> dict[str, Any]:
        ref = str(_ci(body, "referenceNum") or "").strip() if isinstance(body, dict) else ""
        if ref:
            self.create_attempts[ref] += 1
        self._validate(body)
        if self.unique_references and self._ids_of(ref):
            raise ApiError(400, "DuplicateReferenceNum", f"reference number {ref} is already in use for customer {self.customer_id}",
                           {"referenceNum": ref})
        now = _stamp(_now())
        oid = self._next("order")
        facility = _ci(body, "facilityIdentifier", "id")
        routing = _ci(body, "routingInfo") or {}
        ship_to = _ci(body, "shipTo") or {}
        self.create_count += 1
        order = {
            "ReadOnly": {
                "OrderId": oid,
                "CustomerIdentifier": {"Id": self.customer_id, "Name": self.customer_name},
                "FacilityIdentifier": {"Id": facility, "Name": self.facilities[facility]},
                "CreationDate": now,
                "LastModifiedDate": now,
                "IsClosed": False,
                "Status": 0,
                "ProcessDate": None,
                "FullyAllocated": False,
                "Packages": [],
                "TransactionEntryType": 4,  # api
            },
            "ReferenceNum": ref,
            "PoNum": str(_ci(body, "poNum") or ""),
            "Notes": str(_ci(body, "notes") or ""),
            "EarliestShipDate": _ci(body, "earliestShipDate"),
            "RoutingInfo": {
                "Carrier": str(_ci(routing, "carrier") or ""),
                "Mode": str(_ci(routing, "mode") or ""),
                "ScacCode": str(_ci(routing, "scacCode") or ""),
                "TrackingNumber": "",
            },
            "ShipTo": {k[:1].upper() + k[1:]: v for k, v in ship_to.items()},
            "FulfillInvInfo": {"FulfillInvGiftMessage": str(_ci(body, "fulfillInvInfo", "fulfillInvGiftMessage") or "")},
            "OrderItems": [
                {
                    "ReadOnly": {"OrderItemId": self._next("item")},
                    "ItemIdentifier": {"Sku": str(_ci(i, "itemIdentifier", "sku")), "Id": self.items[str(_ci(i, "itemIdentifier", "sku"))]["ItemId"]},
                    "Qty": _ci(i, "qty"),
                }
                for i in _ci(body, "orderItems")
            ],
            "_seq": self.create_count,
        }
        self._allocate(order)
        order["ReadOnly"]["FullyAllocated"] = all(i.get("_allocated") == i["Qty"] for i in order["OrderItems"])
        self.orders[oid] = order
        return self._public(order, detail="All")

    def _package(self, order: dict[str, Any], lines: list[tuple[int, str, int]], tracking: str) -> dict[str, Any]:
        pid = self._next("package")
        return {
            "PackageId": pid,
            "PackageTypeId": 1,
            "TrackingNumber": tracking,
            "Weight": 1.5,
            "CreateDate": _stamp(_now()),
            "PackageContents": [
                {"PackageContentId": self._next("content"), "PackageId": pid, "OrderItemId": item_id, "Qty": qty}
                for item_id, _, qty in lines
            ],
        }

    def _ship(self, oid: int) -> list[dict[str, Any]]:
        order = self.orders[oid]
        ro = order["ReadOnly"]
        if ro["IsClosed"]:
            return []
        plan = ShipPlan.pick(self.plans, order["ReferenceNum"], order["_seq"], self.split_every, self.void_every)
        lines = [(i["ReadOnly"]["OrderItemId"], i["ItemIdentifier"]["Sku"], int(i["Qty"])) for i in order["OrderItems"]]
        groups = halves(lines, lambda line: line[2], lambda line, q: (line[0], line[1], q)) if plan.split else [lines]
        labels = iter(range(1, 10))

        def tracking() -> str:
            return plan.tracking if plan.tracking is not None else f"1ZEXT{oid:08d}{next(labels):02d}"

        packages = []
        if plan.void_first:
            voided = self._package(order, lines, tracking())
            # Voiding the label clears the package's tracking number; the goods are repacked.
            voided.update(TrackingNumber="", PackageContents=[])
            packages.append(voided)
        packages += [self._package(order, group, tracking()) for group in groups]
        now = _stamp(_now())
        live = next((p["TrackingNumber"].strip() for p in packages if p["TrackingNumber"].strip()), "")
        order["RoutingInfo"]["TrackingNumber"] = live
        ro.update(Packages=packages, IsClosed=True, Status=1, ProcessDate=now, LastModifiedDate=now)
        facility = ro["FacilityIdentifier"]["Id"]
        for item in order["OrderItems"]:
            q = self.stock.get(item["ItemIdentifier"]["Sku"], {}).get(facility)
            if q:
                q["on_hand"] = max(0, q["on_hand"] - int(item["Qty"]))
                q["allocated"] = max(0, q["allocated"] - int(item.get("_allocated") or 0))
                item["_allocated"] = 0
        return copy.deepcopy(packages)

    def _public(self, order: dict[str, Any], detail: str = "") -> dict[str, Any]:
        """The order as Extensiv shows it: details only when asked for (`detail=All` or a list)."""
        wanted = {d.strip().lower() for d in detail.split(",") if d.strip()}
        everything = "all" in wanted
        out = copy.deepcopy({k: v for k, v in order.items() if not k.startswith("_")})
        for item in out["OrderItems"]:
            item.pop("_allocated", None)
        if not (everything or "orderitems" in wanted):
            out.pop("OrderItems")
        if not (everything or "packages" in wanted):
            out["ReadOnly"].pop("Packages")
        out["_links"] = {"self": {"href": f"/orders/{order['ReadOnly']['OrderId']}"}}
        return out

    # -- API handlers -------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":") if header[:6].lower() == "basic " else ("", "", "")
        except ValueError:
            client_id, secret = "", ""
        if (client_id, secret) != (self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_request", "error_description": "a JSON body is required"}, status_code=400)
        if _ci(body, "grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if str(_ci(body, "tpl") or "").strip().strip("{}").lower() != self.tpl:
            return JSONResponse({"error": "invalid_grant", "error_description": "unknown tpl"}, status_code=400)
        if str(_ci(body, "user_login_id") or "").strip() != str(self.user_login_id):
            return JSONResponse({"error": "invalid_grant", "error_description": "unknown user_login_id"}, status_code=400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_ttl_s
            self.tokens_issued += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl_s), "refresh_token": None, "scope": None})

    def _guarded(self, request: Request, customer: bool = False) -> None:
        self._check_token(request)
        if customer and request.path_params.get("customer_id") != str(self.customer_id):
            raise ApiError(404, "CustomerNotFound", f"customer {request.path_params.get('customer_id')} not found")

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        q = request.query_params
        try:
            size = int(q.get("pgsiz") or 100)
            page = int(q.get("pgnum") or 1)
        except ValueError:
            raise ApiError(400, "Validation", "pgsiz and pgnum must be integers") from None
        if size < 1 or size > 1000 or page < 1:
            raise ApiError(400, "Validation", "pgsiz must be 1..1000 and pgnum >= 1")
        return size, page

    async def _customer(self, request: Request) -> Response:
        try:
            self._guarded(request, customer=True)
        except ApiError as exc:
            return exc.response()
        with self._lock:
            facilities = [{"Id": f, "Name": n} for f, n in self.facilities.items()]
        return _hal({
            "ReadOnly": {"CustomerId": self.customer_id, "Deactivated": False},
            "CompanyInfo": {"CompanyName": self.customer_name},
            "Facilities": facilities,
            "PrimaryFacilityIdentifier": facilities[0] if facilities else None,
            "_links": {"self": {"href": f"/customers/{self.customer_id}"}},
        })

    async def _items(self, request: Request) -> Response:
        try:
            self._guarded(request, customer=True)
            size, page = self._paging(request)
        except ApiError as exc:
            return exc.response()
        with self._lock:
            items = sorted(self.items.values(), key=lambda i: i["ItemId"])  # re-adding an item gives it a new id
            return _hal({"TotalResults": len(items), "ResourceList": [copy.deepcopy(i) for i in items[(page - 1) * size : page * size]]})

    async def _create_order(self, request: Request) -> Response:
        try:
            self._check_token(request)
            kind = request.headers.get("content-type", "")
            if "json" not in kind:
                raise ApiError(415, "UnsupportedMediaType", f"content type {kind!r}; send application/hal+json")
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "InvalidJson", "the body is not JSON") from None
            with self._lock:
                created = self._create(body)
        except ApiError as exc:
            return exc.response()
        location = f"/orders/{created['ReadOnly']['OrderId']}"
        return _hal(created, 201, headers={"Location": location, "ETag": f'"{created["ReadOnly"]["LastModifiedDate"]}"'})

    async def _list_orders(self, request: Request) -> Response:
        q = request.query_params
        try:
            self._check_token(request)
            size, page = self._paging(request)
            clauses = rql_filter(q.get("rql", ""))
            sort = (q.get("sort") or "ReadOnly.OrderId").strip()
            descending = sort.startswith("-")
            with self._lock:
                orders = list(self.orders.values())
                selected = [o for o in orders if _matches(o, clauses)]
                selected.sort(key=lambda o: _order_field(o, sort.lstrip("-+"))[0], reverse=descending)
                chunk = [self._public(o, q.get("detail", "")) for o in selected[(page - 1) * size : page * size]]
        except ApiError as exc:
            return exc.response()
        return _hal({"TotalResults": len(selected), "ResourceList": chunk, "_links": {"self": {"href": str(request.url)}}})

    async def _stock_summaries(self, request: Request) -> Response:
        q = request.query_params
        try:
            self._check_token(request)
            size, page = self._paging(request)
            customer = q.get("customerid")
            facility = q.get("facilityid")
            if customer and customer != str(self.customer_id):
                raise ApiError(400, "CustomerNotFound", f"customer {customer} not found")
        except ApiError as exc:
            return exc.response()
        with self._lock:
            shelves = [(sku, f, quantities) for sku in sorted(self.stock, key=lambda s: self.items[s]["ItemId"])
                       for f, quantities in sorted(self.stock[sku].items()) if not facility or str(f) == facility]
            rows = [
                {
                    "FacilityId": f,
                    "ItemIdentifier": {"Sku": sku, "Id": self.items[sku]["ItemId"]},
                    "Qualifier": "",
                    "TotalReceived": quantities["on_hand"],
                    "Allocated": quantities["allocated"],
                    "Available": quantities["available"],
                    "OnHold": max(0, quantities["on_hand"] - quantities["available"] - quantities["allocated"]),
                    "OnHand": quantities["on_hand"],
                }
                for sku, f, quantities in shelves[(page - 1) * size : page * size]  # only the page asked for
            ]
        return _hal({"TotalResults": len(shelves), "Summaries": rows})

    # -- control API --------------------------------------------------------------------------

    async def _control_cancel(self, request: Request) -> Response:
        body = await request.json()
        self.cancel(str(body.get("reference") or ""))
        return JSONResponse({"cancelled": body.get("reference")})

    async def _control_expire(self, request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"tokens": 0})


# -- kit -------------------------------------------------------------------------------------


def route_for(method: str) -> str:
    """A cart-side method name as an Extensiv `Carrier|Mode` value (kept when it already is one)."""
    return method if "|" in method else DEFAULT_ROUTES.get(method, f"UPS|{method}")


class ExtensivKit(SandboxKit):
    """The Extensiv sandbox as a `connector.sandbox.kits.WarehouseKit`."""

    name = "extensiv"
    routes = {  # no "ack", "ship_methods": Extensiv has neither
        "create": ("POST", "/orders"),
        "find": ("GET", "/orders"),
        "shipments": ("GET", "/orders"),
        "stock": ("GET", "/inventory/stocksummaries"),
        "skus": ("GET", "/customers/"),
    }

    def __init__(self, sandbox: ExtensivSandbox, ship_methods: tuple[str, ...], skus: tuple[str, ...] = ()):
        super().__init__(sandbox, tuple(route_for(m) for m in ship_methods), skus or tuple(sandbox.items))

    def warehouse_config(self, base_url: str, workdir) -> dict[str, Any]:
        sb = self.sandbox
        return {
            "adapter": "extensiv",
            "base_url": base_url,
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
            "tpl": "{" + sb.tpl + "}",
            "user_login_id": sb.user_login_id,
            "customer_id": sb.customer_id,
            "facility_id": next(iter(sb.facilities)),
        }

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.sandbox.set_stock(sku, int(warehouse_id), available, on_hand)

    def orders_created(self, reference: str) -> int:
        # Counted from the orders themselves, not the refusals: with the customer's unique
        # reference option off a repeat would really be a second order.
        return len(self.sandbox.orders_with_reference(reference))

    def warehouse_ids(self) -> list[str]:
        return [str(f) for f in self.sandbox.facilities]


def kit(*, products, ship_methods, credential: str = "sandbox-secret", **kw: Any) -> ExtensivKit:
    """An Extensiv sandbox kit (demo, bench, pipeline tests); `credential` is the client secret."""
    kw = {**DEMO_PLAN, **kw}
    return ExtensivKit(ExtensivSandbox(client_secret=credential, products=tuple(products), **kw), tuple(ship_methods), tuple(products))
