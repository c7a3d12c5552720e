"""The request and response models of the HTTP API (pydantic v2): the one HTTP contract.

They validate what comes in (through :mod:`ecard.web.apispec`) and generate ``/openapi.json``.
The models check shape and bounds (types, lengths, ranges); rules of the domain (an ID number's
check digit, the PIN policy) stay in the domain, so the API and the CLI refuse the same things
with the same code. Unknown request fields are ignored (clients may send more than we read).

Three bases:

* :class:`Body`: a JSON request body, strict (``1`` is not ``"1"``, ``"true"`` is not ``true``);
* :class:`Form`: multipart fields, which arrive as text (``"3"`` is read as ``3``);
* :class:`Answer`: a response body, built by the views.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

#: A non-negative integer that fits every store and every float conversion (ms, counts).
BoundedInt = Annotated[int, Field(ge=0, le=10**12)]

#: One uploaded file part (multipart), kept in memory as bytes.
FilePart = Annotated[bytes, WithJsonSchema({"type": "string", "format": "binary"})]
#: Several file parts under one name, in order.
FileParts = Annotated[
    list[bytes],
    WithJsonSchema({"type": "array", "items": {"type": "string", "format": "binary"}}),
]

#: Bidi embeddings, overrides and isolates (Unicode TR9): they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def check_text(value: str) -> str:
    """``value`` if it holds no control characters (ESC, BEL, NUL, newlines ...) and no bidi
    controls; a :class:`ValueError` naming the first offending character otherwise.

    Used for every free text a person types that others read (names on cards and desks).
    """
    from ecard import citizens

    domain_check = getattr(citizens, "check_name", None)  # the domain's rule, once it has one
    if domain_check is not None:
        return str(domain_check(value))
    for ch in value:
        if ch in _BIDI:
            raise ValueError(f"it contains the bidirectional control U+{ord(ch):04X}")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ValueError(f"it contains the control character U+{ord(ch):04X}")
    return value


#: A person's free text: no control or bidi characters.
SafeText = Annotated[str, AfterValidator(check_text)]


class Body(BaseModel):
    """Base of JSON request bodies: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Form(BaseModel):
    """Base of multipart fields: text read as the declared types, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Answer(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Error(Answer):
    """Every error answer: a stable code (CONTRACT.md) and a sentence for the person."""

    error: str = Field(description="stable machine-readable code", examples=["missing_field"])
    message: str = Field(description="a plain sentence; never contains secrets")


class Status(Answer):
    status: str
