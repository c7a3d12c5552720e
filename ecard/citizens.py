"""The citizen registry: GB 11643 resident ID numbers, names, ID photos and their face templates.

The ID-photo template is computed once at registration (``ecard.faces.match.template_from_photo``)
and stored; it is the only face data the service keeps. Live encodings are never stored.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ecard.errors import (
    AlreadyExistsError,
    CitizenNotFoundError,
    InputError,
    InvalidIdNumberError,
)
from ecard.names import check_name as check_name
from ecard.store.models import Citizen

if TYPE_CHECKING:
    from ecard.faces.models import FaceModels
    from ecard.store import Store

#: ISO 7064 MOD 11-2 weights of the first 17 digits (GB 11643-1999).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII only: \d also matches fullwidth digits


def check_digit(first17: str) -> str:
    """The GB 11643 check character (``0``-``9`` or ``X``) of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def validate_id_number(value: str) -> str:
    """``value`` normalised (upper-case ``X``) if it is a valid 18-character resident ID number.

    Checks the shape, a plausible birth date (YYYYMMDD at positions 7-14) and the ISO 7064
    MOD 11-2 check digit. Raises :class:`InvalidIdNumberError` otherwise.
    """
    norm = value.strip().upper() if isinstance(value, str) else ""
    if not _ID_RE.fullmatch(norm):
        raise InvalidIdNumberError("The ID number must be 17 digits followed by a digit or X.")
    try:
        datetime.strptime(norm[6:14], "%Y%m%d")
    except ValueError:
        raise InvalidIdNumberError("The ID number does not contain a valid birth date.") from None
    if check_digit(norm[:17]) != norm[17]:
        raise InvalidIdNumberError("The ID number's check digit is wrong.")
    return norm


def mask_id_number(id_number: str) -> str:
    """``110105********123X``: region kept, birth date and sequence hidden but the last four."""
    return id_number[:6] + "*" * 8 + id_number[14:]


def mask_name(name: str) -> str:
    """The first character and stars (``张**``, ``J***``): enough for the citizen to recognise."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


#: The older name of :func:`check_name` (kept for its callers).
validate_name = check_name


@dataclass(frozen=True)
class CitizenRecord:
    """A registry entry as the service sees it (no photo bytes)."""

    id: int
    id_number: str
    name: str


def add_citizen(
    store: Store, *, id_number: str, name: str, photo: bytes, models: FaceModels
) -> CitizenRecord:
    """Register a citizen; computes the ID-photo template first (one face, EXIF applied)."""
    number = validate_id_number(id_number)
    clean_name = check_name(name)
    from ecard.faces.match import template_from_photo

    template = template_from_photo(photo, models=models)
    try:
        with store.write() as s:
            row = Citizen(
                id_number=number,
                name=clean_name,
                photo=photo,
                template=template.to_bytes(),
                created_at=datetime.now(UTC),
            )
            s.add(row)
            s.flush()
            return CitizenRecord(row.id, row.id_number, row.name)
    except IntegrityError:
        raise AlreadyExistsError("A citizen with this ID number is already registered.") from None


def replace_photo(store: Store, *, id_number: str, photo: bytes, models: FaceModels) -> None:
    """Replace a registered citizen's ID photo and its template (the old ones are overwritten)."""
    number = validate_id_number(id_number)
    from ecard.faces.match import template_from_photo

    template = template_from_photo(photo, models=models)
    with store.write() as s:
        row = s.scalars(select(Citizen).where(Citizen.id_number == number)).first()
        if row is None:
            raise CitizenNotFoundError()
        row.photo = photo
        row.template = template.to_bytes()


def find_citizen(store: Store, id_number: str) -> CitizenRecord | None:
    with store.read() as s:
        row = s.scalars(select(Citizen).where(Citizen.id_number == id_number)).first()
        return None if row is None else CitizenRecord(row.id, row.id_number, row.name)


@dataclass(frozen=True)
class ImportRow:
    line: int
    id_number: str
    name: str
    photo: Path


def read_import_csv(csv_path: Path, photos: Path) -> Iterator[ImportRow]:
    """Rows of a registry CSV with header ``id_number,name,photo`` (photo: a file in ``photos``)."""
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"id_number", "name", "photo"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{csv_path.name}: missing column(s) {', '.join(sorted(missing))}.")
        for n, rec in enumerate(reader, start=2):
            photo_name = (rec.get("photo") or "").strip()
            if not photo_name or Path(photo_name).name != photo_name:
                raise InputError(f"{csv_path.name}:{n}: the photo must be a plain file name.")
            number, name = rec.get("id_number") or "", rec.get("name") or ""
            yield ImportRow(n, number, name, photos / photo_name)
