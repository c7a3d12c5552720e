"""``ecard keys ...``, ``ecard verify``, ``ecard scan``: signing keys and offline checks."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from ecard.cli.command import Command, Group
from ecard.cli.files import MAX_JWKS_BYTES, read_bounded, read_token
from ecard.cli.output import print_json
from ecard.cli.params import FILE
from ecard.errors import InputError

if TYPE_CHECKING:
    from ecard.config import Settings
    from ecard.tokens.keys import KeySet, KeyStore

ISSUER_HELP = "Expected iss (default: ECARD_ISSUER, else ECARD_PUBLIC_URL, else ECARD_BIND's URL)."
JWKS_HELP = "JWKS file or URL (default: the instance's keys)."


def _issuer(settings: Settings, given: str | None) -> str:
    return (given or settings.card_issuer).rstrip("/")


def _instance_keys(settings: Settings, *, existing: bool) -> KeyStore:
    """The instance's KeyStore (``ECARD_INSTANCE``/keys); with ``existing``, refuse an empty
    one instead of creating the first key."""
    from ecard.tokens.keys import KeyStore

    store = KeyStore(settings.instance).load()
    if existing and not store.entries():
        raise InputError(f"No signing keys in {store.folder}; pass --jwks FILE_OR_URL.")
    return store


def _key_source(settings: Settings, jwks: str | None) -> KeySet | KeyStore:
    """KeySet from a JWKS file or URL, or the instance's KeyStore."""
    if jwks is None:
        return _instance_keys(settings, existing=True)
    from ecard.errors import TokenMalformedError
    from ecard.tokens.keys import KeySet
    from ecard.tokens.verifier import urllib_fetch

    remote = jwks.startswith(("http://", "https://"))
    raw = urllib_fetch(jwks) if remote else read_bounded(jwks, MAX_JWKS_BYTES, what="JWKS file")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        raise TokenMalformedError("The JWKS is not JSON.") from None
    return KeySet.from_jwks(doc)


@click.group(cls=Group)
def keys() -> None:
    """Signing keys in $ECARD_INSTANCE/keys."""


@keys.command()
@click.pass_obj
def rotate(settings: Settings) -> int:
    """New signing key; old keys keep verifying until they are retired."""
    store = _instance_keys(settings, existing=False)
    previous = store.signing_key().kid if store.entries() else None
    kid = store.rotate()
    print_json({"kid": kid, "previous": previous, "folder": str(store.folder)})
    return 0


@keys.command(name="list")
@click.pass_obj
def list_keys(settings: Settings) -> int:
    """Every key with its state, one JSON object per line."""
    for e in _instance_keys(settings, existing=False).entries():
        d = e.to_dict()
        d.pop("jwk")
        print_json(d)
    return 0


class _KidCommand(Command):
    """A kid is base64url and starts with "-" one time in 64: what follows the command is the
    kid, never options (``-h``/``--help`` alone still ask for help)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in ("-h", "--help", "--"):
            args = ["--", *args]
        return super().parse_args(ctx, args)


@keys.command(cls=_KidCommand)
@click.argument("kid")
@click.pass_obj
def retire(settings: Settings, kid: str) -> int:
    """Retire a verify-only key: the cards it signed stop verifying."""
    _instance_keys(settings, existing=True).retire(kid)
    print_json({"kid": kid, "state": "retired"})
    return 0


@keys.command()
@click.pass_obj
def jwks(settings: Settings) -> int:
    """Print the JWKS (every key that may still verify)."""
    print_json(_instance_keys(settings, existing=True).jwks())
    return 0


@click.command(cls=Command)
@click.argument("token", metavar="TOKEN")
@click.option("--jwks", "jwks_source", metavar="FILE_OR_URL", help=JWKS_HELP)
@click.option("--issuer", metavar="ISS", help=ISSUER_HELP)
@click.option("--no-status", is_flag=True, help="With a JWKS URL: skip the status list.")
@click.pass_obj
def verify(
    settings: Settings, token: str, jwks_source: str | None, issuer: str | None, no_status: bool
) -> int:
    """Verify an e-card offline (TOKEN, or - to read it from stdin). With a JWKS URL the card's
    status list is fetched too, and a suspended or revoked card is exit 2."""
    from ecard.tokens.cards import verify_card

    text = read_token(token)
    iss = _issuer(settings, issuer)
    if jwks_source and jwks_source.startswith(("http://", "https://")):
        from ecard.tokens.verifier import OfflineVerifier

        result = OfflineVerifier(jwks_source, issuer=iss).verify(text, check_status=not no_status)
        out = result.to_dict()
        print_json(out)
        if not result.valid:
            sys.stderr.write(f"ecard: card_{out['status']}: the card is {out['status']}.\n")
            return 2
        return 0
    card = verify_card(text, _key_source(settings, jwks_source), issuer=iss)
    print_json({"valid": True, "status": None, "kid": card.kid, "claims": card.to_dict()})
    return 0


@click.command(cls=Command, short_help="Decode an e-card QR picture and verify it.")
@click.argument("image", metavar="IMAGE", type=FILE)
@click.option("--jwks", "jwks_source", metavar="FILE_OR_URL", help=JWKS_HELP)
@click.option("--issuer", metavar="ISS", help=ISSUER_HELP)
@click.pass_obj
def scan(settings: Settings, image: str, jwks_source: str | None, issuer: str | None) -> int:
    """Decode an e-card QR code from a picture and verify it (a check only: single use is
    enforced where scans are recorded, POST /api/v1/scan)."""
    from ecard.errors import MediaTooLargeError
    from ecard.image_limits import QR_PHOTO
    from ecard.tokens.qr import decode_qr_image, verify_qr

    data = read_bounded(image, QR_PHOTO.max_bytes, what=QR_PHOTO.what, error=MediaTooLargeError)
    text = decode_qr_image(data)
    qr = verify_qr(
        text,
        _key_source(settings, jwks_source),
        issuer=_issuer(settings, issuer),
        replay_guard=None,
    )
    print_json(
        {
            "valid": True,
            "card_no": qr.card_no,
            "jti": qr.jti,
            "issued_at": qr.issued_at,
            "expires_at": qr.expires_at,
            "kid": qr.kid,
        }
    )
    return 0
