"""``ecard demo``: prepare an instance a newcomer can try at once (what ``make serve`` runs).

Idempotent: the database is migrated, the signing key created on first run, and a demo channel
(scopes ``enroll,verify``), a demo hospital (scope ``scan``) and a demo citizen are created once;
their credentials live in ``<instance>/demo.json`` (mode 0600) and are printed every time.

``photo`` replaces the demo citizen's ID photo (a newcomer's own selfie, for a real try with a
webcam); ``enroll_base`` also starts a fresh enrollment for the demo citizen as the demo channel
and returns the page URL to open (valid 15 minutes, like any enrollment link).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecard.channels import ChannelCredentials, set_channel_secret
from ecard.citizens import add_citizen, find_citizen, replace_photo
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
    enroll_url: str | None = None
    enroll_expires_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel,
            "hospital": self.hospital,
            "citizen": self.citizen,
        }
        if self.enroll_url is not None:
            out["enroll_url"] = self.enroll_url
            out["enroll_expires_at"] = self.enroll_expires_at
        return out


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


def prepare_demo(
    settings: Settings, *, photo: bytes | None = None, enroll_base: str | None = None
) -> DemoInstance:
    """Migrate, create the signing key and the demo channel, hospital and citizen (once).

    ``photo`` replaces the demo citizen's ID photo; ``enroll_base`` (e.g.
    ``http://127.0.0.1:8000``) starts an enrollment and returns its page URL.
    """
    from ecard.channels import authenticate
    from ecard.enrollment import Enrollments
    from ecard.faces.models import shared_models
    from ecard.tokens.keys import KeyStore

    settings.prepare_instance()  # 0700 whatever the umask
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
                photo=photo if photo is not None else DEMO_PHOTO.read_bytes(),
                models=shared_models(settings.models_dir),
            )
        elif photo is not None:
            models = shared_models(settings.models_dir)
            replace_photo(store, id_number=DEMO_ID_NUMBER, photo=photo, models=models)
        url = expires = None
        if enroll_base is not None:
            ident = authenticate(store, ch.client_id, ch.client_secret)
            auth = Enrollments(store).authorize(ident, DEMO_ID_NUMBER, DEMO_NAME)
            url = f"{enroll_base.rstrip('/')}/enroll/{auth.token}"
            expires = auth.expires_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    finally:
        store.close()
    return DemoInstance(
        channel={"name": DEMO_CHANNEL, **_creds(ch)},
        hospital={"name": DEMO_HOSPITAL, **_creds(ho)},
        citizen={"id_number": DEMO_ID_NUMBER, "name": DEMO_NAME},
        enroll_url=url,
        enroll_expires_at=expires,
    )
