"""`hailuo-batch` and `python -m runner`. A Ctrl-C while the command's modules load, before it
has begun anything, ends it as one at any later moment does: with 130 and no traceback."""

import signal
import sys


def command() -> None:
    try:
        from runner.cli import command as begin
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    begin()


if __name__ == "__main__":
    command()
