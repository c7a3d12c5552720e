"""``ecard citizens ...``, ``ecard channels add``, ``ecard db upgrade``, ``ecard demo``,
``ecard serve``: the service's registry, clients and database, and the server itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecard.cli.command import Command, Group
from ecard.cli.faces import face_models
from ecard.cli.files import read_bounded, regular_path
from ecard.cli.output import print_json, warn
from ecard.cli.params import FILE, FOLDER, HOST, PORT, Between
from ecard.errors import EcardError, InputError

#: The largest registry CSV read (a million rows of about 60 bytes).
MAX_CSV_BYTES = 64 * 1024 * 1024
#: What --host/--port default to.
BIND_DEFAULT = "ECARD_BIND, else 127.0.0.1:8000"

if TYPE_CHECKING:
    from ecard.citizens import ImportRow
    from ecard.config import Settings
    from ecard.store import Store


def _open_store(settings: Settings) -> Store:
    """The service database (created and migrated on first use)."""
    from ecard.store import open_store

    settings.prepare_instance()  # 0700
    return open_store(settings.database_url, migrate=True)


def _read_photo(path: str) -> bytes:
    """An ID photo file, refused past the ID photo byte limit."""
    from ecard.errors import MediaTooLargeError
    from ecard.image_limits import ID_PHOTO

    return read_bounded(path, ID_PHOTO.max_bytes, what="photo", error=MediaTooLargeError)


@click.group(cls=Group)
def citizens() -> None:
    """The citizen registry."""


@citizens.command()
@click.option("--id-number", required=True, help="18-character resident ID number (GB 11643).")
@click.option("--name", required=True, help="The citizen's name as on the ID card.")
@click.option("--photo", required=True, type=FILE, help="The ID photo (JPEG or PNG, one face).")
@click.pass_obj
def add(settings: Settings, id_number: str, name: str, photo: str) -> int:
    """Register a citizen and their ID photo."""
    from ecard.citizens import add_citizen, check_name, mask_id_number, validate_id_number

    validate_id_number(id_number)  # before the face models load: a typo is refused at once
    check_name(name)
    data = _read_photo(photo)
    store = _open_store(settings)
    try:
        models = face_models(settings)
        rec = add_citizen(store, id_number=id_number, name=name, photo=data, models=models)
    finally:
        store.close()
    print_json({"id_number": mask_id_number(rec.id_number), "name": rec.name, "added": True})
    return 0


@citizens.command(name="import", short_help="Import a CSV registry and its photo folder.")
@click.argument("csv", metavar="CSV", type=FILE)
@click.option("--photos", required=True, type=FOLDER, help="Folder holding the photo files.")
@click.pass_obj
def import_citizens(settings: Settings, csv: str, photos: str) -> int:
    """Import a CSV (id_number,name,photo) and a photo folder: one JSON line per row, then the
    totals. Rows already registered are skipped; a row that fails makes the exit code 2."""
    from ecard.citizens import add_citizen, mask_id_number
    from ecard.errors import AlreadyExistsError

    rows = _read_rows(Path(csv), Path(photos))  # the whole file checked before any work
    models = face_models(settings)
    store = _open_store(settings)
    added = skipped = failed = 0
    try:
        for row in rows:
            out: dict[str, Any] = {"line": row.line}
            try:
                rec = add_citizen(
                    store,
                    id_number=row.id_number,
                    name=row.name,
                    photo=_read_photo(str(row.photo)),
                    models=models,
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
            print_json(out)
    finally:
        store.close()
    print_json({"added": added, "skipped": skipped, "failed": failed})
    if failed:
        sys.stderr.write(
            f"ecard: bad_input: {failed} row(s) could not be imported (see the JSON lines)\n"
        )
        return 2
    return 0


def _read_rows(csv_path: Path, photos: Path) -> list[ImportRow]:
    """Every row of a registry CSV; a file that is not UTF-8 CSV text is bad input."""
    import csv as csv_module

    from ecard.citizens import read_import_csv

    regular_path(str(csv_path), limit=MAX_CSV_BYTES, error=InputError)
    try:
        return list(read_import_csv(csv_path, photos))
    except UnicodeDecodeError:
        raise InputError(f"{csv_path.name} is not UTF-8 text.") from None
    except csv_module.Error as exc:
        raise InputError(f"{csv_path.name} is not a readable CSV file: {exc}.") from None


@click.group(cls=Group)
def channels() -> None:
    """API clients: city-service apps and hospitals."""


@channels.command(name="add")
@click.argument("name")
@click.option("--scopes", required=True, help="Comma list of enroll, verify, scan.")
@click.pass_obj
def add_channel(settings: Settings, name: str, scopes: str) -> int:
    """Create a channel; prints its credentials once (only a hash of the secret is kept)."""
    from ecard.channels import add_channel as create

    store = _open_store(settings)
    try:
        creds = create(store, name, scopes)
    finally:
        store.close()
    print_json({"client_id": creds.client_id, "client_secret": creds.client_secret})
    return 0


@click.group(cls=Group)
def db() -> None:
    """The database."""


@db.command()
@click.pass_obj
def upgrade(settings: Settings) -> int:
    """Apply the Alembic migrations (idempotent)."""
    _open_store(settings).close()
    print_json({"database": "migrated"})
    return 0


def _listening_on(settings: Settings, host: str | None, port: int | None) -> Settings:
    """``settings`` with ``--host``/``--port`` over ``ECARD_BIND`` (as ``ecard serve`` does)."""
    if host is None and port is None:
        return settings
    name = settings.bind_host if host is None else host
    name = f"[{name}]" if ":" in name and not name.startswith("[") else name
    bind = f"{name}:{settings.bind_port if port is None else port}"
    return settings.model_copy(update={"bind": bind})


@click.command(cls=Command, short_help="Prepare the demo instance; print its credentials.")
@click.option(
    "--photo", type=FILE, help="Replace the demo citizen's ID photo (e.g. your own selfie)."
)
@click.option(
    "--enroll", is_flag=True, help="Also start an enrollment for the demo citizen; print its URL."
)
@click.option("--host", type=HOST, help=f"Host of the printed URLs (default: {BIND_DEFAULT}).")
@click.option(
    "--port", type=PORT, metavar="PORT", help=f"Port of the printed URLs (default: {BIND_DEFAULT})."
)
@click.pass_obj
def demo(
    settings: Settings, photo: str | None, enroll: bool, host: str | None, port: int | None
) -> int:
    """Prepare a demo instance (idempotent; prints its credentials as JSON). The links use
    ECARD_PUBLIC_URL, else the address `ecard serve` listens on with the same --host/--port."""
    from ecard.demo import prepare_demo

    data = _read_photo(photo) if photo else None
    base = _listening_on(settings, host, port).public_base
    prepared = prepare_demo(settings, photo=data, enroll_base=base if enroll else None)
    # Indented for the person reading the terminal; still one JSON document for scripts.
    print_json(prepared.to_dict(), indent=2)
    if prepared.enroll_url is not None:
        warn(
            f"\nOpen this link to enroll the demo citizen (valid until "
            f"{prepared.enroll_expires_at}; `.venv/bin/ecard demo --enroll` prints a new one):\n"
            f"  {prepared.enroll_url}\nHospital desk: {base}/hospital\n"
        )
    return 0


@click.command(cls=Command, short_help="Serve the API and pages with gunicorn.")
@click.option("--host", type=HOST, help=f"Address to listen on (default: {BIND_DEFAULT}).")
@click.option(
    "--port", type=PORT, metavar="PORT", help=f"Port to listen on (default: {BIND_DEFAULT})."
)
@click.option(
    "--workers",
    type=Between(1, 64),
    metavar="N",
    default=None,
    help="Gunicorn workers (default: ECARD_WORKERS, else 2).",
)
def serve(host: str | None, port: int | None, workers: int | None) -> int:
    """Serve the API and pages with gunicorn; creates the instance folder (database, signing
    key) on first run. Links, cards and status list URIs use ECARD_PUBLIC_URL, else this
    address."""
    from ecard.web.serve import serve as run_server

    return run_server(host, port, workers)
