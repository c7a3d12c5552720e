"""``ecard demo``: prepare an instance a newcomer can try at once (what ``make serve`` runs).

Idempotent: the database is migrated, the signing key created on first run, and a demo channel
(scopes ``enroll,verify``), a demo hospital (scope ``scan``) and a demo citizen are created once;
their credentials live in ``<instance>/demo.json`` (mode 0600) and are printed every time.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecard.channels import ChannelCredentials, set_channel_secret
from ecard.citizens import add_citizen, find_citizen
from ecard.config import Settings
from ecard.store import open_store

DEMO_PHOTO = Path(__file__).resolve().parent / "web" / "demo" / "citizen.jpg"
#: A valid GB 11643 number (check digit X) for the demo citizen; not a real person's.
DEMO_ID_NUMBER = "11010519491231002X"
DEMO_NAME = "Demo Citizen"
DEMO_CHANNEL = "Demo city services"
DEMO_HOSPITAL = "Demo hospital"


@dataclass(frozen=True)
class DemoInstance:
    channel: dict[str, str]
    hospital: dict[str, str]
    citizen: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "hospital": self.hospital, "citizen": self.citizen}


def _secrets_file(settings: Settings) -> dict[str, str]:
    path = settings.instance / "demo.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return data
    data = {"channel": secrets.token_urlsafe(32), "hospital": secrets.token_urlsafe(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return data


def _creds(c: ChannelCredentials) -> dict[str, str]:
    return {"client_id": c.client_id, "client_secret": c.client_secret}


def prepare_demo(settings: Settings) -> DemoInstance:
    """Migrate, create the signing key and the demo channel, hospital and citizen (once)."""
    from ecard.faces.models import shared_models
    from ecard.tokens.keys import KeyStore

    settings.instance.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url, migrate=True)
    try:
        KeyStore.open(settings.instance)
        secret = _secrets_file(settings)
        ch = set_channel_secret(store, DEMO_CHANNEL, "enroll,verify", secret["channel"])
        ho = set_channel_secret(store, DEMO_HOSPITAL, "scan", secret["hospital"])
        if find_citizen(store, DEMO_ID_NUMBER) is None:
            add_citizen(
                store,
                id_number=DEMO_ID_NUMBER,
                name=DEMO_NAME,
                photo=DEMO_PHOTO.read_bytes(),
                models=shared_models(),
            )
    finally:
        store.close()
    return DemoInstance(
        channel={"name": DEMO_CHANNEL, **_creds(ch)},
        hospital={"name": DEMO_HOSPITAL, **_creds(ho)},
        citizen={"id_number": DEMO_ID_NUMBER, "name": DEMO_NAME},
    )
