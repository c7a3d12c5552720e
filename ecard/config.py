"""One frozen :class:`Settings` object, read once from the environment (docs/service.md,
"Configuration", lists every variable).

:func:`load_settings` is the only reader of the process environment in ecard: ``create_app()``
and the CLI entry call it once and pass the result down; nothing reads ``os.environ`` at import.
Tests pass a mapping instead (``load_settings({"ECARD_MAX_FRAMES": "10"})``).

Every variable is ``ECARD_`` + the field name in capitals (``max_frames`` is
``ECARD_MAX_FRAMES``); an empty value means "not set". A bad value is a
:class:`~ecard.errors.ConfigError` whose message is one line naming the variable, e.g.
``ECARD_MAX_FRAMES must be a whole number, not 'abc'.`` (the CLI prints it and exits 2).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ecard.errors import ConfigError

ENV_PREFIX = "ECARD_"
#: ``ecard serve``'s address when neither ``--host/--port`` nor ``ECARD_BIND`` say otherwise.
DEFAULT_BIND = "127.0.0.1:8000"
#: Hosts that mean "every interface": not an address a browser or verifier can use.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_BIND = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})$")


def _packaged(name: str) -> Path:
    """A data file shipped inside the wheel (``ecard/faces/data/``), found by importlib."""
    from importlib.resources import files

    return Path(str(files("ecard.faces") / "data" / name))


class Settings(BaseSettings):
    """Service configuration (frozen). Build it with :func:`load_settings`.

    ``Settings(...)`` itself reads nothing from the environment: :func:`load_settings` feeds it
    the mapping (``os.environ`` by default) through pydantic-settings' env source, so a test's
    mapping is never mixed with the variables of the process running the tests.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # --- instance, database -------------------------------------------------------------------
    #: Instance folder (database, signing keys, PIN pepper, demo secrets); made 0700.
    instance: Path = Path("./instance")
    #: SQLAlchemy URL; default SQLite ``ecard.sqlite3`` in the instance folder.
    database_url: str = Field("", repr=False)  # may hold a password

    # --- liveness -----------------------------------------------------------------------------
    #: ``None``: the default random challenge (cues revealed live by the capture protocol). An
    #: integer N: at least N blinks anywhere in the clip, no cues (demos and tests).
    liveness_challenge: int | None = None
    #: **Tests only**: every live capture draws its challenge from ``random.Random(seed)``, so
    #: every capture gets the same, predictable cue times. ``ecard serve`` refuses it.
    liveness_seed: int | None = None

    # --- web limits ---------------------------------------------------------------------------
    #: Largest request body in bytes (video or frames upload included).
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=1 << 30)
    #: Most frames accepted in one liveness upload (about 20 s at 15 fps).
    max_frames: int = Field(300, ge=1, le=10_000)
    #: Longest clip accepted, in milliseconds.
    max_clip_ms: int = Field(20_000, ge=1_000, le=600_000)
    #: Largest frame side accepted, in pixels.
    max_frame_side: int = Field(1920, ge=64, le=8192)

    # --- rate limits (flask-limiter) ------------------------------------------------------------
    ratelimit_enabled: bool = True
    #: ``memory://`` (one process) or ``redis://host:port`` (shared by workers and nodes).
    ratelimit_storage_url: str = "memory://"
    #: Default per-client-IP limit for every API route.
    ratelimit_ip: str = "300 per minute"
    #: Per-channel limit for routes that authenticate a channel.
    ratelimit_channel: str = "1200 per minute"
    #: Limit per client IP on routes that take a PIN or run liveness.
    ratelimit_sensitive: str = "20 per minute"

    # --- public origin, issuer ------------------------------------------------------------------
    #: Public base URL of the service (links, ``enroll_url``, status list URIs); default: the
    #: address ``ecard serve`` listens on (:attr:`bind`). Never taken from a request header.
    public_url: str | None = None
    #: ``iss`` of issued cards; default :attr:`public_base`.
    issuer: str | None = None

    # --- status list ----------------------------------------------------------------------------
    #: Seconds a status list token is valid (``exp - iat``), at most one hour: an offline
    #: verifier sees a suspension within this plus its 30 s leeway (docs/tokens.md).
    status_list_exp_s: int = Field(3600, ge=60, le=3600)
    #: Seconds a relying party may use its copy before fetching again (``ttl``); at most the
    #: expiry.
    status_list_ttl_s: int = Field(60, ge=1, le=3600)

    # --- models -------------------------------------------------------------------------------
    #: Folder of the dlib ``.dat`` files; default the ``face_recognition_models`` package's.
    models_dir: Path | None = None

    # --- ecard serve (gunicorn) -----------------------------------------------------------------
    #: ``host:port`` gunicorn listens on (``ecard serve --host/--port`` override it).
    bind: str = DEFAULT_BIND
    workers: int = Field(2, ge=1, le=64)
    worker_class: Literal["gthread", "sync"] = "gthread"
    threads: int = Field(4, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

    # --- metrics --------------------------------------------------------------------------------
    #: Bearer token that ``/metrics`` requires; unset: ``/metrics`` answers 404.
    metrics_token: SecretStr | None = None
    #: Prometheus multi-process folder of this node (``ecard serve``); default
    #: ``<instance>/prometheus-<hostname>``, cleared at start.
    metrics_dir: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load_settings passes in: never os.environ behind the caller's back.
        return (init_settings,)

    # --- validators (messages name the variable: they are shown to the operator as is) -------

    @field_validator("instance", mode="after")
    @classmethod
    def _resolve_instance(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url", mode="after")
    @classmethod
    def _default_database(cls, value: str, info: Any) -> str:
        if value:
            return value
        instance = info.data.get("instance") or Path("./instance").resolve()
        return f"sqlite:///{instance / 'ecard.sqlite3'}"

    @field_validator("liveness_challenge", mode="before")
    @classmethod
    def _challenge(cls, value: object) -> int | None:
        if value is None or isinstance(value, int):
            raw: object = value
        else:
            raw = str(value).strip().lower()
            if raw in ("", "random"):
                return None
            try:
                raw = int(str(raw))
            except ValueError:
                raise ValueError(
                    f"ECARD_LIVENESS_CHALLENGE must be 'random' or a whole number, not {raw!r}."
                ) from None
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 10:
            raise ValueError("ECARD_LIVENESS_CHALLENGE must be between 0 and 10.")
        return raw

    @field_validator("liveness_seed", mode="before")
    @classmethod
    def _seed(cls, value: object) -> int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raw = str(value).strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"ECARD_LIVENESS_SEED (tests only) must be a whole number, not {raw!r}."
            ) from None

    @field_validator("ratelimit_ip", "ratelimit_channel", "ratelimit_sensitive", mode="after")
    @classmethod
    def _rate(cls, value: str, info: Any) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            name = ENV_PREFIX + str(info.field_name).upper()
            raise ValueError(
                f"{name} must be a rate limit such as '20 per minute', not {value!r}."
            ) from None
        return value

    @field_validator("ratelimit_storage_url", mode="after")
    @classmethod
    def _storage(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "ECARD_RATELIMIT_STORAGE_URL must be a storage URL such as 'memory://' or "
                f"'redis://127.0.0.1:6379', not {value!r}."
            )
        return value

    @field_validator("public_url", "issuer", mode="after")
    @classmethod
    def _origin(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            name = ENV_PREFIX + str(info.field_name).upper()
            raise ValueError(
                f"{name} must be an http:// or https:// URL such as 'https://ecard.example', "
                f"not {value!r}."
            )
        return value

    @field_validator("bind", mode="after")
    @classmethod
    def _bind(cls, value: str) -> str:
        m = _BIND.match(value.strip())
        if m is None or not 0 < int(m["port"]) < 65536:
            raise ValueError(
                f"ECARD_BIND must be host:port with a port from 1 to 65535, not {value!r}."
            )
        return value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("status_list_ttl_s", mode="after")
    @classmethod
    def _ttl(cls, value: int, info: ValidationInfo) -> int:
        exp = info.data.get("status_list_exp_s")
        if exp is not None and value > exp:
            raise ValueError(
                f"ECARD_STATUS_LIST_TTL_S ({value}) must not exceed ECARD_STATUS_LIST_EXP_S "
                f"({exp})."
            )
        return value

    @field_validator("metrics_token", mode="after")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("ECARD_METRICS_TOKEN must be at least 16 characters long.")
        return value

    # --- derived values -------------------------------------------------------------------------

    @property
    def bind_host(self) -> str:
        m = _BIND.match(self.bind)
        assert m is not None  # checked by the validator
        return m["v6"] or m["host"] or ""

    @property
    def bind_port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])

    @property
    def public_base(self) -> str:
        """The one origin of links, ``enroll_url`` and status list URIs: ``ECARD_PUBLIC_URL``,
        else ``http://`` + the address ``ecard serve`` listens on (a wildcard host becomes
        ``127.0.0.1``: set ``ECARD_PUBLIC_URL`` when serving other machines)."""
        if self.public_url:
            return self.public_url
        host = self.bind_host
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.bind_port}"

    @property
    def card_issuer(self) -> str:
        """The ``iss`` of this deployment: ``ECARD_ISSUER``, else :attr:`public_base`. Issuing
        and verifying must use the same value."""
        return self.issuer or self.public_base

    @property
    def listens_on_every_interface(self) -> bool:
        return self.bind_host in _WILDCARD_HOSTS

    @property
    def models_manifest(self) -> Path:
        """``manifest.json`` (package data): name, SHA-256, size, source and licence of every
        model file. Not configurable: the hashes that loading trusts ship with the code."""
        return _packaged("manifest.json")

    @property
    def calibration(self) -> Path:
        """``calibration.json`` (package data): the calibrated match threshold. Not
        configurable: a threshold belongs to the code and models it was measured with."""
        return _packaged("calibration.json")

    @property
    def keys_dir(self) -> Path:
        """Signing keys (``<instance>/keys``, 0700; private keys 0600)."""
        return self.instance / "keys"

    @property
    def pepper_file(self) -> Path:
        """The PIN pepper (``<instance>/pin_pepper``, 0600). Keep it out of database backups."""
        from ecard.tokens.pin import PEPPER_FILE

        return self.instance / PEPPER_FILE

    @property
    def prometheus_dir(self) -> Path:
        """This node's Prometheus multi-process folder (``ECARD_METRICS_DIR``, else
        ``<instance>/prometheus-<hostname>``): never shared by two nodes of one instance."""
        if self.metrics_dir is not None:
            return self.metrics_dir.expanduser().resolve()
        node = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "node"
        return self.instance / f"prometheus-{node}"

    def prepare_instance(self) -> Path:
        """Create the instance folder 0700 (closing a looser existing mode, whatever the umask)
        and close the mode of secrets already in it (PIN pepper, demo credentials) to 0600.
        The database file and the signing keys are made 0600 by their own code."""
        self.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.instance.stat().st_mode & 0o077:
            os.chmod(self.instance, 0o700)
        for secret in (self.pepper_file, self.instance / "demo.json"):
            try:
                loose = secret.stat().st_mode & 0o077
            except FileNotFoundError:
                continue
            if loose:
                os.chmod(secret, 0o600)
        return self.instance


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # What pydantic-settings does with os.environ: names folded (case_sensitive=False),
        # empty values dropped (env_ignore_empty=True).
        return {k.lower(): str(v) for k, v in self._mapping.items() if str(v).strip() != ""}


#: Fields whose value is never echoed in an error message.
_SECRET_FIELDS = frozenset({"metrics_token", "database_url"})


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (default ``os.environ``; only ``ECARD_*`` keys are read).

    Raises :class:`~ecard.errors.ConfigError` (exit 2) with one line naming the variable.
    """
    source_env: Mapping[str, str] = os.environ if env is None else env
    picked = {k: v for k, v in source_env.items() if k.upper().startswith(ENV_PREFIX)}
    try:
        values = _MappingEnvSource(Settings, picked)()
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    name = ENV_PREFIX + field.upper() if field else "A setting"
    return describe_error(name, err, secret=field in _SECRET_FIELDS)


def describe_error(name: str, err: Any, *, secret: bool = False) -> str:
    """One sentence for one pydantic error dict about the variable ``name``."""
    kind = err.get("type", "")
    given = "" if secret else _shown(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", "")))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be a whole number{given}."
    if kind in ("greater_than_equal", "greater_than"):
        return f"{name} must be at least {ctx.get('ge', ctx.get('gt'))}{given}."
    if kind in ("less_than_equal", "less_than"):
        return f"{name} must be at most {ctx.get('le', ctx.get('lt'))}{given}."
    if kind in ("bool_parsing", "bool_type"):
        return f"{name} must be true or false (1/0, yes/no, on/off){given}."
    if kind == "literal_error":
        return f"{name} must be one of {ctx.get('expected', '')}{given}."
    return f"{name} is not valid ({err.get('msg', '')}){given}."


def _shown(value: object) -> str:
    if value is None or isinstance(value, dict):
        return ""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return f", not {text[:60]}"


_BOOL = TypeAdapter(bool)


def parse_flag(name: str, value: object) -> bool:
    """A typed boolean for the test-only keys of ``create_app``'s mapping (``TESTING``,
    ``LOAD_MODELS``): ``"0"``, ``"false"``, ``"no"``, ``"off"`` are false."""
    if isinstance(value, str):
        value = value.strip().lower()
    try:
        return bool(_BOOL.validate_python(value))
    except ValidationError as exc:
        raise ConfigError(describe_error(name, exc.errors(include_url=False)[0])) from None
