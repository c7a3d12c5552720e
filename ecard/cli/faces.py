"""``ecard liveness``, ``ecard blinks``, ``ecard match``: the face pipeline on files."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ecard.cli.command import Command
from ecard.cli.files import read_bounded, regular_path
from ecard.cli.output import print_json, print_line
from ecard.cli.params import FILE, FILE_OR_FOLDER, Between, PositiveFinite
from ecard.errors import InputError

if TYPE_CHECKING:
    from ecard.config import Settings
    from ecard.faces.models import FaceModels

#: The most blinks a challenge may ask for (the same bound as ECARD_LIVENESS_CHALLENGE).
MAX_BLINKS = 10
#: The largest EAR series file read (``parse_series`` takes at most 250,000 lines).
MAX_SERIES_BYTES = 16 * 1024 * 1024
#: The highest frame rate of an EAR series (``detect_blinks`` refuses more).
MAX_FPS = 1000.0


def face_models(settings: Settings) -> FaceModels:
    """The loaded dlib models: from ``ECARD_MODELS_DIR`` when it is set, else the process-wide
    ones of the ``face_recognition_models`` package (loaded once, checked against the manifest)."""
    from ecard.faces.models import FaceModels, shared_models

    if settings.models_dir is None:
        return shared_models()
    return FaceModels(folder=settings.models_dir, manifest=settings.models_manifest).load()


@click.command(cls=Command, short_help="Blink liveness of a clip or a folder of frames.")
@click.argument("video", metavar="VIDEO", type=FILE_OR_FOLDER)
@click.option(
    "--blinks",
    type=Between(0, MAX_BLINKS),
    default=None,
    help=f"Require at least N blinks (0-{MAX_BLINKS}); default: the policy's minimum.",
    metavar="N",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def liveness(settings: Settings, video: str, blinks: int | None, as_json: bool) -> int:
    """Blink liveness of a clip (any container OpenCV reads) or a folder of JPEG frames taken in
    natural file-name order (f_2.jpg before f_10.jpg). A clip that is not live is exit 0: the
    verdict is the output."""
    from ecard.liveness import Challenge, analyze_video

    challenge = None if blinks is None else Challenge(blinks=blinks)
    result = analyze_video(regular_path(video), models=face_models(settings), challenge=challenge)
    if as_json:
        print_json(result.to_dict())
        return 0
    verdict = "live" if result.live else f"not live ({result.reason})"
    print_line(
        f"{verdict}: {result.blinks} blink(s) in {result.frames} frames, "
        f"face in {result.faces_found}, {result.duration_ms} ms"
    )
    for e in result.events:
        print_line(f"  {e.kind:<12} frames {e.start}-{e.end}  {e.start_ms}-{e.end_ms} ms")
    return 0


@click.command(cls=Command, short_help="Find blinks in an eye-aspect-ratio series.")
@click.argument("series", metavar="SERIES", type=FILE)
@click.option(
    "--fps",
    type=PositiveFinite(MAX_FPS),
    required=True,
    help=f"Frames per second of the series (above 0, at most {MAX_FPS:g}).",
    metavar="F",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def blinks(series: str, fps: float, as_json: bool) -> int:
    """Find blinks in an eye-aspect-ratio series: a text file, one value per frame, None where
    no face was found (any landmark scheme: no fixed threshold)."""
    from ecard.errors import SeriesError
    from ecard.liveness import detect_blinks, parse_series

    raw = read_bounded(series, MAX_SERIES_BYTES, what="EAR series", error=SeriesError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SeriesError("The EAR series is not a text file.") from None
    events = detect_blinks(parse_series(text), fps=fps)
    found = [e for e in events if e.is_blink]
    if as_json:
        print_json(
            {
                "blinks": [
                    {"start": e.start, "end": e.end, "start_ms": e.start_ms, "end_ms": e.end_ms}
                    for e in found
                ],
                "closures": [e.to_dict() for e in events],
            }
        )
        return 0
    print_line(f"{len(found)} blink(s)")
    for e in events:
        print_line(f"  {e.kind:<12} frames {e.start}-{e.end}  {e.start_ms}-{e.end_ms} ms")
    return 0


@click.command(cls=Command, short_help="Compare photos or clips with an ID photo.")
# Not click.Path(exists=True): a missing file is a per-file `unreadable_media` line (and a
# missing ID photo the same error code), as for any other file without a usable face.
@click.argument("id_photo", metavar="ID_PHOTO")
@click.argument("files", metavar="PHOTO_OR_VIDEO...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def match(settings: Settings, id_photo: str, files: tuple[str, ...], as_json: bool) -> int:
    """Compare photos or clips with an ID photo (exactly one face): one line per file, in
    order. A file without a usable face gets an error line and the rest goes on; the command
    then ends with exit 2."""
    from ecard.faces.match import (
        encodings_from_media,
        load_calibration,
        match_template,
        template_from_photo,
    )

    id_photo = regular_path(id_photo)
    models = face_models(settings)
    # Before any work: no guessed threshold.
    threshold = load_calibration(settings.calibration).threshold
    template = template_from_photo(id_photo, models=models)
    failed = 0
    for name in files:
        try:
            encodings = encodings_from_media(regular_path(name), models=models)
            result = match_template(template, encodings, threshold=threshold)
        except InputError as exc:
            failed += 1
            if as_json:
                print_json({"file": name, "error": exc.code, "message": exc.message})
            else:
                print_line(f"{name}: error {exc.code}: {exc.message}")
            continue
        if as_json:
            print_json({"file": name, **result.to_dict()})
        else:
            verdict = "match" if result.match else "no match"
            print_line(
                f"{name}: {verdict} (distance {result.distance:.3f}, "
                f"threshold {result.threshold:.3f})"
            )
    if failed:
        sys.stderr.write(f"ecard: bad_input: {failed} of {len(files)} files not compared\n")
        return 2
    return 0
