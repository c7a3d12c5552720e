"""ID-photo matching cost: ``template_from_photo`` on 102 x 126 chip photos vs the textbook.

Run: ``.venv/bin/python -m bench.bench_match`` (also run by ``make bench``; about 20 s).
Baseline, in the same process on the same chips: ``face_recognition.load_image_file`` +
``face_locations(img, 1)`` + ``face_encodings`` (the textbook; it also finds the 55 px chip faces
because it always upsamples once). CPU time (``time.process_time``), medians, alternating runs.
Needs ../shared/data/faces; prints a message and returns when it is absent.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import numpy as np

from ecard.faces.calibration import chip_photo, photo_files
from ecard.faces.images import load_photo
from ecard.faces.match import FaceTemplate, find_faces, match_template, template_from_photo
from ecard.faces.models import PROJECT_ROOT, shared_models

FACES = PROJECT_ROOT.parent / "shared" / "data" / "faces"
CHIPS = 16
ROUNDS = 3


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    if not FACES.is_dir():
        print(f"bench_match: {FACES} is absent; nothing measured")
        return
    models = shared_models()
    files = photo_files(FACES)
    chips = []
    for path in files[:: max(1, len(files) // CHIPS)][:CHIPS]:
        image = load_photo(path)
        work, boxes = find_faces(image, models)
        chips.append(chip_photo(image, boxes[0].scaled(image.shape[0] / work.shape[0])))

    import face_recognition  # the textbook pipeline (imports the models itself)

    def textbook(data: bytes) -> None:
        img = face_recognition.load_image_file(io.BytesIO(data))
        locations = face_recognition.face_locations(img, 1)
        face_recognition.face_encodings(img, locations)

    ours: list[float] = []
    base: list[float] = []
    for _ in range(ROUNDS):
        for data in chips:
            ours.append(_cpu(lambda d=data: template_from_photo(d, models=models)))
            base.append(_cpu(lambda d=data: textbook(d)))
    template = FaceTemplate(np.zeros(128))
    live = [np.full(128, 0.01 * i) for i in range(3)]
    compare = [_cpu(lambda: match_template(template, live, threshold=0.5)) for _ in range(200)]

    med_ours = statistics.median(ours) * 1000
    med_base = statistics.median(base) * 1000
    print(
        f"template_from_photo, 102x126 chip: median {med_ours:.1f} ms CPU "
        f"({len(ours)} runs over {len(chips)} chips)"
    )
    print(f"textbook face_recognition on the same chips: median {med_base:.1f} ms CPU")
    print(f"ratio ours/textbook: {med_ours / med_base:.2f}")
    print(f"match_template, 3 live encodings: median {statistics.median(compare) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
