"""Where the ``bridge`` options come from: command line, ``BRIDGE_*`` variables, a TOML file.

Every option of ``serve`` and ``call`` can come from the command line, from an environment
variable (``BRIDGE_`` + the option name in capitals, e.g. ``BRIDGE_BROKER``, shown in
``--help``) or from a TOML file given with ``--config`` / ``BRIDGE_CONFIG``, in that order of
precedence. Click does the first two; this module reads the file into click's ``default_map``.

File forms (all equivalent): options at the top level, or in a ``[bridge]`` table; any
sub-table (``[tls]``, ``[reference]``, ``[bridge.tls]``, ...) is flattened into its parent;
``-`` and ``_`` are the same in keys; ``allow_tokens`` is an alias of ``allow_token``. A key
that names no option of ``serve`` or ``call`` is an error naming the key, the file and the
nearest option; a ``BRIDGE_*`` variable that names no option gets a warning.

We keep this on click rather than pydantic-settings: click already owns the command line and
the environment (with their precedence, types and ``--help``); a second declaration of every
option in a settings model would have to be kept in step with click's by hand, and neither
would suggest the nearest option for a misspelt key or variable.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click
from click.core import ParameterSource

from .._redact import redact
from ..transports.mqtt import MqttSettings, parse_url

__all__ = [
    "ALIASES",
    "ConfigError",
    "LEVELS",
    "config_option",
    "environment_warnings",
    "known_envvars",
    "mqtt_options",
    "mqtt_settings",
    "read_config",
    "redacted",
    "setup_logging",
    "show_envvars",
    "url_user_wins",
]

LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)

#: Alternative spellings accepted in the file -> the option's name.
ALIASES = {"allow_tokens": "allow_token"}

#: Variables that are ours without being an option of ``serve`` or ``call``.
EXTRA_ENVVARS = frozenset({"BRIDGE_PASSWD_FILE"})


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def _nearest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_config(path: str, known: Iterable[str], table: str = "bridge") -> dict[str, Any]:
    """The option values of the TOML file ``path`` (keys normalised to option names).

    ``known`` is every option name a file may set; any other key raises :class:`ConfigError`.
    Options may sit at the top level or in a ``[table]`` of their own (``[bridge]``, ``[node]``).
    """
    known = set(known)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    tables: list[tuple[str, Mapping[str, Any]]] = []

    def collect(where: str, options: Mapping[str, Any]) -> None:
        tables.append((where, options))
        for key, value in options.items():
            if isinstance(value, dict):
                collect(f"{where}.{key}" if where else key, value)

    own = data.get(table)
    if own is not None and not isinstance(own, dict):
        raise ConfigError(f"{path}: {table!r} must be a table of options")
    collect("", data)
    values: dict[str, Any] = {}
    for where, options in tables:
        for key, value in options.items():
            if isinstance(value, dict):
                continue
            name = key.replace("-", "_")
            name = ALIASES.get(name, name)
            if name not in known:
                full = f"{where}.{key}" if where else key
                raise ConfigError(
                    f"{path}: unknown option {full!r}{_nearest(name, known | set(ALIASES))}"
                )
            values[name] = value
    return values


def _config_commands(ctx: click.Context) -> list[click.Command]:
    root = ctx.find_root().command
    commands = root.commands.values() if isinstance(root, click.Group) else [root]
    return [c for c in commands if any(p.name == "config" for p in c.params)]


def _option_names(commands: Iterable[click.Command]) -> set[str]:
    return {
        p.name for c in commands for p in c.params if isinstance(p, click.Option) and p.name
    } - {"config"}


def _load_config(
    ctx: click.Context, param: click.Parameter, value: str | None, table: str = "bridge"
) -> str | None:
    if not value:
        return value
    try:
        values = read_config(value, _option_names(_config_commands(ctx)), table)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    # a file shared by serve and call may hold options of the other command: skip those here
    mine = _option_names([ctx.command])
    ctx.default_map = {
        **(ctx.default_map or {}),
        **{k: v for k, v in values.items() if k in mine},
    }
    return value


def config_option(
    f: Callable[..., Any], envvar: str = "BRIDGE_CONFIG", table: str = "bridge"
) -> Callable[..., Any]:
    """``--config FILE`` (and ``envvar``): option values from a TOML file, below the command line
    and the environment; options at the top level or in the file's ``[table]``."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        envvar=envvar,
        is_eager=True,
        expose_value=False,
        callback=functools.partial(_load_config, table=table),
        help="TOML file with option values (command line and environment take precedence).",
    )(f)


def mqtt_options(username: str = "bridge") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The broker options shared by ``serve`` and ``call`` (``username``: its default)."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        opts = [
            click.option(
                "--broker",
                default="mqtt://localhost:1883",
                envvar="BRIDGE_BROKER",
                help="broker URL: mqtt://host:port, or mqtts://host:port for TLS; it may "
                "carry the credentials: mqtt://user:pass@host:port",
            ),
            click.option(
                "--username",
                default=username,
                envvar="BRIDGE_USERNAME",
                help="MQTT username (the ACL gives 'bridge' every topic and 'operator' the "
                "calls, results and mirror); a user in --broker's URL wins over this default",
            ),
            click.option(
                "--password",
                default=None,
                envvar="BRIDGE_PASSWORD",
                help="MQTT password; prefer BRIDGE_PASSWORD to the command line, which other "
                "users of the machine can read",
            ),
            click.option(
                "--mqtt-version",
                type=click.Choice(["5", "3.1.1"]),
                default="5",
                envvar="BRIDGE_MQTT_VERSION",
                help="MQTT protocol version; 3.1.1 serves everything but --workers",
            ),
            click.option(
                "--ca-certs",
                type=click.Path(dir_okay=False),
                default=None,
                envvar="BRIDGE_CA_CERTS",
                help="CA bundle for mqtts://",
            ),
            click.option(
                "--certfile",
                type=click.Path(dir_okay=False),
                default=None,
                envvar="BRIDGE_CERTFILE",
                help="client certificate (PEM)",
            ),
            click.option(
                "--keyfile",
                type=click.Path(dir_okay=False),
                default=None,
                envvar="BRIDGE_KEYFILE",
                help="client key (PEM)",
            ),
            click.option(
                "--tls-insecure",
                is_flag=True,
                default=False,
                envvar="BRIDGE_TLS_INSECURE",
                help="do not verify the broker's certificate (testing only)",
            ),
            click.option(
                "--prefix",
                default="ocpp",
                envvar="BRIDGE_PREFIX",
                help="topic prefix",
            ),
            click.option(
                "--log-level",
                type=LEVELS,
                default="INFO",
                envvar="BRIDGE_LOG_LEVEL",
            ),
        ]
        for opt in reversed(opts):
            f = opt(f)
        return config_option(f)

    return decorate


def show_envvars(commands: Iterable[click.Command]) -> None:
    """List each option's environment variable in ``--help``."""
    for command in commands:
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar:
                param.show_envvar = True


def known_envvars(group: click.Group, prefix: str = "BRIDGE") -> set[str]:
    """Every ``BRIDGE_*`` variable an option of ``group`` reads (explicit or click's automatic
    ``BRIDGE_<COMMAND>_<OPTION>``)."""
    names = set(EXTRA_ENVVARS)
    for cmd_name, command in group.commands.items():
        auto = f"{prefix}_{cmd_name.upper().replace('-', '_')}"
        for param in command.params:
            if not isinstance(param, click.Option) or not param.name:
                continue
            envvar = param.envvar
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
            names.add(f"{auto}_{param.name.upper()}")
    return names


def environment_warnings(
    group: click.Group, environ: Mapping[str, str] | None = None, prefix: str = "BRIDGE"
) -> list[str]:
    """One warning per ``BRIDGE_*`` variable that no option reads (a typo, most likely)."""
    environ = os.environ if environ is None else environ
    known = known_envvars(group, prefix)
    return [
        f"warning: {name} is set but is no bridge option{_nearest(name, known)}"
        for name in sorted(environ)
        if name.startswith(prefix + "_") and name not in known
    ]


class _RedactingFormatter(logging.Formatter):
    """Log lines (tracebacks included) with URL passwords and the given secrets as ***."""

    def __init__(self, fmt: str, secrets: tuple[str, ...]) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), *self.secrets)


def setup_logging(level: str, opts: Mapping[str, Any] | None = None) -> None:
    """Log to stderr at ``level``; never the password of ``opts`` (option or URL)."""
    secrets: list[str] = []
    if opts is not None:
        secrets = [s for s in (opts.get("password"), _url_password(opts)) if s]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s", tuple(secrets)
        )
    )
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def url_user_wins(ctx: click.Context, opts: dict[str, Any]) -> None:
    """``--broker mqtt://user:pass@host`` with no explicit ``--username``: the URL's user.

    Also checks the URL: a bad one is a usage error whose message hides the password.
    """
    try:
        parse_url(opts["broker"])
    except ValueError as exc:
        raise click.BadParameter(redacted(str(exc), opts), ctx, param_hint="--broker") from None
    default = ctx.get_parameter_source("username") is ParameterSource.DEFAULT
    if default and parse_url(opts["broker"]).username:
        opts["username"] = None


def mqtt_settings(opts: Mapping[str, Any], client_id: str, clean: bool = False) -> MqttSettings:
    return MqttSettings(
        url=opts["broker"],
        client_id=client_id,
        username=opts["username"],
        password=opts["password"],
        protocol=opts["mqtt_version"],
        ca_certs=opts["ca_certs"],
        certfile=opts["certfile"],
        keyfile=opts["keyfile"],
        tls_insecure=opts["tls_insecure"],
        clean_start=clean,
        session_expiry=int(opts.get("session_expiry") or 86_400),
    )


def redacted(text: str, opts: Mapping[str, Any]) -> str:
    """``text`` without the password of ``opts`` (option or URL)."""
    return redact(text, opts.get("password"), _url_password(opts))


def _url_password(opts: Mapping[str, Any]) -> str | None:
    try:
        return parse_url(opts.get("broker") or "").password
    except ValueError:
        return None
