"""Workspace and settings.

A workspace is a folder holding ``rulelife.toml``. Settings are read from, in
order of precedence: explicit overrides, environment variables
(``RULELIFE_DB_URL``, ``RULELIFE_SHADOW_RATE``, ...), the ``rulelife.toml`` file,
and the defaults below. Relative paths (and a relative SQLite file) are taken
relative to the workspace folder, never to the current directory, so a cron job
and a person at a terminal see the same workspace.

A monitor's parameters are not settings of the core: their defaults live in
the monitor's own signature, and a ``[monitors.<name>]`` table only overrides
them (see :mod:`rulelife.monitoring.contract`).
"""

from __future__ import annotations

import inspect
import json
import os
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from rulelife._files import atomic_write
from rulelife.errors import ConfigError, WorkspaceNotFound
from rulelife.plugins import MONITORS, available, keyword_parameters, load_plugin

__all__ = ["CONFIG_FILE", "Settings", "Workspace", "load_settings"]

CONFIG_FILE = "rulelife.toml"
WORKSPACE_ENV = "RULELIFE_WORKSPACE"
ENV_PREFIX = "RULELIFE_"

# The flat monitor keys of the previous release, and the [monitors.<name>] key each now is. Every
# rulelife.toml that `rulelife init` wrote holds them, so they are still read, with a warning, for
# this release only; remove this table (and _DeprecatedEnv) in the next one.
DEPRECATED_MONITOR_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "monitor_min_shadow": (("agreement_cusum", "min_shadow"), ("agreement_floor", "min_shadow")),
    "floor_days": (("agreement_floor", "days"),),
    "cusum_k": (("agreement_cusum", "k"),),
    "cusum_arl0": (("agreement_cusum", "arl0"),),
    "coverage_window_days": (("coverage_drift", "window_days"),),
    "coverage_min_days": (("coverage_drift", "min_days"),),
    "coverage_tolerance": (("coverage_drift", "tolerance"),),
    "coverage_min_z": (("coverage_drift", "min_z"),),
    "expiry_grace_days": (("expiry", "grace_days"),),
}


class Settings(BaseSettings):
    """Every tunable of a deployment; each can be set in rulelife.toml or as RULELIFE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="RULELIFE_", extra="forbid", validate_default=True)

    rules_dir: Path = Field(Path("rules"), description="folder of rule YAML files")
    db_url: str = Field("sqlite:///rulelife.db", description="SQLAlchemy URL of the registry")
    db_schema: str | None = Field(None, description="PostgreSQL schema for the tables (default: search_path)")
    db_busy_timeout: float = Field(30.0, ge=0, le=3600, description="SQLite: seconds a write waits for another "
                                                                     "writer before the command gives up (exit 75)")
    bundle_dir: Path = Field(Path("bundles"), description="folder of published bundles and CURRENT")
    bundle_signing_key: Path | None = Field(None, description="Ed25519 private key (PEM, from `rulelife bundle "
                                                              "keygen`) that signs every bundle publish builds")
    bundle_public_key: Path | None = Field(None, description="Ed25519 public key the bundle commands verify "
                                                             "bundles with; unsigned ones are then refused")
    log_dir: Path = Field(Path("logs"), description="default folder of query logs")
    shadow_rate: float = Field(0.05, ge=0.0, le=1.0, description="share of rule answers also sent to the model")
    max_text_length: int = Field(4096, ge=1, description="longest message (characters) a rule may answer; a "
                                                         "longer one goes to the model (bounds a request's cost)")
    safety_intents: list[str] = Field(
        ["return_request", "escalation"], description="intents on which a rule may never be wrong"
    )
    agreement_floor: float = Field(0.95, gt=0.0, le=1.0, description="minimum agreement with the model")
    expiry_days: int = Field(90, ge=1, description="days an active rule lives after its last passing evaluation")
    model_call_cost: float = Field(0.002, ge=0.0, description="cost of one model call, for savings reports")
    intents: list[str] = Field(
        ["order_tracking", "return_request", "escalation", "recommendation", "product_question", "faq",
         "promotion", "chitchat"],
        description="intents the model can answer (log validation); empty list: accept any",
    )
    # Datasets and the promotion gate.
    dataset_mix: dict[str, float] = Field(
        {"production": 0.60, "hard_negative": 0.25, "adversarial": 0.15},
        description="target share of each stratum in a rule's dataset",
    )
    dataset_floor: int = Field(1000, ge=1, description="minimum dataset rows for a promotion")
    dataset_floor_high_traffic: int = Field(5000, ge=1, description="minimum rows for a high-traffic rule")
    high_traffic_fires: int = Field(20000, ge=1, description="fires in the window that make a rule high-traffic")
    dataset_max_age_days: int = Field(7, ge=1, description="a dataset older than this is stale")
    safety_proximity_share: float = Field(0.05, gt=0.0, le=1.0,
                                          description="share of a content word's queries a safety intent needs "
                                                      "to put a rule next to it (miner and gate)")
    safety_proximity_rows: int = Field(3, ge=1, description="safety-intent queries holding a content word that "
                                                            "put a rule next to that intent (miner and gate)")
    safety_proximity_lift: float = Field(2.0, ge=1.0,
                                         description="times a safety intent's share of all traffic a content "
                                                     "word's share must reach to put a rule next to it")
    lexicon_min_share: float = Field(0.5, gt=0.0, le=1.0,
                                     description="share of a phrase's queries a safety intent needs for the "
                                                 "lexicon miner to propose it")
    lexicon_min_support: int = Field(10, ge=1, description="safety-intent queries a proposed lexicon phrase needs")
    lexicon_review_days: int = Field(30, ge=1, description="the nightly re-mines the safety lexicon and files a "
                                                           "lexicon_review ticket when the last one is this many "
                                                           "days old")
    lexicon_max_veto_share: float = Field(0.2, gt=0.0, le=1.0,
                                          description="warn when the lexicon would send more than this share of "
                                                      "the traffic to the model")
    gate_on: Literal["lower_bound", "point"] = Field(
        "lower_bound", description="agreement must clear the floor with its interval's lower bound, or its point estimate"
    )
    severity_weights: dict[str, float] = Field(
        {"return_request": 10.0, "escalation": 10.0}, description="cost of a false positive per model intent (default 1)"
    )
    revalidate_within_days: int = Field(14, ge=0, description="revalidate active rules expiring within this many days")

    # Nightly monitoring.
    enabled_monitors: list[str] = Field(
        ["agreement_cusum", "agreement_floor", "coverage_drift", "safety_fp", "expiry"],
        description="monitors the nightly job runs and the report draws, by entry-point name",
    )
    # Each monitor's parameters live in its own signature; a table only overrides them.
    monitors: dict[str, dict[str, Any]] = Field(
        {}, description="one [monitors.<name>] table per monitor: keyword parameters of its class "
                        "(a key left out keeps the monitor's own default)",
    )
    ticket_dir: Path = Field(Path("tickets"), description="folder sink: one JSON and Markdown file per ticket")
    webhook_url: str | None = Field(None, description="JSON webhook for ticket and registry events (none: off)")
    webhook_attempts: int = Field(3, ge=1, description="delivery attempts per webhook event per run")
    webhook_timeout: float = Field(10.0, gt=0, le=300, description="seconds one webhook request may take in all")
    webhook_max_wait: float = Field(30.0, ge=0, description="longest Retry-After (seconds) a run waits for; a "
                                                          "longer one is kept and tried after it, by a later run")
    webhook_secret: str | None = Field(None, description="HMAC-SHA256 key signing each webhook request "
                                                         "(X-Rulelife-Signature); better set as "
                                                         "RULELIFE_WEBHOOK_SECRET than in this file")
    webhook_format: Literal["json", "slack"] = Field("json", description="json: the event; slack: {\"text\": "
                                                                         "one line}, for a chat incoming webhook")
    report_after_nightly: bool = Field(False, description="write the rule health page beside the tickets each night")
    shadow_auto_promote: bool = Field(False, description="the nightly promotes each shadow rule whose live evidence "
                                                         "clears the gate (audited, actor nightly); off: a person "
                                                         "promotes with `rulelife promote`")

    # The model's side: residual accuracy against the baseline frozen at each bundle change.
    # A retrained model: the review window after a change of the log's dominant model_version.
    model_revalidate_days: int = Field(7, ge=1, description="days after a model change (the log's dominant "
                                                            "model_version changed) in which the nightly re-validates "
                                                            "every active rule against the new model's labels, files "
                                                            "one model:<version> ticket, and tickets agreement-floor "
                                                            "failures instead of disabling")
    residual_check: bool = Field(False, description="the nightly measures the model's accuracy on the residual (needs "
                                                    "a true_intent column in the log) and files a ticket on a drop")
    residual_margin: float = Field(0.05, ge=0.0, le=1.0, description="residual accuracy this far below its bundle's "
                                                                     "baseline files a ticket")
    residual_min_labels: int = Field(100, ge=1, description="labelled residual queries a day (or a baseline) needs "
                                                            "before it is judged")

    @field_validator("monitors")
    @classmethod
    def _tables_name_monitors(cls, tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # A misspelt table would otherwise be ignored in silence and its monitor run on its defaults.
        installed = available(MONITORS) if tables else {}
        for name in tables:
            if name not in installed:
                raise ValueError(f"[monitors.{name}] names no installed monitor (installed: "
                                 f"{', '.join(sorted(installed)) or 'none'}); fix the table's name")
        return tables

    @model_validator(mode="before")
    @classmethod
    def _read_deprecated_keys(cls, data: Any) -> Any:
        """Move the previous release's flat monitor keys into their [monitors.<name>] tables, with a warning."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("monitors"), list):
            names = data.pop("monitors")
            if data.setdefault("enabled_monitors", names) != names:
                raise ValueError("both 'monitors' (a list, deprecated) and 'enabled_monitors' are set; "
                                 "keep enabled_monitors only")
            warnings.warn("setting 'monitors' as a list of names is deprecated and read for this release only; "
                          "rename it to 'enabled_monitors' (a [monitors.<name>] table now holds each monitor's "
                          "parameters)", FutureWarning, stacklevel=2)
        old = [key for key in DEPRECATED_MONITOR_KEYS if key in data]
        if not old:
            return data
        tables = {name: dict(table) for name, table in (data.get("monitors") or {}).items()}
        for key in old:
            value = data.pop(key)
            for name, param in DEPRECATED_MONITOR_KEYS[key]:
                table = tables.setdefault(name, {})
                if table.setdefault(param, value) != value:
                    raise ValueError(f"'{key} = {value!r}' (deprecated) and '{param} = {table[param]!r}' in "
                                     f"[monitors.{name}] disagree; keep the table's key only")
            where = " and ".join(f"'{param}' in the [monitors.{name}] table"
                                 for name, param in DEPRECATED_MONITOR_KEYS[key])
            warnings.warn(f"setting '{key}' is deprecated and read for this release only; set {where} instead",
                          FutureWarning, stacklevel=2)
        data["monitors"] = tables
        return data

    @field_validator("dataset_mix")
    @classmethod
    def _mix_is_complete(cls, mix: dict[str, float]) -> dict[str, float]:
        expected = {"production", "hard_negative", "adversarial"}
        if set(mix) != expected or abs(sum(mix.values()) - 1.0) > 1e-6 or min(mix.values()) < 0:
            raise ValueError(
                f"dataset_mix needs exactly {sorted(expected)} with non-negative shares summing to 1, got {mix}"
            )
        return mix

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _DeprecatedEnv(settings_cls), TomlConfigSettingsSource(settings_cls))


class _DeprecatedEnv(PydanticBaseSettingsSource):
    """RULELIFE_<KEY> of the deprecated flat monitor keys, so a job's environment keeps working this release."""

    def get_field_value(self, field, field_name):  # not a field any more: read whole in __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = {name.upper(): value for name, value in os.environ.items()}
        found = {}
        for key in DEPRECATED_MONITOR_KEYS:
            raw = env.get(ENV_PREFIX + key.upper())
            if raw is not None:
                try:  # numbers as numbers, as the field types once parsed them
                    found[key] = json.loads(raw)
                except ValueError:
                    found[key] = raw
        return found


def load_settings(config_file: Path | None, **overrides: Any) -> Settings:
    """Read settings from ``config_file`` (None: defaults) under env and overrides."""

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    source = str(config_file) if config_file else "settings"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            settings = _FromFile(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML ({exc}); fix the file") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            env = f"RULELIFE_{name.upper()}"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(Settings.model_fields)
                problems.append(f"unknown setting '{name}' (allowed: {allowed})")
            elif not name:  # a check across settings: its message names them
                problems.append(message)
            else:
                problems.append(f"setting '{name}' (from the file or {env}): {message}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
    for warning in caught:  # name the file (or the environment) a deprecated key came from
        warnings.warn(f"{source}: {warning.message}", warning.category, stacklevel=2)
    return Settings.model_validate(settings.model_dump())


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (intent names may hold quotes, backslashes, any script)."""
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(str(text), ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return _toml_string(value.as_posix())
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # Keys are quoted: intent names (severity_weights) may hold spaces, dots or any script.
        return "{ " + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _monitor_tables(enabled: list[str], tables: dict[str, dict[str, Any]]) -> list[str]:
    """The [monitors.<name>] tables: those given, and each enabled monitor's parameters as comments.

    The commented values are read from the monitor's signature when the file
    is written: a reminder of what can be set, never a second default.
    """
    lines = ["", "# Each monitor's parameters: a [monitors.<name>] table of keyword arguments of its class.",
             "# A key left out keeps the monitor's own default (shown commented out as of this file's creation)."]
    for name in dict.fromkeys([*enabled, *tables]):
        table = tables.get(name, {})
        try:
            params = keyword_parameters(load_plugin(MONITORS, name)) or {}
        except ConfigError:
            params = {}
        lines.append(f"[monitors.{name}]" if table else f"# [monitors.{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
        for key, default in params.items():
            if key not in table:
                shown = "" if default is None or default is inspect.Parameter.empty else _toml_value(default)
                lines.append(f"# {key} = {shown}".rstrip())
    return lines


def _default_toml(values: dict[str, Any] | None = None) -> str:
    values = values or {}
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; allowed: {', '.join(Settings.model_fields)}")
    lines = ["# rulelife workspace settings; every key can be overridden by RULELIFE_<KEY>.", ""]
    for name, field in Settings.model_fields.items():
        if name == "monitors":
            continue  # tables, written last: TOML puts every top-level key before the first table
        default = values.get(name, field.default)
        lines.append(f"# {field.description}")
        lines.append(f"# {name} = " if default is None else f"{name} = {_toml_value(default)}")
    enabled = values.get("enabled_monitors", Settings.model_fields["enabled_monitors"].default)
    lines += _monitor_tables(enabled, values.get("monitors") or {})
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and its resolved settings."""

    root: Path
    settings: Settings

    def resolve(self, path: Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def rules_dir(self) -> Path:
        return self.resolve(self.settings.rules_dir)

    @property
    def bundle_dir(self) -> Path:
        return self.resolve(self.settings.bundle_dir)

    @property
    def log_dir(self) -> Path:
        return self.resolve(self.settings.log_dir)

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def db_url(self) -> str:
        """The database URL, with a relative SQLite path anchored at the workspace."""
        url = self.settings.db_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.root / url[len(prefix) :])
        return url

    @classmethod
    def load(cls, root: Path, **overrides: Any) -> Workspace:
        root = Path(root).expanduser().resolve()
        config = root / CONFIG_FILE
        if not config.is_file():
            raise WorkspaceNotFound(
                f"{root} is not a rulelife workspace (no {CONFIG_FILE}); run `rulelife init {root}` first"
            )
        return cls(root=root, settings=load_settings(config, **overrides))

    @classmethod
    def find(cls, explicit: Path | None = None, start: Path | None = None) -> Workspace:
        """The workspace named by ``explicit``, $RULELIFE_WORKSPACE, or the nearest
        folder at or above ``start`` (default: the current directory) holding rulelife.toml."""
        if explicit is None and os.environ.get(WORKSPACE_ENV):
            explicit = Path(os.environ[WORKSPACE_ENV])
        if explicit is not None:
            return cls.load(explicit)
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILE).is_file():
                return cls.load(folder)
        raise WorkspaceNotFound(
            f"no rulelife workspace at or above {here}; run `rulelife init DIR`, "
            f"cd into a workspace, or pass --workspace DIR (or set {WORKSPACE_ENV})"
        )

    @classmethod
    def create(cls, root: Path, *, db_url: str | None = None, settings: dict[str, Any] | None = None) -> Workspace:
        """Create ``root`` with a default rulelife.toml and empty folders (idempotent).

        ``settings`` are written into the new file in place of the defaults
        (an existing file is left as it is).
        """
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        config = root / CONFIG_FILE
        if not config.exists():
            values = dict(settings or {})
            if db_url:
                values["db_url"] = db_url
            # A database or webhook URL may carry a password, a webhook secret is one: only the owner reads such a file.
            private = any(values.get(key) for key in ("db_url", "webhook_url", "webhook_secret"))
            atomic_write(config, _default_toml(values), mode=0o600 if private else 0o644)
        workspace = cls.load(root)
        for folder in (workspace.rules_dir, workspace.bundle_dir, workspace.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return workspace
