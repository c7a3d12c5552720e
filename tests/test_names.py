"""Names refuse control, bidi and invisible characters with a clear reason (finding 11), and
keep every real name working."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from ecard.citizens import check_name
from ecard.errors import InvalidNameError
from ecard.names import check_label

GOOD = [
    ("张三", "张三"),
    ("欧阳娜娜", "欧阳娜娜"),
    ("阿依古丽·买买提", "阿依古丽·买买提"),  # U+00B7, minority names
    ("阿依古丽・买买提", "阿依古丽·买买提"),  # katakana middle dot -> U+00B7
    ("阿依古丽•买买提", "阿依古丽·买买提"),  # bullet -> U+00B7
    ("爱新觉罗·溥仪", "爱新觉罗·溥仪"),
    ("Li Lei", "Li Lei"),
    ("  li   lei ", "li lei"),
    ("Zoë Saldaña-Nazario", "Zoë Saldaña-Nazario"),
    ("Zoe\u0308", "Zoë"),  # NFD in, NFC out
    ("O'Brien", "O'Brien"),
    ("D’Angelo", "D’Angelo"),
    ("J.-P. Sartre", "J.-P. Sartre"),
    ("Nguyễn Thị Minh Khai", "Nguyễn Thị Minh Khai"),
    ("Алексей Навальный", "Алексей Навальный"),
    ("محمد\u200cرضا", "محمد\u200cرضا"),  # Persian ZWNJ between Arabic letters
    ("ئابدۇرېھىم", "ئابدۇرېھىم"),  # Uyghur
    ("ᠮᠣᠩᠭᠣᠯ", "ᠮᠣᠩᠭᠣᠯ"),  # Mongolian
    ("金\u3000美丽", "金 美丽"),  # ideographic space -> one space
]


@pytest.mark.parametrize(("raw", "clean"), GOOD)
def test_real_names_pass_and_are_normalised(raw: str, clean: str) -> None:
    assert check_name(raw) == clean
    assert unicodedata.is_normalized("NFC", check_name(raw))


BAD = [
    ("\x1b[31mLi Lei", "control character (U+001B)"),  # ESC: terminal escape
    ("Li Lei\x07", "control character (U+0007)"),  # BEL
    ("Li\nLei", "control character (U+000A)"),  # splits a log line
    ("Li\tLei", "control character (U+0009)"),
    ("Li\x00Lei", "control character (U+0000)"),
    ("Li\x85Lei", "control character (U+0085)"),  # C1 NEL
    ("Li\x9bLei", "control character (U+009B)"),  # C1 CSI
    ("\u202eieL iL", "bidirectional control character (U+202E)"),  # RLO
    ("Li\u202dLei", "bidirectional control character (U+202D)"),
    ("Li\u202aLei", "bidirectional control character (U+202A)"),
    ("\u2066Li Lei\u2069", "bidirectional control character (U+2066)"),
    ("Li\u2067Lei", "bidirectional control character (U+2067)"),
    ("Li\u2068Lei", "bidirectional control character (U+2068)"),
    ("Li\u200eLei", "bidirectional control character (U+200E)"),
    ("Li\u200fLei", "bidirectional control character (U+200F)"),
    ("Li\u061cLei", "bidirectional control character (U+061C)"),
    ("Li\u200bLei", "invisible formatting character (U+200B)"),  # zero-width space
    ("Li\u2060Lei", "invisible formatting character (U+2060)"),
    ("\ufeffLi Lei", "invisible formatting character (U+FEFF)"),
    ("Li\u00adLei", "invisible formatting character (U+00AD)"),  # soft hyphen
    ("张\u200d三", "invisible formatting character (U+200D)"),  # ZWJ between Han
    ("Li\u200cLei", "invisible formatting character (U+200C)"),  # ZWNJ in Latin
    ("\u200dمحمد", "invisible formatting character (U+200D)"),  # joiner at the start
    ("Li\U000e0041Lei", "invisible formatting character (U+E0041)"),  # tag character
    ("Li\u2028Lei", "line or paragraph separator"),
    ("Li\ue000Lei", "private-use character"),
    ("Li\ud800Lei", "unassigned code point"),  # lone surrogate (from JSON "\ud800")
    ("Li\u3164Lei", "invisible character (U+3164)"),  # Hangul filler
    ("Li Lei 2", "a digit"),
    ("<script>", "a character names do not use"),
    ("Li😀Lei", "a character names do not use"),
    ("\u0301Li", "combining mark (U+0301) on no letter"),
    ("Li" + "\u0301" * 8, "too many combining marks"),
    ("·-'.", "no letters"),
    ("   ", "empty"),
    ("", "empty"),
    ("李" * 101, "longer than 100"),
]


@pytest.mark.parametrize(("raw", "words"), BAD, ids=[repr(b[0])[:30] for b in BAD])
def test_bad_names_are_refused_with_a_clear_reason(raw: str, words: str) -> None:
    with pytest.raises(InvalidNameError, match=re.escape(words)) as e:
        check_name(raw)
    assert e.value.code == "invalid_name" and e.value.status == 422 and e.value.exit_code == 2


@pytest.mark.parametrize("value", [None, 3, b"Li Lei", ["Li"]])
def test_a_name_must_be_text(value: object) -> None:
    with pytest.raises(InvalidNameError, match="text"):
        check_name(value)


def test_channel_names_take_digits_and_symbols_but_no_controls() -> None:
    assert check_label("Hospital No. 3 (East) & Co") == "Hospital No. 3 (East) & Co"
    for bad in ("City\x1b[2J", "City\u202eppa", "City\u200b"):
        with pytest.raises(InvalidNameError):
            check_label(bad)


# --- where names enter: the registry, the channel's authorize, channel names -----------------


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from ecard.web import create_app

    return create_app(
        {"ECARD_INSTANCE": str(tmp_path), "LOAD_MODELS": "0", "ECARD_RATELIMIT_ENABLED": "0"}
    )


def test_the_registry_refuses_a_bad_name_before_any_face_work(app: Any) -> None:
    from ecard.citizens import add_citizen

    class NoModels:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("the name is checked before the photo")

    with pytest.raises(InvalidNameError):
        add_citizen(
            app.extensions["ecard"].store,
            id_number="11010519491231002X",
            name="Li\u202eLei",
            photo=b"-",
            models=NoModels(),  # type: ignore[arg-type]
        )


def test_add_channel_refuses_control_characters(app: Any) -> None:
    from ecard.channels import add_channel

    with pytest.raises(InvalidNameError):
        add_channel(app.extensions["ecard"].store, "City\x1b]0;pwned\x07", "enroll")


@pytest.mark.parametrize("name", ["Li\u202eLei", "\x1b[31mLi Lei", "Li\x07Lei", "Li\u2066Lei"])
def test_authorize_answers_422_invalid_name(app: Any, name: str) -> None:
    import base64

    from ecard.channels import add_channel

    city = add_channel(app.extensions["ecard"].store, "City", "enroll")
    raw = base64.b64encode(f"{city.client_id}:{city.client_secret}".encode()).decode()
    resp = app.test_client().post(
        "/api/v1/enrollments",
        json={"id_number": "11010519491231002X", "name": name},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.json["error"] == "invalid_name"


def test_authorize_still_finds_a_minority_name(app: Any) -> None:
    import base64
    from datetime import UTC, datetime

    from ecard.channels import add_channel
    from ecard.store.models import Citizen

    store = app.extensions["ecard"].store
    with store.write() as s:
        s.add(
            Citizen(
                id_number="11010519491231002X",
                name="阿依古丽·买买提",
                photo=b"-",
                template=b"-",
                created_at=datetime.now(UTC),
            )
        )
    city = add_channel(store, "City", "enroll")
    raw = base64.b64encode(f"{city.client_id}:{city.client_secret}".encode()).decode()
    resp = app.test_client().post(
        "/api/v1/enrollments",
        json={"id_number": "11010519491231002X", "name": "阿依古丽・买买提"},  # typed with ・
        headers={"Authorization": f"Basic {raw}"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
