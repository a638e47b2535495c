"""Workspace and settings.

A workspace is a folder holding ``rulelife.toml``. Settings are read from, in
order of precedence: explicit overrides, environment variables
(``RULELIFE_DB_URL``, ``RULELIFE_SHADOW_RATE``, ...), the ``rulelife.toml`` file,
and the defaults below. Relative paths (and a relative SQLite file) are taken
relative to the workspace folder, never to the current directory, so a cron job
and a person at a terminal see the same workspace.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from rulelife._files import atomic_write
from rulelife.errors import ConfigError, WorkspaceNotFound

__all__ = ["CONFIG_FILE", "Settings", "Workspace", "load_settings"]

CONFIG_FILE = "rulelife.toml"
WORKSPACE_ENV = "RULELIFE_WORKSPACE"


class Settings(BaseSettings):
    """Every tunable of a deployment; each can be set in rulelife.toml or as RULELIFE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="RULELIFE_", extra="forbid", validate_default=True)

    rules_dir: Path = Field(Path("rules"), description="folder of rule YAML files")
    db_url: str = Field("sqlite:///rulelife.db", description="SQLAlchemy URL of the registry")
    db_schema: str | None = Field(None, description="PostgreSQL schema for the tables (default: search_path)")
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
    monitors: list[str] = Field(
        ["agreement_cusum", "agreement_floor", "coverage_drift", "safety_fp", "expiry"],
        description="monitors the nightly job runs, by entry-point name",
    )
    monitor_min_shadow: int = Field(20, ge=1, description="shadow samples a day needs before its agreement counts")
    floor_days: int = Field(3, ge=1, description="consecutive days below the agreement floor that disable a rule")
    cusum_k: float = Field(0.5, gt=0, description="CUSUM reference value, in standard errors of daily agreement")
    cusum_arl0: float = Field(2000.0, gt=1, description="target days between false CUSUM alarms on a stable series")
    coverage_window_days: int = Field(90, ge=7, description="days of history for the fire-rate median")
    coverage_min_days: int = Field(14, ge=3, description="history days needed before coverage drift is judged")
    coverage_tolerance: float = Field(0.20, gt=0, description="relative band around the median fire rate")
    coverage_min_z: float = Field(4.0, gt=0, description="standard deviations of counting noise a drift must exceed")
    expiry_grace_days: int = Field(7, ge=0, description="days past expiry before an unrenewed rule is disabled")
    ticket_dir: Path = Field(Path("tickets"), description="folder sink: one JSON and Markdown file per ticket")
    webhook_url: str | None = Field(None, description="generic JSON webhook for ticket events (none: off)")
    webhook_attempts: int = Field(3, ge=1, description="delivery attempts per webhook event per run")
    report_after_nightly: bool = Field(False, description="write the rule health page beside the tickets each night")
    shadow_auto_promote: bool = Field(False, description="the nightly promotes each shadow rule whose live evidence "
                                                         "clears the gate (audited, actor nightly); off: a person "
                                                         "promotes with `rulelife promote`")

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
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None, **overrides: Any) -> Settings:
    """Read settings from ``config_file`` (None: defaults) under env and overrides."""

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    source = str(config_file) if config_file else "settings"
    try:
        settings = _FromFile(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML ({exc}); fix the file") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            env = f"RULELIFE_{name.upper()}"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(Settings.model_fields)
                problems.append(f"unknown setting '{name}' (allowed: {allowed})")
            else:
                problems.append(f"setting '{name}' (from the file or {env}): {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
    return Settings.model_validate(settings.model_dump())


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (intent names may hold quotes, backslashes, any script)."""
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(str(text), ensure_ascii=False).replace("\x7f", "\\u007f")


def _default_toml(values: dict[str, Any] | None = None) -> str:
    values = values or {}
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; allowed: {', '.join(Settings.model_fields)}")
    lines = ["# rulelife workspace settings; every key can be overridden by RULELIFE_<KEY>.", ""]
    for name, field in Settings.model_fields.items():
        default = values.get(name, field.default)
        if default is None:
            lines.append(f"# {field.description}")
            lines.append(f"# {name} = ")
            continue
        if isinstance(default, bool):
            value = "true" if default else "false"
        elif isinstance(default, Path):
            value = _toml_string(default.as_posix())
        elif isinstance(default, str):
            value = _toml_string(default)
        elif isinstance(default, list):
            value = "[" + ", ".join(_toml_string(v) for v in default) + "]"
        elif isinstance(default, dict):
            # Keys are quoted: intent names (severity_weights) may hold spaces, dots or any script.
            value = "{ " + ", ".join(f"{_toml_string(k)} = {v!r}" for k, v in default.items()) + " }"
        else:
            value = repr(default)
        lines.append(f"# {field.description}")
        lines.append(f"{name} = {value}")
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
            # A database or webhook URL may carry a password: only the owner reads such a file.
            private = any(values.get(key) for key in ("db_url", "webhook_url"))
            atomic_write(config, _default_toml(values), mode=0o600 if private else 0o644)
        workspace = cls.load(root)
        for folder in (workspace.rules_dir, workspace.bundle_dir, workspace.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return workspace
