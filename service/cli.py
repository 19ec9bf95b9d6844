"""`rlvr serve [--workers N --sandbox-pool-size N ...]`: one flag per setting, generated from the settings model.

A flag beats its ``RLVR_*`` variable, which beats the default. A bad value (a flag, a variable or a profile)
ends the command with one line naming it, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from service.settings import FIELDS, Settings, nested_values

__all__ = ["main", "parser"]


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
        import uvicorn

        from service.app import create_app

        app = create_app(settings)
    except ValidationError as exc:
        sys.exit(_describe(exc))
    except ProfileError as exc:
        sys.exit(f"rlvr: {exc}")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
