"""The ``tessera`` subcommands by area: each module has ``add_parser(sub)``."""
