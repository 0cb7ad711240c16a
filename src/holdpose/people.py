"""Who is in a sequence: tracks by id, and choosing the people a stage works on.

A *track* is everything one track id covers (``PoseSequence.track_ids``), in whatever
slot it sits each frame. ``--person`` on align, render, animate and evaluate takes:

- an integer: that track id (as ``holdpose people POSES`` lists them);
- ``largest``: the track with the largest mean body box (area, px²) over its frames;
- ``longest``: the track present in the most frames (ties: the larger);
- ``all``: everyone, as the file has them.

Choosing one track gives a one-slot sequence: slot 0 holds that person in every frame
(empty where they are absent), whatever slot they had in the file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence

PERSON_CHOICES = ("largest", "longest", "all")
BOX_MIN_SCORE = 0.3  # points that count for a person's box


@dataclass
class Track:
    """One person of a sequence: ``frames`` present, the first and last of them, the mean
    body box (x0, y0, x1, y1) px over those frames and its area."""

    id: int
    frames: int
    first: int
    last: int
    mean_box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.mean_box
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


def parse_person(text: str) -> int | str:
    """The value of ``--person``: a track id (int >= 0) or one of :data:`PERSON_CHOICES`."""
    value = str(text).strip().lower()
    if value in PERSON_CHOICES:
        return value
    if value.isdigit():
        return int(value)
    raise ValueError(f"--person takes a track id (0, 1, ...) or {', '.join(PERSON_CHOICES)}; got {text!r}")


def person_choice(text: str) -> int | str:
    """:func:`parse_person` as an argparse type."""
    try:
        return parse_person(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_person_option(parser: argparse.ArgumentParser, verb: str, *, default_help: str = "all") -> None:
    """``--person ID|largest|longest|all`` on a subcommand's parser."""
    parser.add_argument("--person", type=person_choice, metavar="ID|largest|longest|all",
                        help=f"who to {verb}: a track id (see `holdpose people POSES`), the largest or longest "
                        f"track, or all (default: {default_help})")


def list_tracks(seq: PoseSequence) -> list[Track]:
    """Every track of ``seq``, by id."""
    boxes = seq.boxes(BOX_MIN_SCORE)  # [T, P, 4], NaN where a slot has too few points
    occupied = (seq.track_ids >= 0) & (seq.scores > 0).any(-1)
    tracks = []
    for track_id in np.unique(seq.track_ids[occupied]):
        mask = occupied & (seq.track_ids == track_id)
        frames = np.flatnonzero(mask.any(1))
        these = boxes[mask]
        these = these[np.isfinite(these).all(-1)]
        mean_box = tuple(float(v) for v in these.mean(0)) if len(these) else (0.0, 0.0, 0.0, 0.0)
        tracks.append(Track(int(track_id), len(frames), int(frames[0]), int(frames[-1]), mean_box))
    return tracks


def choose_people(seq: PoseSequence, person: int | str | None, *, what: str = "the poses") -> PoseSequence:
    """``seq`` with only the chosen person (see the module docstring); ``None`` or ``"all"``: ``seq``."""
    if person is None or person == "all":
        return seq
    if isinstance(person, str):
        person = parse_person(person)
        if person == "all":
            return seq
    tracks = list_tracks(seq)
    if not tracks:
        raise HoldposeError(f"{what}: nobody in them to choose from")
    if person == "largest":
        track_id = max(tracks, key=lambda tr: (tr.area, tr.frames)).id
    elif person == "longest":
        track_id = max(tracks, key=lambda tr: (tr.frames, tr.area)).id
    elif isinstance(person, (int, np.integer)) and not isinstance(person, bool):
        track_id = int(person)
        if track_id not in {tr.id for tr in tracks}:
            ids = ", ".join(str(tr.id) for tr in tracks[:20]) + (" ..." if len(tracks) > 20 else "")
            raise HoldposeError(f"person {track_id} is not a track id of {what}; they have {ids} "
                                f"(see `holdpose people`), or use largest, longest or all")
    else:
        raise HoldposeError(f"person {person!r}: give a track id (0, 1, ...) or {', '.join(PERSON_CHOICES)}")
    return track_as_slot(seq, track_id)


def track_as_slot(seq: PoseSequence, track_id: int) -> PoseSequence:
    """A one-slot sequence holding track ``track_id`` in every frame (empty where absent)."""
    mask = seq.track_ids == track_id  # [T, P]
    frames = np.flatnonzero(mask.any(1))
    slots = mask[frames].argmax(1)  # the first slot with that id (a tracker gives one per frame)
    out = PoseSequence.empty(seq.num_frames, 1, layout=seq.layout, size=seq.size, fps=seq.fps)
    out.put_person(frames, 0, seq, slots, track_id)
    return out
