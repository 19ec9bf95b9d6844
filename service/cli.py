"""`rlvr serve [--host --port --workers ...]`: flags mirror the RLVR_ settings."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description="Reward and verification service for RLVR.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="address to bind (RLVR_HOST)")
    serve.add_argument("--port", type=int, help="port (RLVR_PORT)")
    serve.add_argument("--workers", type=int, help="CPU worker processes (RLVR_WORKERS)")
    serve.add_argument("--chunk-size", type=int, help="items per worker chunk (RLVR_CHUNK_SIZE)")
    serve.add_argument("--cache-size", type=int, help="result cache entries (RLVR_CACHE_SIZE)")
    serve.add_argument(
        "--sandbox-backend", choices=["auto", "docker", "bubblewrap", "none"], help="RLVR_SANDBOX_BACKEND"
    )
    serve.add_argument("--sandbox-pool-size", type=int, help="warm sandboxes (RLVR_SANDBOX_POOL_SIZE)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="RLVR_LOG_LEVEL")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    overrides = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
