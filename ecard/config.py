"""One frozen Settings object, read once from the environment (see CONTRACT.md, Configuration)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ecard.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """Service configuration. Build with :func:`load_settings`; tests pass a mapping instead of env.

    ``liveness_challenge`` is ``None`` for the default random challenge (cues revealed live by
    the capture protocol), or an integer N: at least N blinks anywhere in the clip, no cues
    (demos and tests).

    ``liveness_seed`` (``ECARD_LIVENESS_SEED``) is **for tests only**: when set, every live
    capture draws its challenge from ``random.Random(seed)``, so every capture gets the same,
    predictable cue times (a test or a browser test can then prepare a clip that follows them).
    Never set it in production: a known challenge is no challenge.
    """

    instance: Path
    database_url: str
    liveness_challenge: int | None
    liveness_seed: int | None = None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    instance = Path(env.get("ECARD_INSTANCE", "./instance")).resolve()
    database_url = env.get("ECARD_DATABASE_URL") or f"sqlite:///{instance / 'ecard.sqlite3'}"
    raw = env.get("ECARD_LIVENESS_CHALLENGE", "random").strip().lower()
    challenge: int | None
    if raw in ("", "random"):
        challenge = None
    else:
        try:
            challenge = int(raw)
        except ValueError:
            raise ConfigError(
                f"ECARD_LIVENESS_CHALLENGE must be 'random' or a whole number, not {raw!r}."
            ) from None
        if not 0 <= challenge <= 10:
            raise ConfigError("ECARD_LIVENESS_CHALLENGE must be between 0 and 10.")
    seed_raw = env.get("ECARD_LIVENESS_SEED", "").strip()
    seed: int | None = None
    if seed_raw:
        try:
            seed = int(seed_raw)
        except ValueError:
            raise ConfigError(
                f"ECARD_LIVENESS_SEED (tests only) must be a whole number, not {seed_raw!r}."
            ) from None
    return Settings(
        instance=instance,
        database_url=database_url,
        liveness_challenge=challenge,
        liveness_seed=seed,
    )
