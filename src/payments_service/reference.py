"""Reference tables rendered from their single sources, for `payments-server config` and the docs.

- the settings (`config.Settings`, `config.ProbeSettings`): the README's configuration table,
  and the effective values `payments-server config` prints (secrets redacted);
- the limits (the settings declared with a `config.Limit`): docs/limits.md's table, each row's
  client-visible status taken from the error table row of its `reason`;
- the error table (`transport.error_table.ERROR_TABLE`): ARCHITECTURE.md's error model, with
  each row's HTTP status (`transport.http.status`);
- the store drivers' failures (`adapters.stores.errors.TRANSLATIONS`), each with the error-table
  row it ends in: docs/store-outages.md;
- the JSON/HTTP routes (derived from the proto's `google.api.http` options), the HTTP status
  of every gRPC code and the HTTP layer's own refusals: docs/http-api.md.

The docs hold each table between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name
-->` markers; `make docs` rewrites them (`scripts/render_docs.py`) and a test fails when a
committed table differs from what the code renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from payments_service.adapters.stores.errors import TRANSLATIONS
from payments_service.adapters.stores.location import StoreLocation
from payments_service.config import (
    SETTINGS_CLASSES,
    EnvSettings,
    ProbeSettings,
    Settings,
    Variable,
    all_variables,
)
from payments_service.transport.error_table import (
    ERROR_TABLE,
    INTERNAL_RULE,
    rule_for,
    rule_for_reason,
)
from payments_service.transport.http.routes import RouteTable
from payments_service.transport.http.server import PAYMENT_SERVICE
from payments_service.transport.http.status import HTTP_STATUS, REFUSALS, http_status


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = [f"| {' | '.join(header)} |", f"| {' | '.join('---' for _ in header)} |"]
    lines += [f"| {' | '.join(_cell(cell) for cell in row)} |" for row in rows]
    return "\n".join(lines) + "\n"


def plain_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in table
    )


def shown(variable: Variable, value: Any) -> str:
    """A setting's value as the docs and `payments-server config` show it: secrets never."""
    if value is None:
        return "unset"
    if isinstance(value, StoreLocation):
        return value.redacted
    if variable.secret:
        return "***"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(variable: Variable) -> str:
    return "unset" if variable.default is None else f"`{variable.default}`"


def settings_reference(settings_class: type[EnvSettings] = Settings) -> str:
    """A configuration table: the variables of `settings_class` (the server's by default, the
    README's; the healthcheck probe's in docs/deployment.md), their defaults and meanings. The
    limits are left to the limits table, which shows their variables and defaults too."""
    rows = [
        (
            f"`{v.name}`" + "".join(f" (or `{alias}`)" for alias in v.names[1:]),
            _default(v),
            v.meaning,
        )
        for _, v in settings_class.variables()
        if v.limit is None
    ]
    return markdown_table(("variable", "default", "meaning"), rows)


def effective_settings(env: Mapping[str, str], *, markdown: bool = False) -> str:
    """`payments-server config`: each variable's effective value and where it came from."""
    rows = []
    for settings_class in SETTINGS_CLASSES:
        settings = settings_class.from_env(env)
        for field_name, variable in settings_class.variables():
            source = variable.source(env)
            rows.append(
                (
                    variable.name,
                    shown(variable, getattr(settings, field_name)),
                    "default" if source is None else f"set ({source})",
                )
            )
    render = markdown_table if markdown else plain_table
    return render(("variable", "value", "source"), rows)


def _client_sees(reason: str | None, effect: str) -> str:
    if reason is None:
        return effect
    rule = rule_for_reason(reason)
    return f"{rule.summary()}: {effect}"


def limits_reference() -> str:
    """docs/limits.md's table: every limit, its default and variable, what a client sees when it
    is hit (the error table's row), and the metrics that show it."""
    rows = []
    for variable in all_variables():
        limit = variable.limit
        if limit is None:
            continue
        metrics = ", ".join(f"`{m}`" for m in limit.metrics) or "none of ours"
        rows.append(
            (
                limit.what,
                f"`{variable.name}`: {variable.meaning}",
                _default(variable),
                _client_sees(limit.reason, limit.effect),
                metrics,
            )
        )
    header = ("limit", "variable", "default", "what the client sees", "metrics")
    return markdown_table(header, rows)


def errors_reference() -> str:
    """ARCHITECTURE.md's error table: every failure the service answers on purpose, with the
    HTTP status the JSON/HTTP transport answers it with."""
    rows = [
        (
            f"`{error.__name__}`",
            rule.summary(),
            str(http_status(rule.code)),
            rule.log_level,
            rule.meaning(error),
        )
        for error, rule in ERROR_TABLE.items()
    ]
    rows.append(
        (
            "anything else",
            INTERNAL_RULE.summary(),
            str(http_status(INTERNAL_RULE.code)),
            INTERNAL_RULE.log_level,
            "A bug: a generic message to the client, the traceback logged once.",
        )
    )
    return markdown_table(("failure", "status and details", "HTTP", "log level", "meaning"), rows)


def routes_reference() -> str:
    """docs/http-api.md's route table, as the listener derives it from the proto."""
    rows = [
        (
            f"`{route.verb} {route.template}`",
            f"`{route.method.full_method}`",
            "the JSON body" if route.body else "the path" if route.params else "nothing",
        )
        for route in RouteTable.from_services(PAYMENT_SERVICE).routes
    ]
    return markdown_table(("route", "RPC", "request fields from"), rows)


def http_status_reference() -> str:
    """docs/http-api.md's table: the HTTP status of every gRPC code (grpc-gateway's mapping),
    then the requests the HTTP layer refuses itself."""
    by_status: dict[int, list[str]] = {}
    for code, status in HTTP_STATUS.items():
        by_status.setdefault(status, []).append(f"`{code.name}`")
    rows = [(", ".join(codes), str(status), "") for status, codes in sorted(by_status.items())]
    rows += [(f"`{code.name}`", str(status), when) for status, code, when in REFUSALS]
    return markdown_table(("gRPC code", "HTTP status", "refused by the HTTP layer"), rows)


def store_failures_reference() -> str:
    """docs/store-outages.md's table: each store failure, the store error it becomes, and how
    the error table answers that (anything not listed: INTERNAL)."""
    rows = []
    for translation in TRANSLATIONS:
        rule = rule_for(translation.error)
        assert rule is not None  # noqa: S101 - every store error has a row (tests/unit)
        rows.append(
            (
                translation.store,
                translation.failure,
                f"`{translation.error.__name__}`: {rule.summary()}",
                rule.log_level,
            )
        )
    rows.append(
        (
            "both",
            "anything else (a constraint violation, a syntax error, a corrupt file)",
            INTERNAL_RULE.summary() + ", the traceback logged once",
            INTERNAL_RULE.log_level,
        )
    )
    return markdown_table(("store", "failure", "the client gets", "log level"), rows)


GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"settings": settings_reference},
    "docs/deployment.md": {"probe-settings": lambda: settings_reference(ProbeSettings)},
    "docs/limits.md": {"limits": limits_reference},
    "ARCHITECTURE.md": {"errors": errors_reference},
    "docs/http-api.md": {"routes": routes_reference, "http-status": http_status_reference},
    "docs/store-outages.md": {"store-failures": store_failures_reference},
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {name} [^\n]*-->\n)(.*?)(<!-- END GENERATED: {name} -->)",
        re.DOTALL,
    )


def render_into(text: str, name: str, table: str) -> str:
    """`text` with the generated block `name` replaced by `table`; ValueError if it has none."""
    pattern = _block(name)
    if pattern.search(text) is None:
        raise ValueError(f"no generated block {name!r}")
    return pattern.sub(lambda match: match[1] + table + match[3], text)
