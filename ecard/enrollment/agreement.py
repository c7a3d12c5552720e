"""The agreement the citizen accepts before the face check.

The texts are data files of the package, one per language the pages offer
(``ecard/enrollment/agreements/<language tag>.md``); one version covers every translation and
is recorded with the consent. Change a text, change :data:`AGREEMENT_VERSION` (a test compares
the texts' digest with :data:`AGREEMENT_DIGEST`, so an edit cannot slip through unversioned).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

#: The agreement's version, recorded with each consent.
AGREEMENT_VERSION = "2026-11"
#: SHA-256 over the texts of this version (language tags sorted, ``tag\ntext\n`` each).
AGREEMENT_DIGEST = "b1274d525b411f17615bec335a2cb0592c4fe3e37b5283b6fd8570d3ee2b78e7"
#: The language served when the page's language has no translation.
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Agreement:
    version: str
    #: the text by language tag (``en``, ``zh-CN``)
    texts: Mapping[str, str]

    @property
    def text(self) -> str:
        """The text in :data:`DEFAULT_LANGUAGE`."""
        return self.texts[DEFAULT_LANGUAGE]

    def digest(self) -> str:
        h = hashlib.sha256()
        for tag in sorted(self.texts):
            h.update(f"{tag}\n{self.texts[tag]}\n".encode())
        return h.hexdigest()


@cache
def agreement() -> Agreement:
    """The current agreement, read once from the package's data files."""
    folder = resources.files("ecard.enrollment") / "agreements"
    texts = {
        entry.name.removesuffix(".md"): entry.read_text(encoding="utf-8").strip()
        for entry in folder.iterdir()
        if entry.name.endswith(".md")
    }
    return Agreement(AGREEMENT_VERSION, MappingProxyType(dict(sorted(texts.items()))))
