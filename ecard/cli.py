"""`ecard ...` commands: thin wrappers over the domain functions (see CONTRACT.md, Command line).

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 anything else.
Heavy modules are imported inside each command so that `ecard --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ecard.errors import EcardError, InputError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")


# --- face pipeline: liveness, match, blinks ---------------------------------------------------


def _register_face_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Face pipeline commands (owned by ecard/liveness and ecard/faces)."""


# --- tokens: keys rotate, verify, scan ---------------------------------------------------------


def _instance() -> Any:
    from pathlib import Path

    from ecard.config import load_settings

    return Path(load_settings().instance)


def _open_instance_keys(*, create: bool) -> Any:
    """The instance's KeyStore (``ECARD_INSTANCE``, default ./instance)."""
    from ecard.tokens.keys import KeyStore

    store = KeyStore(_instance()).load()
    if not create and not store.entries():
        raise InputError(f"No signing keys in {store.folder}; pass --jwks FILE_OR_URL.")
    return store


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    store = _open_instance_keys(create=True)
    previous = store.signing_key().kid if store.entries() else None
    kid = store.rotate()
    _print_json({"kid": kid, "previous": previous, "folder": str(store.folder)})
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    store = _open_instance_keys(create=True)
    for e in store.entries():
        d = e.to_dict()
        d.pop("jwk")
        _print_json(d)
    return 0


def _cmd_keys_retire(args: argparse.Namespace) -> int:
    store = _open_instance_keys(create=False)
    store.retire(args.kid)
    _print_json({"kid": args.kid, "state": "retired"})
    return 0


def _cmd_keys_jwks(args: argparse.Namespace) -> int:
    _print_json(_open_instance_keys(create=False).jwks())
    return 0


def _read_token(value: str) -> str:
    """A token from the command line, or from stdin when given as ``-``."""
    token = sys.stdin.read() if value == "-" else value
    return token.strip()


def _key_source(jwks: str | None) -> Any:
    """KeySet from a JWKS file or URL, or the instance's KeyStore."""
    if jwks is None:
        return _open_instance_keys(create=False)
    from pathlib import Path

    from ecard.errors import TokenMalformedError
    from ecard.tokens.keys import KeySet
    from ecard.tokens.verifier import urllib_fetch

    remote = jwks.startswith(("http://", "https://"))
    raw = urllib_fetch(jwks) if remote else Path(jwks).read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError:
        raise TokenMalformedError("The JWKS is not JSON.") from None
    return KeySet.from_jwks(doc)


def _cmd_verify(args: argparse.Namespace) -> int:
    from ecard.tokens.cards import issuer_from_env, verify_card

    token = _read_token(args.token)
    issuer = args.issuer or issuer_from_env()
    if args.jwks and args.jwks.startswith(("http://", "https://")):
        from ecard.tokens.verifier import OfflineVerifier

        result = OfflineVerifier(args.jwks, issuer=issuer).verify(
            token, check_status=not args.no_status
        )
        out = result.to_dict()
        _print_json(out)
        if not result.valid:
            sys.stderr.write(f"ecard: card_{out['status']}: the card is {out['status']}.\n")
            return 2
        return 0
    card = verify_card(token, _key_source(args.jwks), issuer=issuer)
    _print_json({"valid": True, "status": None, "kid": card.kid, "claims": card.to_dict()})
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ecard.tokens.cards import issuer_from_env
    from ecard.tokens.qr import decode_qr_image, verify_qr

    text = decode_qr_image(Path(args.image).read_bytes())
    # Single use is enforced where scans are recorded (POST /api/v1/scan); this is a check.
    qr = verify_qr(
        text,
        _key_source(args.jwks),
        issuer=args.issuer or issuer_from_env(),
        replay_guard=None,
    )
    _print_json(
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


def _register_token_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Token commands (owned by ecard/tokens)."""
    keys = sub.add_parser("keys", help="signing keys in $ECARD_INSTANCE/keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=_Parser)
    keys_sub.required = True
    p = keys_sub.add_parser("rotate", help="new signing key; old keys verify until retired")
    p.set_defaults(handler=_cmd_keys_rotate)
    p = keys_sub.add_parser("list", help="every key with its state, one JSON object per line")
    p.set_defaults(handler=_cmd_keys_list)
    p = keys_sub.add_parser("retire", help="retire a verify-only key: its cards stop verifying")
    p.add_argument("kid")
    p.set_defaults(handler=_cmd_keys_retire)
    p = keys_sub.add_parser("jwks", help="print the JWKS (every key that may still verify)")
    p.set_defaults(handler=_cmd_keys_jwks)

    issuer_help = "expected iss (default: $ECARD_ISSUER, $ECARD_PUBLIC_URL, http://127.0.0.1:8000)"
    p = sub.add_parser("verify", help="verify an e-card offline")
    p.add_argument("token", metavar="TOKEN", help="the e-card token, or - to read it from stdin")
    p.add_argument("--jwks", metavar="FILE_OR_URL", help="JWKS file or URL (default: instance)")
    p.add_argument("--issuer", help=issuer_help)
    p.add_argument("--no-status", action="store_true", help="with a JWKS URL: skip the status list")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("scan", help="decode an e-card QR code from a picture and verify it")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--jwks", metavar="FILE_OR_URL", help="JWKS file or URL (default: instance)")
    p.add_argument("--issuer", help=issuer_help)
    p.set_defaults(handler=_cmd_scan)


# --- service: citizens, channels, serve --------------------------------------------------------


def _register_service_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Service commands (owned by ecard/web and the store)."""


# --- entry point -------------------------------------------------------------------------------


def build_parser() -> _Parser:
    parser = _Parser(prog="ecard", description="Electronic social security cards.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _register_face_commands(sub)
    _register_token_commands(sub)
    _register_service_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except EcardError as exc:
        sys.stderr.write(f"ecard: {exc.code}: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ecard: interrupted\n")
        return 1
    except OSError as exc:  # a file the user named cannot be read or written
        sys.stderr.write(f"ecard: {InputError.code}: {exc.strerror or exc}: {exc.filename}\n")
        return InputError.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
