"""``matloop config show``: every setting, its value and where it came from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from matloop.app.cli_support import out, print_json

config_app = typer.Typer(no_args_is_help=True,
                         help="Settings: environment, .env, config file and defaults.")


@config_app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print each setting, its value and its source (precedence: command-line arguments >
    environment > .env > config file > defaults; secrets are masked)."""
    from matloop.config import config_file, describe_settings

    rows = describe_settings()
    path = config_file()
    if as_json:
        print_json({"config_file": str(path) if path else None, "settings": rows})
        return
    table = Table(title="matloop settings")
    for col in ("setting", "environment variable", "value", "from", "meaning"):
        table.add_column(col)
    for r in rows:
        value = "" if r["value"] is None else str(r["value"])
        table.add_row(r["name"], r["env"], escape(value), escape(r["origin"]),
                      escape(r["description"]))
    out.print(table)
    out.print(f"config file: {escape(str(path)) if path else 'none'} (MATLOOP_CONFIG, "
              "./matloop.toml or ~/.config/matloop/config.toml); .env is read from the working "
              "directory", soft_wrap=True)
