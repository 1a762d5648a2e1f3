"""The ``fundtrail`` command. Commands only translate: parse options, call one service, render.

Each area adds its commands in its own module (cli/ingest.py, cli/tags.py, …) through ``register(app)``.
Errors from the library are translated here, once, into a message and an exit code.
"""

from __future__ import annotations

import errno
import importlib
import sys

import typer
from rich.markup import escape

from fundtrail.cli.common import err_console, setup_logging
from fundtrail.errors import FundtrailError

app = typer.Typer(name="fundtrail", help="Open-source blockchain forensics: follow stolen funds to where they "
                  "are cashed out.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)

# the modules that add commands; each defines register(app)
COMMAND_MODULES = ("query", "ingest", "compact", "tags", "cluster", "trace", "report", "simulate", "stats",
                   "evidence")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr.")) -> None:
    setup_logging(verbose)


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"fundtrail.cli.{_name}")
    except ModuleNotFoundError as _e:  # an area not built yet
        if _e.name != f"fundtrail.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except FundtrailError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        return e.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise
        # a scratch or index write outside a commit (commits say this themselves, as WriteFailedError)
        err_console.print(f"[bold red]error:[/] {escape(str(e))}; nothing more was committed: the workspace keeps "
                          "its last committed state. Free space or make it writable and run again", highlight=False)
        return 5
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:
        # usage errors (unknown option, missing argument) come as click exceptions: click's own or the copy
        # newer typer releases vendor (typer._click), so they are recognised by what they offer
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
