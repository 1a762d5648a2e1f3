"""The ``fundtrail`` command. Commands only translate: parse options, call one service, render.

Each area adds its commands in its own module (cli/ingest.py, cli/tags.py, …) through ``register(app)``.
Errors from the library are translated here, once, into a message and an exit code.
"""

from __future__ import annotations

import errno
import importlib
import signal
import sys
import threading

import typer
from rich.text import Text

from fundtrail.cli.common import err_console, setup_logging
from fundtrail.errors import FundtrailError

app = typer.Typer(name="fundtrail", help="Open-source blockchain forensics: follow stolen funds to where they "
                  "are cashed out.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)

# the modules that add commands; each defines register(app)
COMMAND_MODULES = ("query", "ingest", "compact", "tags", "cluster", "trace", "report", "simulate", "stats",
                   "evidence", "exposure", "screen", "keys", "policy", "audit", "serve", "follow", "alerts", "watch",
                   "users")


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


class Interrupted(BaseException):
    """Ctrl-C, raised by main()'s SIGINT handler. A BaseException of our own, so that neither click (which
    turns KeyboardInterrupt into a blank line and Abort) nor a command's cleanup code swallows it."""


INTERRUPTED = "interrupted; what was committed before it is kept (an ingest resumes after its last batch)"


def _on_sigint(signum: int, frame: object) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code: 0, a command's own (``typer.Exit``), the error's
    (``FundtrailError.exit_code``), 2 for usage errors, 130 for Ctrl-C (one line on stderr)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if main_thread else None
    try:
        return _run(argv)
    except (Interrupted, KeyboardInterrupt):
        err_console.print(INTERRUPTED, highlight=False, soft_wrap=True)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def _run(argv: list[str] | None) -> int:
    try:
        # standalone_mode=False: a command's typer.Exit(code) comes back as the return value
        rv = app(args=argv, standalone_mode=False)
    except FundtrailError as e:
        err_console.print(Text.assemble(("error:", "bold red"), " ", str(e)), highlight=False, soft_wrap=True)
        return e.exit_code
    except typer.Abort:
        err_console.print(INTERRUPTED, highlight=False, soft_wrap=True)
        return 130
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise
        # a scratch or index write outside a commit (commits say this themselves, as WriteFailedError)
        err_console.print(Text.assemble(("error:", "bold red"), f" {e}; nothing more was committed: the workspace "
                                        "keeps its last committed state. Free space or make it writable and run again"),
                          highlight=False, soft_wrap=True)
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
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
