"""`ecard ...` commands: thin wrappers over the domain functions (see CONTRACT.md, Command line).

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 anything else.
Heavy modules are imported inside each command so that `ecard --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _cmd_liveness(args: argparse.Namespace) -> int:
    """`ecard liveness VIDEO [--blinks N] [--json]` (owned by ecard/liveness)."""
    from ecard.faces.models import shared_models
    from ecard.liveness import Challenge, analyze_video

    if args.blinks is not None and not 0 <= args.blinks <= 10:
        raise InputError("--blinks must be between 0 and 10.")
    challenge = None if args.blinks is None else Challenge(blinks=args.blinks)
    result = analyze_video(args.video, models=shared_models(), challenge=challenge)
    if args.json:
        _print_json(result.to_dict())
    else:
        verdict = "live" if result.live else f"not live ({result.reason})"
        print(
            f"{verdict}: {result.blinks} blink(s) in {result.frames} frames, "
            f"face in {result.faces_found}, {result.duration_ms} ms"
        )
        for e in result.events:
            print(f"  {e.kind:<12} frames {e.start}-{e.end}  {e.start_ms}-{e.end_ms} ms")
    return 0


def _cmd_blinks(args: argparse.Namespace) -> int:
    """`ecard blinks SERIES --fps F [--json]` (owned by ecard/liveness)."""
    from ecard.errors import SeriesError
    from ecard.liveness import detect_blinks, parse_series

    try:
        with open(args.series, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise SeriesError("The EAR series is not a text file.") from None
    events = detect_blinks(parse_series(text), fps=args.fps)
    blinks = [e for e in events if e.is_blink]
    if args.json:
        _print_json(
            {
                "blinks": [
                    {"start": e.start, "end": e.end, "start_ms": e.start_ms, "end_ms": e.end_ms}
                    for e in blinks
                ],
                "closures": [e.to_dict() for e in events],
            }
        )
    else:
        print(f"{len(blinks)} blink(s)")
        for e in events:
            print(f"  {e.kind:<12} frames {e.start}-{e.end}  {e.start_ms}-{e.end_ms} ms")
    return 0


def _cmd_match(args: argparse.Namespace) -> int:
    """`ecard match`: one line per compared file; a file without a usable face is reported in
    its line and the command goes on (exit 2 at the end, with one line on stderr)."""
    from ecard.faces.match import (
        encodings_from_media,
        load_calibration,
        match_template,
        template_from_photo,
    )
    from ecard.faces.models import shared_models

    models = shared_models()
    threshold = load_calibration().threshold  # before any work: no guessed threshold
    template = template_from_photo(args.id_photo, models=models)
    failed = 0
    for name in args.files:
        try:
            encodings = encodings_from_media(name, models=models)
            result = match_template(template, encodings, threshold=threshold)
        except InputError as exc:
            failed += 1
            if args.json:
                _print_json({"file": name, "error": exc.code, "message": exc.message})
            else:
                sys.stdout.write(f"{name}: error {exc.code}: {exc.message}\n")
            continue
        if args.json:
            _print_json({"file": name, **result.to_dict()})
        else:
            verdict = "match" if result.match else "no match"
            sys.stdout.write(
                f"{name}: {verdict} (distance {result.distance:.3f}, "
                f"threshold {result.threshold:.3f})\n"
            )
    if failed:
        sys.stderr.write(f"ecard: bad_input: {failed} of {len(args.files)} files not compared\n")
        return 2
    return 0


def _register_face_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Face pipeline commands (owned by ecard/liveness and ecard/faces)."""
    # liveness part: `ecard liveness`, `ecard blinks`
    p = sub.add_parser("liveness", help="blink liveness of a clip or a folder of frames")
    p.add_argument("video", help="video file (mp4, webm, mov, ...) or folder of JPEG frames")
    p.add_argument("--blinks", type=int, default=None, help="require at least N blinks")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_liveness)
    p = sub.add_parser("blinks", help="find blinks in an eye-aspect-ratio series")
    p.add_argument("series", help="text file: one value per frame, None where no face")
    p.add_argument("--fps", type=float, required=True, help="frames per second of the series")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_blinks)
    # matching part: `ecard match`
    p = sub.add_parser("match", help="compare photos or clips with an ID photo")
    p.add_argument("id_photo", metavar="ID_PHOTO", help="the ID photo (exactly one face)")
    p.add_argument("files", metavar="PHOTO_OR_VIDEO", nargs="+", help="photos or clips to compare")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=_cmd_match)


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


def _service_store() -> Any:
    from ecard.config import load_settings
    from ecard.store import open_store

    settings = load_settings()
    settings.instance.mkdir(parents=True, exist_ok=True)
    return open_store(settings.database_url, migrate=True)


def _cmd_citizens_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ecard.citizens import add_citizen, mask_id_number, validate_id_number, validate_name
    from ecard.faces.models import shared_models

    validate_id_number(args.id_number)
    validate_name(args.name)
    photo = Path(args.photo).read_bytes()
    store = _service_store()
    try:
        rec = add_citizen(
            store, id_number=args.id_number, name=args.name, photo=photo, models=shared_models()
        )
    finally:
        store.close()
    _print_json({"id_number": mask_id_number(rec.id_number), "name": rec.name, "added": True})
    return 0


def _cmd_citizens_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ecard.citizens import add_citizen, mask_id_number, read_import_csv
    from ecard.errors import AlreadyExistsError
    from ecard.faces.models import shared_models

    store = _service_store()
    added = skipped = failed = 0
    try:
        for row in list(read_import_csv(Path(args.csv), Path(args.photos))):
            out: dict[str, Any] = {"line": row.line}
            try:
                rec = add_citizen(
                    store,
                    id_number=row.id_number,
                    name=row.name,
                    photo=row.photo.read_bytes(),
                    models=shared_models(),
                )
                out.update(id_number=mask_id_number(rec.id_number), added=True)
                added += 1
            except AlreadyExistsError:
                out.update(added=False, skipped="already_exists")
                skipped += 1
            except (EcardError, OSError) as exc:
                code = exc.code if isinstance(exc, EcardError) else "unreadable_file"
                msg = exc.message if isinstance(exc, EcardError) else str(exc.strerror or exc)
                out.update(added=False, error=code, message=msg)
                failed += 1
            _print_json(out)
    finally:
        store.close()
    _print_json({"added": added, "skipped": skipped, "failed": failed})
    if failed:
        sys.stderr.write(f"ecard: {failed} row(s) could not be imported (see the JSON lines)\n")
        return 2
    return 0


def _cmd_channels_add(args: argparse.Namespace) -> int:
    from ecard.channels import add_channel

    store = _service_store()
    try:
        creds = add_channel(store, args.name, args.scopes)
    finally:
        store.close()
    _print_json({"client_id": creds.client_id, "client_secret": creds.client_secret})
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    store = _service_store()
    store.close()
    _print_json({"database": "migrated"})
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ecard.config import load_settings
    from ecard.demo import prepare_demo

    photo = Path(args.photo).read_bytes() if args.photo else None
    base = (os.environ.get("ECARD_PUBLIC_URL") or f"http://{args.host}:{args.port}").rstrip("/")
    demo = prepare_demo(load_settings(), photo=photo, enroll_base=base if args.enroll else None)
    # Indented for the person reading the terminal; still one JSON document for scripts.
    sys.stdout.write(json.dumps(demo.to_dict(), indent=2) + "\n")
    if demo.enroll_url is not None:
        sys.stderr.write(
            f"\nOpen this link to enroll the demo citizen (valid until {demo.enroll_expires_at};"
            f" `.venv/bin/ecard demo --enroll` prints a new one):\n  {demo.enroll_url}\n"
            f"Hospital desk: {base}/hospital\n\n"
        )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecard.web.serve import serve

    if not 0 < args.port < 65536:
        raise InputError("The port must be between 1 and 65535.")
    return serve(args.host, args.port, args.workers)


def _register_service_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Service commands (owned by ecard/web and the store)."""
    cit = sub.add_parser("citizens", help="the citizen registry")
    cit_sub = cit.add_subparsers(dest="citizens_command", metavar="ACTION", parser_class=_Parser)
    cit_sub.required = True
    p = cit_sub.add_parser("add", help="register a citizen and their ID photo")
    p.add_argument("--id-number", required=True, help="18-character resident ID number")
    p.add_argument("--name", required=True)
    p.add_argument("--photo", required=True, help="the ID photo (JPEG or PNG)")
    p.set_defaults(handler=_cmd_citizens_add)
    p = cit_sub.add_parser("import", help="import a CSV (id_number,name,photo) and a photo folder")
    p.add_argument("csv")
    p.add_argument("--photos", required=True, help="folder holding the photo files")
    p.set_defaults(handler=_cmd_citizens_import)

    ch = sub.add_parser("channels", help="API clients: city-service apps and hospitals")
    ch_sub = ch.add_subparsers(dest="channels_command", metavar="ACTION", parser_class=_Parser)
    ch_sub.required = True
    p = ch_sub.add_parser("add", help="create a channel; prints its credentials once")
    p.add_argument("name")
    p.add_argument("--scopes", required=True, help="comma list of enroll, verify, scan")
    p.set_defaults(handler=_cmd_channels_add)

    db = sub.add_parser("db", help="the database")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    db_sub.add_parser("upgrade", help="apply the Alembic migrations").set_defaults(
        handler=_cmd_db_upgrade
    )

    p = sub.add_parser("demo", help="prepare a demo instance (idempotent; prints credentials)")
    p.add_argument("--photo", help="replace the demo citizen's ID photo (e.g. your own selfie)")
    p.add_argument(
        "--enroll",
        action="store_true",
        help="also start an enrollment for the demo citizen and print its page URL",
    )
    p.add_argument("--host", default="127.0.0.1", help="host of the printed URL")
    p.add_argument("--port", type=int, default=8000, help="port of the printed URL")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("serve", help="serve the API and pages with gunicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=None, help="default 2 (ECARD_WORKERS)")
    p.set_defaults(handler=_cmd_serve)


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
