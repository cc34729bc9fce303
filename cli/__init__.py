"""The operator command line, ``recovery --help``: one module per command group, assembled in ``cli.app``."""
