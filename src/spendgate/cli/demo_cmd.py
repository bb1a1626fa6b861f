"""``spendgate demo``: the mock upstream and the gateway on the built-in demo config, a short
burst of varied traffic, a summary, then serving until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo_command"]


def demo_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Gateway port.")] = 8787,
    mock_port: Annotated[
        int, typer.Option("--mock-port", min=1, max=65535, help="Mock upstream port.")
    ] = 9100,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after the burst.")
    ] = True,
) -> None:
    """Start the mock upstream and the gateway, send varied traffic, show what happened."""
    from spendgate.cli.demo_run import run_demo

    run_demo(port, mock_port, serve)
