"""The alerts file: rules, destinations, routes and the delivery policy (docs/alerts.md).

The file is YAML or JSON. :func:`parse_config` validates it and reports **every** problem at once,
each named by its path (``rules[2].within_days: must be > 0``), as :class:`InvalidConfigError`.
:func:`load_config` reads the file (or takes the built-in defaults when there is none), applies the
zero-config Slack variable and resolves secrets from the environment or files into
:class:`ResolvedConfig`. No secret is ever part of an error message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError

from schemas.messages import AlertRule, Status

KAFKA_DESTINATION = "health.alerts"
ZERO_CONFIG_SLACK = "slack"
SLACK_ENV = "HEALTHSCORE_SLACK_WEBHOOK_URL"

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PositiveDays = Annotated[float, Field(gt=0, le=3650)]
PositiveHours = Annotated[float, Field(gt=0, le=24 * 3650)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    name: Name | None = Field(default=None, description="unique; defaults to the rule type")
    enabled: bool = True
    cooldown_hours: PositiveHours = 24.0
    supersedes: tuple[Name, ...] = Field(
        default=(),
        description="rule names whose alerts this rule replaces when both fire on one change",
    )

    @property
    def rule_name(self) -> str:
        name: str = self.name or self.type  # type: ignore[attr-defined]
        return name


class StatusDropRule(_Rule):
    """Any downgrade: green to amber, amber to red, green to red."""

    type: Literal["status_drop"]


class RedAlertRule(_Rule):
    """The account enters red from amber or green (an account's first score never pages)."""

    type: Literal["red_alert"]


class SustainedDeclineRule(_Rule):
    """The score fell by ``points`` or more within ``within_days``, whatever the status."""

    type: Literal["sustained_decline"]
    points: Annotated[float, Field(gt=0, le=100)] = 15.0
    within_days: PositiveDays = 14.0
    cooldown_hours: PositiveHours = 7 * 24.0


class RenewalAtRiskRule(_Rule):
    """The status is one of ``statuses`` and the renewal date is within ``within_days``."""

    type: Literal["renewal_at_risk"]
    within_days: PositiveDays = 90.0
    statuses: tuple[Status, ...] = Field(default=("red", "amber"), min_length=1)
    cooldown_hours: PositiveHours = 30 * 24.0


class _UsageSelector(_Rule):
    categories: tuple[str, ...] = Field(
        # The usage categories of the shipped models (healthscore/engine/default_models).
        default=("activation", "product adoption", "usage", "adoption", "product usage"),
        description="categories whose indicators measure product usage (case-insensitive)",
    )
    indicators: tuple[str, ...] = Field(
        default=(), description="indicator names or metrics; when set, used instead of categories"
    )


class OnboardingStalledRule(_UsageSelector):
    """In an onboarding stage, every usage indicator has been poor (or without data) for
    ``for_days``."""

    type: Literal["onboarding_stalled"]
    stages: tuple[str, ...] = Field(default=("onboarding",), min_length=1)
    for_days: PositiveDays = 14.0
    cooldown_hours: PositiveHours = 7 * 24.0


class ExpansionOpportunityRule(_UsageSelector):
    """Green, and a usage indicator's value is above ``above`` (e.g. license utilisation)."""

    type: Literal["expansion_opportunity"]
    above: float
    cooldown_hours: PositiveHours = 30 * 24.0


Rule = Annotated[
    StatusDropRule
    | RedAlertRule
    | SustainedDeclineRule
    | RenewalAtRiskRule
    | OnboardingStalledRule
    | ExpansionOpportunityRule,
    Field(discriminator="type"),
]
RULE_TYPES: tuple[AlertRule, ...] = (
    "status_drop",
    "red_alert",
    "sustained_decline",
    "renewal_at_risk",
    "onboarding_stalled",
    "expansion_opportunity",
)


class _Destination(_Strict):
    name: Name
    url: str | None = Field(default=None, description="inline URL (not for secret URLs)")
    url_env: str | None = Field(default=None, description="environment variable holding the URL")
    url_file: str | None = Field(default=None, description="file holding the URL")
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    max_age_hours: PositiveHours | None = None


class SlackDestination(_Destination):
    """A Slack incoming webhook. Its URL is a secret: prefer ``url_env`` or ``url_file``."""

    type: Literal["slack"]
    # Slack accepts about one message per second per webhook.
    min_interval_seconds: Annotated[float, Field(ge=0, le=3600)] = 1.0
    # When more than this many alerts wait for the webhook, they go out as one digest message.
    coalesce_above: Annotated[int, Field(ge=1, le=1000)] = 3
    coalesce_max: Annotated[int, Field(ge=2, le=40)] = 20


class WebhookDestination(_Destination):
    """A generic (CRM) webhook signed per the Standard Webhooks scheme."""

    type: Literal["webhook"]
    secret_env: str | None = None
    secret_file: str | None = None
    min_interval_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4


Destination = Annotated[SlackDestination | WebhookDestination, Field(discriminator="type")]


class Route(_Strict):
    """Alerts that match every given selector go to ``destinations``; an omitted selector
    matches everything. An alert goes to the union of the destinations of all matching routes."""

    rules: tuple[str, ...] | None = Field(default=None, description="rule names or rule types")
    segments: tuple[str, ...] | None = None
    owners: tuple[str, ...] | None = None
    destinations: tuple[Name, ...] = Field(min_length=1)


class DeliveryPolicy(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    max_age_hours: PositiveHours = 24.0
    backoff_initial_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    # A Retry-After longer than this is capped (a broken receiver must not park alerts for days).
    max_retry_after_seconds: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    unhealthy_after_failures: Annotated[int, Field(ge=1, le=1000)] = 5


class AlertsFile(_Strict):
    rules: tuple[Rule, ...] | None = Field(default=None, description="omitted: the default rules")
    destinations: tuple[Destination, ...] = ()
    routes: tuple[Route, ...] | None = None
    delivery: DeliveryPolicy = DeliveryPolicy()
    account_url: str = Field(
        default="http://127.0.0.1:8000/v1/accounts/{account_id}",
        description="link in messages; {account_id} is replaced by the URL-quoted account id",
    )


def default_rules() -> tuple[Rule, ...]:
    """The rules that apply when the file has no ``rules`` (or there is no file)."""
    adapter: TypeAdapter[tuple[Rule, ...]] = TypeAdapter(tuple[Rule, ...])
    return adapter.validate_python(
        [
            {"type": "red_alert", "supersedes": ["status_drop"]},
            {"type": "status_drop"},
            {"type": "sustained_decline"},
            {"type": "renewal_at_risk"},
            {"type": "onboarding_stalled"},
        ]
    )


@dataclass(frozen=True)
class ConfigError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidConfigError(ValueError):
    """The alerts file is invalid; ``errors`` names every problem."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class ResolvedDestination:
    """A destination with its URL and secret read from wherever the file said."""

    spec: SlackDestination | WebhookDestination
    url: SecretStr
    secret: SecretStr | None  # webhook destinations only
    policy: DeliveryPolicy  # the file's policy with the destination's overrides applied

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Literal["slack", "webhook"]:
        return self.spec.type


@dataclass(frozen=True)
class ResolvedConfig:
    rules: tuple[Rule, ...]
    destinations: tuple[ResolvedDestination, ...]
    routes: tuple[Route, ...]
    delivery: DeliveryPolicy
    account_url: str

    def destination(self, name: str) -> ResolvedDestination:
        return next(d for d in self.destinations if d.name == name)

    def destinations_for(
        self, rule_name: str, rule_type: str, segment: str | None, owner: str | None
    ) -> tuple[str, ...]:
        """Configured destination names for an alert; ``health.alerts`` is implicit."""
        chosen: list[str] = []
        for route in self.routes:
            if route.rules is not None and not (
                rule_name in route.rules or rule_type in route.rules
            ):
                continue
            if route.segments is not None and segment not in route.segments:
                continue
            if route.owners is not None and owner not in route.owners:
                continue
            chosen.extend(d for d in route.destinations if d not in chosen)
        return tuple(chosen)


# -- validation -------------------------------------------------------------------------------
_MESSAGES: dict[str, str] = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "too_short": "must have at least {min_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "may contain only letters, digits and _ . : -",
    "union_tag_invalid": "unknown type {tag}; expected one of {expected_tags}",
    "union_tag_not_found": "needs a type ({expected_tags})",
}


def _path(loc: Sequence[int | str], tags: set[str]) -> str:
    out = ""
    previous_was_index = False
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            previous_was_index = True
            continue
        # Discriminated unions put the tag into the location (rules[2].sustained_decline.x).
        if previous_was_index and part in tags and i + 1 < len(loc):
            previous_was_index = False
            continue
        out += f".{part}" if out else part
        previous_was_index = False
    return out


def _message(error: Mapping[str, Any]) -> str:
    template = _MESSAGES.get(str(error["type"]))
    ctx = {
        k: int(v) if isinstance(v, float) and v.is_integer() else v
        for k, v in (error.get("ctx") or {}).items()
    }
    if template is not None:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    msg = str(error["msg"])
    return msg[0].lower() + msg[1:] if msg else msg


def _validation_errors(exc: ValidationError) -> list[ConfigError]:
    tags = set(RULE_TYPES) | {"slack", "webhook"}
    return [ConfigError(_path(e["loc"], tags), _message(e)) for e in exc.errors()]


def _semantic_errors(doc: AlertsFile, slack_env_set: bool) -> list[ConfigError]:
    errors: list[ConfigError] = []
    rules = doc.rules if doc.rules is not None else default_rules()
    rule_names = [r.rule_name for r in rules]
    for i, rule in enumerate(rules):
        if rule_names.count(rule.rule_name) > 1 and rule_names.index(rule.rule_name) != i:
            errors.append(ConfigError(f"rules[{i}].name", f"duplicate rule name {rule.rule_name}"))
        for j, other in enumerate(rule.supersedes):
            if other not in rule_names or other == rule.rule_name:
                errors.append(
                    ConfigError(f"rules[{i}].supersedes[{j}]", f"no other rule named {other}")
                )
    dest_names = [d.name for d in doc.destinations]
    for i, dest in enumerate(doc.destinations):
        where = f"destinations[{i}]"
        if dest.name == KAFKA_DESTINATION:
            errors.append(ConfigError(f"{where}.name", f"{KAFKA_DESTINATION} is reserved"))
        elif dest_names.count(dest.name) > 1 and dest_names.index(dest.name) != i:
            errors.append(ConfigError(f"{where}.name", f"duplicate destination name {dest.name}"))
        sources = [s for s in (dest.url, dest.url_env, dest.url_file) if s is not None]
        if len(sources) != 1:
            errors.append(ConfigError(where, "needs exactly one of url, url_env, url_file"))
        if isinstance(dest, WebhookDestination) and (dest.secret_env is None) == (
            dest.secret_file is None
        ):
            errors.append(ConfigError(where, "needs exactly one of secret_env, secret_file"))
    known_destinations = set(dest_names) | ({ZERO_CONFIG_SLACK} if slack_env_set else set())
    for i, route in enumerate(doc.routes or ()):
        for j, rule_ref in enumerate(route.rules or ()):
            if rule_ref not in rule_names and rule_ref not in RULE_TYPES:
                errors.append(ConfigError(f"routes[{i}].rules[{j}]", f"no rule named {rule_ref}"))
        for j, dest_ref in enumerate(route.destinations):
            if dest_ref not in known_destinations:
                hint = f" (set {SLACK_ENV} to define it)" if dest_ref == ZERO_CONFIG_SLACK else ""
                errors.append(
                    ConfigError(
                        f"routes[{i}].destinations[{j}]", f"no destination named {dest_ref}{hint}"
                    )
                )
    fields = [f for _, f, _, _ in string.Formatter().parse(doc.account_url) if f is not None]
    if fields != ["account_id"] or not doc.account_url.startswith(("http://", "https://")):
        errors.append(
            ConfigError("account_url", "must be an http(s) URL with exactly one {account_id}")
        )
    policy = doc.delivery
    if policy.backoff_max_seconds < policy.backoff_initial_seconds:
        errors.append(
            ConfigError("delivery.backoff_max_seconds", "must be >= backoff_initial_seconds")
        )
    return errors


def parse_config(data: Mapping[str, Any] | str, *, slack_env_set: bool = False) -> AlertsFile:
    """Validate an alerts document (a mapping, or YAML/JSON text); raise InvalidConfigError listing
    every error. ``slack_env_set`` says whether the zero-config ``slack`` destination exists."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data) or {}
        except yaml.YAMLError as exc:
            raise InvalidConfigError([ConfigError("", f"not valid YAML or JSON: {exc}")]) from None
    if not isinstance(data, Mapping):
        raise InvalidConfigError([ConfigError("", "the alerts file must be a mapping")])
    try:
        doc = AlertsFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfigError(_validation_errors(exc)) from None
    errors = _semantic_errors(doc, slack_env_set)
    if errors:
        raise InvalidConfigError(errors)
    return doc


def _read_source(
    path: str, value: str | None, env_name: str | None, file_name: str | None, what: str
) -> tuple[SecretStr | None, ConfigError | None]:
    if value is not None:
        return SecretStr(value), None
    if env_name is not None:
        found = os.environ.get(env_name)
        if not found:
            return None, ConfigError(path, f"environment variable {env_name} ({what}) is not set")
        return SecretStr(found.strip()), None
    if file_name is not None:
        try:
            return SecretStr(Path(file_name).read_text(encoding="utf-8").strip()), None
        except OSError as exc:
            return None, ConfigError(path, f"cannot read {what} file {file_name}: {exc.strerror}")
    return None, None


def resolve(doc: AlertsFile, *, slack_webhook_url: SecretStr | None = None) -> ResolvedConfig:
    """Read URLs and secrets, add the zero-config Slack route; raise InvalidConfigError."""
    errors: list[ConfigError] = []
    destinations: list[ResolvedDestination] = []
    for i, dest in enumerate(doc.destinations):
        url, error = _read_source(
            f"destinations[{i}].url", dest.url, dest.url_env, dest.url_file, "URL"
        )
        if error:
            errors.append(error)
        secret: SecretStr | None = None
        if isinstance(dest, WebhookDestination):
            secret, error = _read_source(
                f"destinations[{i}].secret", None, dest.secret_env, dest.secret_file, "secret"
            )
            if error:
                errors.append(error)
            elif secret is not None and not _valid_secret(secret.get_secret_value()):
                errors.append(
                    ConfigError(f"destinations[{i}].secret", "must look like whsec_<base64>")
                )
        overrides = {
            k: v
            for k, v in (("max_attempts", dest.max_attempts), ("max_age_hours", dest.max_age_hours))
            if v is not None
        }
        if url is not None:
            destinations.append(
                ResolvedDestination(dest, url, secret, doc.delivery.model_copy(update=overrides))
            )
    routes = list(doc.routes or ())
    names = {d.name for d in destinations}
    if slack_webhook_url is not None and ZERO_CONFIG_SLACK not in names:
        spec = SlackDestination(type="slack", name=ZERO_CONFIG_SLACK, url_env=SLACK_ENV)
        destinations.append(ResolvedDestination(spec, slack_webhook_url, None, doc.delivery))
        if doc.routes is None:
            routes.append(
                Route(rules=("red_alert", "status_drop"), destinations=(ZERO_CONFIG_SLACK,))
            )
    if errors:
        raise InvalidConfigError(errors)
    return ResolvedConfig(
        rules=tuple(r for r in (doc.rules or default_rules()) if r.enabled),
        destinations=tuple(destinations),
        routes=tuple(routes),
        delivery=doc.delivery,
        account_url=doc.account_url,
    )


def _valid_secret(value: str) -> bool:
    if not value.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) >= 16
    except (binascii.Error, ValueError):
        return False


def load_config(path: str | Path | None, *, slack_webhook_url: SecretStr | None) -> ResolvedConfig:
    """Read and validate the alerts file (``None``: the defaults) and resolve its secrets."""
    if path is None:
        doc = AlertsFile()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidConfigError(
                [ConfigError("", f"cannot read {path}: {exc.strerror}")]
            ) from None
        doc = parse_config(text, slack_env_set=slack_webhook_url is not None)
    return resolve(doc, slack_webhook_url=slack_webhook_url)
