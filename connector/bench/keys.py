"""`python -m connector.bench.keys ultracart --api-key K ...`: the UltraCart sandbox process of
`connector.sandbox.serve` (same arguments), where every key `K-<anything>` is accepted as `K`.

The idle phase gives each of 1,000 merchants its own credential, as a 3PL's merchants have, so the
connector keeps one rate limiter and one connection pool per key; the sandbox holds one key, and
this process maps the others onto it before the sandbox checks them."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from connector.sandbox import serve

KEY_HEADER = b"x-ultracart-simple-key"


def main(argv: list[str] | None = None) -> None:
    args = serve.parse_args(argv)
    if args.kind != "ultracart":
        raise SystemExit("only the ultracart sandbox has per-merchant keys here")
    inner = serve.UltraCartProcess(args)
    key, prefix = args.api_key.encode(), (args.api_key + "-").encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope, headers=[(n, key) if n == KEY_HEADER and v.startswith(prefix) else (n, v) for n, v in scope["headers"]])
        await inner(scope, receive, send)

    serve.serve_blocking(app, args.host, args.port, args.ready_file)


if __name__ == "__main__":
    main()
