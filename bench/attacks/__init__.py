"""Presentation-attack generators: shared material turned into attack clips, in memory only.

Every generator returns frames as a list of ``(bgr uint8 image, t_ms)`` built in memory (never
written to disk) and is deterministic for a given seed. Species (ISO/IEC 30107-3: APCER is
reported per species) and the module that makes each:
"""

from __future__ import annotations

#: attack species -> the module under bench.attacks that generates it
SPECIES: dict[str, str] = {
    # printed photo held in front of the camera: flat, bent, rotated, moved (prints.py)
    "print": "prints",
    # a live clip replayed on a phone or monitor screen filmed by the camera (screens.py)
    "screen": "screens",
    # identity splices: photo / frames of the victim cut or cross-faded with another person
    # blinking (splices.py)
    "splice": "splices",
}
