"""Operator command line: ``recovery --help``. Each command group is a module of this package.

Errors print one line on stderr and exit with status 1 (no stack traces).
"""

from __future__ import annotations

import typer

from cli import cases, dev, fees, incidents, notifications, scan, staff, support, users
from cli.common import exit_hard_after_temporal

app = typer.Typer(
    name="recovery",
    help="Mis-deposit recovery engine: users, cases, fees, incidents, notifications and dev tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(users.app, name="users")
app.add_typer(cases.app, name="case")
app.add_typer(dev.app, name="dev")
app.add_typer(fees.app, name="fees")
app.add_typer(staff.app, name="staff")
app.add_typer(support.app, name="support")
app.add_typer(incidents.app, name="incidents")
app.add_typer(notifications.app, name="notifications")
app.command("scan")(scan.scan)


def main() -> None:
    """The ``recovery`` program."""
    exit_hard_after_temporal()
    app()


if __name__ == "__main__":
    main()
