"""``dotsctl``: the command line of DOTS Family Mode (see ``dotsctl --help``).

Errors the user must hear about (:class:`dots_cli.client.CliError`) are one
line on stderr and an exit code; never a traceback."""

from __future__ import annotations

import os
import sys

from .client import EXIT_FAILED, CliError


def main(argv: list[str] | None = None) -> None:
    from .app import PROG, app

    try:
        app(args=argv, prog_name=PROG)
    except CliError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # the reader went away (dotsctl ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("DOTSCTL_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} "
              "(DOTSCTL_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
