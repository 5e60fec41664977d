"""``zoo serve``: run the HTTP shim with uvicorn."""
from __future__ import annotations

from zoo.errors import ZooError, require


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", default=None, help="registry URI (default: the local registry)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="also serve a checkpoint directory under NAME (repeatable)")
    parser.add_argument("--capacity", type=int, default=4, help="generators kept loaded (LRU)")
    parser.add_argument("--device", default="cpu")


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ZooError(f"--checkpoint expects NAME=DIR, got {item!r}")
        out[name] = path
    return out


def run(args) -> int:
    uvicorn = require("uvicorn", "serve", "the HTTP server")
    from serve.app import create_app

    app = create_app(parse_checkpoints(args.checkpoint), args.registry, args.capacity, args.device)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
