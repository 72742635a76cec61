"""Configuration from a TOML file, ``POLYFEED_*`` environment variables and overrides.

Precedence, lowest first: the profile's defaults < the TOML file < ``POLYFEED_*`` environment
variables < explicit overrides (command-line flags). The profile itself is chosen the same way
(``profile = "hft"`` in the file, ``POLYFEED_PROFILE``, ``--profile``).

Keys are dotted: a section and a field of :class:`~polyfeed.config.StreamConfig`
(``heartbeat.interval``, ``watchdog.data_timeout``, ``backoff.max_delay``, ``queue.maxsize``,
``endpoints.market_url``, ``pool.open_interval``) or a top-level field (``connect_timeout``,
``max_frame_bytes``, ``max_assets_per_connection``). In
the file they are TOML tables; in the environment ``POLYFEED_`` + the key in capitals with
``_`` for the dot (``POLYFEED_HEARTBEAT_INTERVAL=5``, ``POLYFEED_CONNECT_TIMEOUT=3``). The
file is ``--config PATH`` or ``POLYFEED_CONFIG``. API credentials (``[credentials]``
``api_key``/``secret``/``passphrase``, or ``POLYMARKET_API_*``) are read but never shown.

An unknown key, a value of the wrong type or one the configuration rejects raises
:class:`~polyfeed.errors.ConfigError` naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyfeed.config import PROFILES, StreamConfig
from polyfeed.credentials import ENV_API_KEY, ENV_API_PASSPHRASE, ENV_API_SECRET, Credentials
from polyfeed.errors import ConfigError

logger = logging.getLogger("polyfeed.config")

ENV_PREFIX = "POLYFEED_"
ENV_CONFIG = "POLYFEED_CONFIG"
# Not settings: the test suite's own variables (fuzz lengths, a Redis URL, the build to expect),
# and the install-time switch to the pure-Python build (setup.py), which may stay set.
ENV_NOT_SETTINGS = ("POLYFEED_TEST_", "POLYFEED_FUZZ_", "POLYFEED_PURE_PYTHON")
ENV_PROFILE = "POLYFEED_PROFILE"
DEFAULT_PROFILE = "dashboard"
CREDENTIAL_KEYS = ("api_key", "secret", "passphrase")
REDACTED = "<redacted>"

_SECTIONS = ("heartbeat", "watchdog", "backoff", "queue", "endpoints", "pool")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(StreamConfig)
    keys: dict[str, Any] = {}
    for name, hint in hints.items():
        if name in _SECTIONS:
            for sub, sub_hint in typing.get_type_hints(hint).items():
                keys[f"{name}.{sub}"] = sub_hint
        else:
            keys[name] = hint
    return keys


KEYS: dict[str, Any] = _field_types()
"""Every configurable key and its type."""


def _convert(key: str, value: object, kind: Any) -> object:
    """``value`` (TOML value or environment string) as ``kind``; ValueError when it is not."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        unset = value is None or (isinstance(value, str) and value.lower() in ("", "none"))
        if unset and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _convert(key, value, others[0])
    if typing.get_origin(kind) is typing.Literal:
        if value not in args:
            raise ValueError(f"expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {value!r}")
    raise ValueError(f"unsupported type {kind!r}")  # pragma: no cover - every field is covered


@dataclass(frozen=True, slots=True)
class Setting:
    """One value and where it came from (``default``, ``file PATH``, ``env NAME``, ``flag``)."""

    value: object
    source: str


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    """The configuration a command runs with, each value with its source."""

    profile: Setting
    config: StreamConfig
    settings: dict[str, Setting]
    credentials: Credentials | None = None
    credentials_source: str | None = None
    file: Path | None = None

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, value, source) for every key, credentials redacted."""
        out = [("profile", str(self.profile.value), self.profile.source)]
        for key, setting in self.settings.items():
            out.append((key, _show(setting.value), setting.source))
        if self.credentials is not None:
            for key in CREDENTIAL_KEYS:
                out.append((f"credentials.{key}", REDACTED, self.credentials_source or ""))
        return out

    def to_toml(self) -> str:
        """The effective configuration as a TOML file (credentials redacted, sources as
        comments): ``polyfeed config show > polyfeed.toml`` is a starting point."""
        lines = [f'profile = "{self.profile.value}"  # {self.profile.source}']
        section = ""
        # TOML: the top-level keys before the first table.
        ordered = sorted(self.settings.items(), key=lambda item: "." in item[0])
        for key, setting in ordered:
            head, _, name = key.rpartition(".")
            if head != section:
                lines.extend(["", f"[{head}]"])
                section = head
            if setting.value is None:
                lines.append(f"# {name} = (unset)  # {setting.source}")
            else:
                lines.append(f"{name} = {_toml(setting.value)}  # {setting.source}")
        if self.credentials is not None:
            lines.extend(["", "[credentials]"])
            lines.extend(
                f'{key} = "{REDACTED}"  # {self.credentials_source}' for key in CREDENTIAL_KEYS
            )
        return "\n".join(lines) + "\n"


def _show(value: object) -> str:
    return "(unset)" if value is None else str(value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _flatten(table: Mapping[str, Any], source: str) -> dict[str, Setting]:
    flat: dict[str, Setting] = {}
    for name, value in table.items():
        if name == "credentials":
            continue
        if isinstance(value, dict):
            if name not in _SECTIONS:
                raise ConfigError(f"unknown section [{name}] ({source})")
            for sub, sub_value in value.items():
                flat[f"{name}.{sub}"] = Setting(sub_value, source)
        else:
            flat[name] = Setting(value, source)
    return flat


def read_file(path: Path) -> tuple[dict[str, Setting], dict[str, Any]]:
    """The settings of a TOML file and its ``[credentials]`` table (raises ConfigError)."""
    source = f"file {path}"
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    credentials = table.get("credentials", {})
    if not isinstance(credentials, dict):
        raise ConfigError(f"credentials in {path} must be a table")
    return _flatten(table, source), credentials


def read_env(environ: Mapping[str, str]) -> dict[str, Setting]:
    """The ``POLYFEED_*`` settings of an environment (``POLYFEED_CONFIG`` excluded)."""
    by_env = {ENV_PREFIX + key.upper().replace(".", "_"): key for key in KEYS}
    by_env[ENV_PROFILE] = "profile"
    settings: dict[str, Setting] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        if name.startswith(ENV_NOT_SETTINGS):
            continue
        key = by_env.get(name)
        if key is None:
            # Not fatal, but said: most likely a typo of a setting's name.
            logger.warning("ignoring %s: not a configuration key", name)
            continue
        settings[key] = Setting(value, f"env {name}")
    return settings


def _build(profile: str, settings: Mapping[str, Setting]) -> StreamConfig:
    config = StreamConfig.from_profile(profile)
    values: dict[str, object] = {}
    for key, setting in settings.items():
        if key not in KEYS:
            raise ConfigError(f"unknown key {key!r} ({setting.source})")
        try:
            values[key] = _convert(key, setting.value, KEYS[key])
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc} ({setting.source})") from None
    # One key at a time first, so that a rejected value is named alone; a rule between two
    # keys (pong_timeout > interval, max_delay >= base) is judged with all of them below.
    for key, value in values.items():
        try:
            _apply(config, {key: value})
        except ConfigError as exc:
            if not any(rule in str(exc) for rule in _CROSS_FIELD_RULES):
                raise ConfigError(f"{key}: {exc} ({settings[key].source})") from None
    try:
        return _apply(config, values)
    except ConfigError as exc:
        keys = ", ".join(f"{k} ({settings[k].source})" for k in values)
        raise ConfigError(f"{keys}: {exc}") from None


_CROSS_FIELD_RULES = ("longer than the heartbeat interval", "must be >= base")


def _apply(config: StreamConfig, values: Mapping[str, object]) -> StreamConfig:
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        head, _, name = key.rpartition(".")
        if head:
            sections.setdefault(head, {})[name] = value
        else:
            top[name] = value
    for head, changes in sections.items():
        top[head] = dataclasses.replace(getattr(config, head), **changes)
    return dataclasses.replace(config, **top)  # type: ignore[arg-type]


def _flat_config(
    config: StreamConfig, sources: Mapping[str, str], profile: str
) -> dict[str, Setting]:
    flat: dict[str, Setting] = {}
    for key in KEYS:
        head, _, name = key.rpartition(".")
        value = getattr(getattr(config, head), name) if head else getattr(config, key)
        flat[key] = Setting(value, sources.get(key, f"profile {profile}"))
    return flat


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    profile: str | None = None,
) -> EffectiveConfig:
    """The effective configuration: profile < file < environment < ``overrides``.

    ``path`` None reads ``POLYFEED_CONFIG`` when set; ``profile`` None takes it from the
    environment, then the file, then ``dashboard``; ``overrides`` maps dotted keys to values
    (from flags). Raises :class:`~polyfeed.errors.ConfigError` naming the bad key.
    """
    environ = os.environ if environ is None else environ
    file_path = Path(path) if path is not None else None
    if file_path is None and environ.get(ENV_CONFIG):
        file_path = Path(environ[ENV_CONFIG])
    file_settings: dict[str, Setting] = {}
    file_credentials: dict[str, Any] = {}
    if file_path is not None:
        file_settings, file_credentials = read_file(file_path)
    merged = {**file_settings, **read_env(environ)}
    for key, value in (overrides or {}).items():
        merged[key] = Setting(value, "flag")
    chosen = merged.pop("profile", Setting(DEFAULT_PROFILE, "default"))
    if profile is not None:
        chosen = Setting(profile, "flag")
    if chosen.value not in PROFILES:
        raise ConfigError(
            f"profile: unknown profile {chosen.value!r} ({chosen.source}); choose one of "
            f"{', '.join(sorted(PROFILES))}"
        )
    config = _build(str(chosen.value), merged)
    sources = {key: setting.source for key, setting in merged.items()}
    credentials, credentials_source = _credentials(file_credentials, file_path, environ)
    return EffectiveConfig(
        profile=chosen,
        config=config,
        settings=_flat_config(config, sources, str(chosen.value)),
        credentials=credentials,
        credentials_source=credentials_source,
        file=file_path,
    )


def _credentials(
    table: Mapping[str, Any], path: Path | None, environ: Mapping[str, str]
) -> tuple[Credentials | None, str | None]:
    if all(environ.get(name) for name in (ENV_API_KEY, ENV_API_SECRET, ENV_API_PASSPHRASE)):
        return Credentials.from_env(environ), "env POLYMARKET_API_*"
    if not table:
        return None, None
    unknown = set(table) - set(CREDENTIAL_KEYS)
    if unknown:
        raise ConfigError(f"credentials: unknown key {sorted(unknown)[0]!r} (file {path})")
    missing = [key for key in CREDENTIAL_KEYS if not isinstance(table.get(key), str)]
    if missing:
        raise ConfigError(f"credentials.{missing[0]}: missing or not a string (file {path})")
    credentials = Credentials(
        api_key=table["api_key"], secret=table["secret"], passphrase=table["passphrase"]
    )
    return credentials, f"file {path}"


__all__ = ["KEYS", "EffectiveConfig", "Setting", "load", "read_env", "read_file"]
