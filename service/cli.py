"""`rlvr serve [--workers N --sandbox-pool-size N ...]`: one flag per setting, generated from the settings model.

A flag beats its ``RLVR_*`` variable, which beats the default. A bad value (a flag, a variable or a profile)
ends the command with one line naming it, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from service.settings import FIELDS, Settings, nested_values

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["main", "parser", "serve"]

STARTUP_FAILURE = 3  # uvicorn's exit code for a server that did not start


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rlvr", description="Reward and verification service for RLVR.")
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Serve the HTTP API. Every flag is also an environment variable (shown in brackets).",
    )
    for setting in FIELDS:
        help_text = f"{setting.info.description} [{setting.env}; default: {setting.shown_default()}]"
        serve.add_argument(
            setting.flag,
            dest=setting.dest,
            metavar=setting.path[-1].upper(),
            choices=setting.choices,
            help=help_text.replace("%", "%%"),
        )
    return top


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {dest: value for dest, value in vars(args).items() if dest != "command" and value is not None}
    return Settings(**nested_values(flags))


def _describe(exc: ValidationError) -> str:
    by_dest = {s.dest: s for s in FIELDS}
    lines = []
    for error in exc.errors():
        dest = ".".join(str(part) for part in error["loc"] if isinstance(part, str))
        setting = by_dest.get(dest)
        where = f"{setting.flag} / {setting.env}" if setting else dest
        lines.append(f"rlvr: {where}: {error['msg']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from service.specs import ProfileError

    try:
        settings = settings_from(args)
        from service.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        from service.app import create_app

        app = create_app(settings)
    except ValidationError as exc:
        sys.exit(_describe(exc))
    except ProfileError as exc:
        sys.exit(f"rlvr: {exc}")
    except OSError as exc:  # the tokens file, gone between the check and the read
        sys.exit(f"rlvr: {exc}")
    serve(app, settings)


def serve(app: FastAPI, settings: Settings) -> None:
    import uvicorn

    from service.server import GracefulServer

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to ours (service.logs), in the same format
        access_log=False,  # service.logs.RequestContext logs each request, with its request id
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
    )
    server = GracefulServer(config, app.state.rlvr.lifecycle)
    server.run()
    if not server.started:  # uvicorn.run's answer to a server that could not start (a port in use)
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
