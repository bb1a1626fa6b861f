"""``spendgate mock-upstream``: serve the fake OpenAI / Anthropic provider over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from typing import Annotated, cast

import typer

__all__ = ["mock_upstream_command"]


def mock_upstream_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 9100,
    latency_ms: Annotated[
        float, typer.Option(min=0, help="Delay before each completion's first byte.")
    ] = 20.0,
    error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of completions answered with a 500.")
    ] = 0.0,
    stream_chunks: Annotated[
        int, typer.Option(min=1, help="Content deltas per streamed answer.")
    ] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the generated text and error draws.")] = 0,
    output_tokens: Annotated[
        int, typer.Option(min=1, help="Mean answer length in tokens (0.5x to 1.5x per prompt).")
    ] = 60,
    chunk_delay_ms: Annotated[
        float, typer.Option(min=0, help="Delay between consecutive SSE events.")
    ] = 0.0,
    model: Annotated[
        list[str] | None,
        typer.Option(help="A model GET /v1/models lists (repeatable; default: a built-in set)."),
    ] = None,
    allow_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-anonymous", help="Accept requests without any credential instead of a 401."
        ),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option("--access-log", help="Log one line per request (never any header value)."),
    ] = False,
) -> None:
    """Serve a fake LLM provider speaking the OpenAI and Anthropic APIs.

    OpenAI clients use http://HOST:PORT/v1, Anthropic clients http://HOST:PORT.

    Answers are deterministic for a seed and a prompt, with usage consistent with the text.

    Runs until Ctrl-C. Options, x-mock-* headers and token rule: docs/mock-upstream.md.
    """
    from spendgate.mock_upstream import DEFAULT_MODELS, MockOptions, MockUpstream

    try:
        options = MockOptions(
            latency_ms=latency_ms,
            error_rate=error_rate,
            stream_chunks=stream_chunks,
            seed=seed,
            output_tokens=output_tokens,
            chunk_delay_ms=chunk_delay_ms,
            models=tuple(model) if model else DEFAULT_MODELS,
            require_auth=not allow_anonymous,
            history=0,  # nobody can read it from outside the process: don't pay for it
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    mock = MockUpstream(host=host, port=port, options=options, access_log=access_log)

    async def serve() -> None:
        stopping = asyncio.Event()
        # Ctrl-C cancels this task; SIGTERM (how scripts stop it) ends it cleanly too.
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        await mock.start()
        typer.echo(
            f"spendgate mock upstream on {mock.base_url} "
            f"(OpenAI base URL {mock.openai_base_url}, Anthropic base URL {mock.base_url})"
        )
        try:
            await stopping.wait()
        finally:
            await mock.stop()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as error:  # typically: the port is taken
        typer.echo(f"mock upstream: cannot listen on {host}:{port}: {error.strerror}", err=True)
        raise typer.Exit(1) from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (noticeably faster under load), else asyncio's."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)
