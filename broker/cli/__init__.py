"""The ``tessera`` command line (``broker.cli.main``): commands by area in
``broker.cli.commands``, run through ``broker.cli.transport`` on the local deployment or a
remote broker's admin API."""

from broker.cli.main import main, parser

__all__ = ["main", "parser"]
