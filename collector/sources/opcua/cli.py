"""Commands for `smeltwatch collect`: `discover ENDPOINT` (a binding skeleton from a browse) and
`certs list | trust | reject` (the OPC UA trust store). Errors are one line on stderr and exit
code 1, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from collector.sources.opcua.discover import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    DiscoverError,
    discover,
    render_yaml,
)
from collector.sources.opcua.pki import (
    DEFAULT_PKI_DIR,
    CertificateInfo,
    OpcUaSecurityError,
    Pki,
)

PASSWORD_ENV = "SMELTWATCH_OPCUA_PASSWORD"
T = TypeVar("T")


PkiDir = Annotated[Path, typer.Option("--pki-dir", envvar="SMELTWATCH_OPCUA_PKI_DIR",
                                      help="the collector's PKI directory (own/, trusted/, "
                                      "rejected/)")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(1)


def _run(action: Callable[[], T]) -> T:
    """Run `action`; any error becomes one line on stderr and exit code 1."""
    try:
        return action()
    except (OpcUaSecurityError, DiscoverError, OSError) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # a bug: still one line (the traceback with --verbose)
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        raise _fail(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for "
                    "details)") from None


@contextmanager
def _quiet_asyncua() -> Iterator[None]:
    """asyncua logs refused connections at ERROR; our one-line error says it better."""
    logger = logging.getLogger("asyncua")
    before = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


def parse_age(text: str) -> timedelta:
    """`90` (seconds), `90s`, `30m`, `1h`, `2d`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise DiscoverError(f"--cache-max-age {text!r}: give a duration such as 90s, 30m, 1h "
                            "or 2d")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=float(match.group(1)) * factor)


def discover_command(
    endpoint: Annotated[str, typer.Argument(help="the server, opc.tcp://host:port")],
    security: Annotated[str, typer.Option(
        help="none | sign | sign_encrypt (Basic256Sha256) | auto (the strongest offered)")
    ] = "auto",
    pki_dir: PkiDir = DEFAULT_PKI_DIR,
    username: Annotated[str | None, typer.Option(
        envvar="SMELTWATCH_OPCUA_USERNAME",
        help=f"user name (the password comes from {PASSWORD_ENV})")] = None,
    max_depth: Annotated[int, typer.Option(help="levels below the root")
                         ] = DEFAULT_MAX_DEPTH,
    max_nodes: Annotated[int, typer.Option(help="objects and variables to list at most")
                         ] = DEFAULT_MAX_NODES,
    root: Annotated[str | None, typer.Option(
        help="browse from this node (nsu=<uri>;s=<id>) instead of Objects")] = None,
    cache_dir: Annotated[Path, typer.Option(help="where browse results are cached")
                         ] = DEFAULT_CACHE_DIR,
    cache_max_age: Annotated[str, typer.Option(
        help="reuse a cached browse younger than this (90s, 30m, 1h)")] = "1h",
    refresh: Annotated[bool, typer.Option(help="browse again, whatever the cache")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write the skeleton here instead of to stdout")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 10.0,
) -> None:
    """Browse an OPC UA server and print a binding skeleton for the plant YAML."""
    password = os.environ.get(PASSWORD_ENV)

    def run() -> tuple[str, str]:
        max_age = parse_age(cache_max_age)
        with _quiet_asyncua():
            found = asyncio.run(discover(
                endpoint, security=security, pki=Pki(pki_dir), username=username,
                password=password, max_depth=max_depth, max_nodes=max_nodes, root=root,
                cache_dir=cache_dir, cache_max_age=max_age, refresh=refresh,
                request_timeout_s=timeout))
        text = render_yaml(found)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        r = found.result
        origin = (f"from the cache {found.cache_file}" if found.from_cache
                  else f"browsed, cached in {found.cache_file}")
        summary = f"{len(r.variables)} variables of {endpoint} ({origin})"
        if r.cut_by_max_nodes:
            summary += (f"; warning: --max-nodes {r.max_nodes} cut the browse short, the "
                        "server has more")
        if r.beyond_max_depth:
            summary += (f"; warning: {r.beyond_max_depth} node(s) deeper than --max-depth "
                        f"{r.max_depth} left out")
        return text, summary if output is None else f"{summary}; skeleton written to {output}"

    text, summary = _run(run)
    if output is None:
        typer.echo(text, nl=False)
    typer.echo(summary, err=True)


certs_app = typer.Typer(help="The collector's OPC UA certificate and the server certificates "
                             "it trusts.", no_args_is_help=True)


@certs_app.command("list")
def list_command(pki_dir: PkiDir = DEFAULT_PKI_DIR) -> None:
    """Show the collector's own certificate (made now if missing) and the trusted and rejected
    server certificates."""
    pki = Pki(pki_dir)
    own = _run(pki.own_certificate)
    listing = _run(pki.listing)
    typer.echo(f"own certificate: {own.cert_path}  thumbprint {own.thumbprint}  "
               f"{own.application_uri}" + (f"  until {_date(listing.own.not_after)}"
                                           if listing.own else ""))
    typer.echo("  (give this file to each server that must trust the collector)")
    typer.echo(f"trusted server certificates ({pki.trusted_dir}):")
    _echo_certs(listing.trusted)
    typer.echo(f"rejected server certificates ({pki.rejected_dir}; trust one with "
               f"'{pki.trust_command('<THUMBPRINT>')}'):")
    _echo_certs(listing.rejected)


@certs_app.command("trust")
def trust_command(
    certificate: Annotated[str, typer.Argument(
        metavar="THUMBPRINT|FILE",
        help="a rejected certificate's thumbprint (8 hex digits or more), or a certificate "
             "file (DER or PEM)")],
    pki_dir: PkiDir = DEFAULT_PKI_DIR,
) -> None:
    """Trust a server certificate: from rejected/ by thumbprint, or from a file."""
    path = _run(lambda: Pki(pki_dir).trust(certificate))
    typer.echo(f"trusted: {path}")


@certs_app.command("reject")
def reject_command(
    thumbprint: Annotated[str, typer.Argument(help="8 hex digits of the thumbprint or more")],
    pki_dir: PkiDir = DEFAULT_PKI_DIR,
) -> None:
    """Stop trusting a server certificate (moved to rejected/)."""
    path = _run(lambda: Pki(pki_dir).reject(thumbprint))
    typer.echo(f"rejected: {path}")


def _echo_certs(certs: list[CertificateInfo]) -> None:
    if not certs:
        typer.echo("  (none)")
    now = datetime.now(UTC)
    for c in certs:
        problem = c.validity(now)
        typer.echo(f"  {c.thumbprint}  {c.subject}  until {_date(c.not_after)}"
                   + (f"  [{problem}]" if problem else "") + f"  {c.path.name}")


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")
