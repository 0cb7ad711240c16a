"""The one person of a character's photo: pose, segmentation and depth, not mixed with anyone else.

MediaPipe holistic finds one person per photo, looking at the whole photo shrunk to 224 px. Shown
several people (skiers one behind the other), it can put together a skeleton from pieces of two
(the front skier's legs, the head and an arm of the one behind) and a segmentation mask that covers
both; shown a person small in a big frame it may find nobody. A character's photo must give one
person, whole, so:

1. holistic looks at the whole photo (its pick is "the most salient person");
2. when a TFLite interpreter is installed (``holdpose[people]``), MediaPipe's person detector finds
   every person (:class:`holdpose.detect.mediapipe.MediaPipeDetector` with several people); the
   main person is the one holistic picked (the most points in common), or the largest when
   holistic found nobody;
3. when holistic's skeleton is not that person's (a blend) or holistic found nobody, holistic
   looks again in a crop around the main person, where they fill the view (when the pose it gives
   fails the checks below and holistic's own pick passes them, that pick is kept);
4. the segmentation mask keeps only the pixels nearer the main person's skeleton than anyone
   else's (a mask over two people standing close becomes one person's).

Then the pose must be usable, else a one-line :class:`HoldposeError` that says what is wrong: a torso
(both shoulders or both hips) in view, once hips and legs too close to the face to be real are left
out (:func:`without_squashed_body`), and, with a mask, bones that reach most of the person's outline
(shown a photo cut through the body, MediaPipe may draw a small whole person inside it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from holdpose.detect.base import REFERENCE_MIN_VISIBILITY, expand_box
from holdpose.errors import HoldposeError

logger = logging.getLogger(__name__)

MAX_PEOPLE = 6  # people the person detector looks for in a character's photo
CROP_MARGIN = 1.3  # the crop around the main person: their body box, squared, times this
BODY_BONES_2D = ((5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15),
                 (12, 14), (14, 16), (0, 5), (0, 6), (0, 1), (0, 2), (1, 3), (2, 4))
SEEN = 0.5  # a body point this visible counts when comparing people
MIN_TORSO_EYES = 4.8  # shortest believable shoulder-to-hip distance, in eye distances
LEGS = np.r_[11:17, 17:23]  # hips, knees, ankles, feet
MAX_UNEXPLAINED = 0.25  # most of the person's outline that may lie a body size away from the pose found


@dataclass
class ReferencePerson:
    """The character of a photo: ``keypoints [133, 2]`` px, ``scores [133]`` (0: missing),
    ``mask`` float32 ``[H, W]`` in 0..1 (None without segmentation), ``depth [133]`` MediaPipe z
    of the body points (None when unknown)."""

    keypoints: np.ndarray
    scores: np.ndarray
    mask: np.ndarray | None = None
    depth: np.ndarray | None = None


def find_reference_person(image: np.ndarray, *, segmentation: bool = False,
                          what: str = "the reference image") -> ReferencePerson:
    """The main person of ``image`` (``uint8 [H, W, 3]`` RGB), see the module docstring."""
    from holdpose.detect.mediapipe import MediaPipeDetector

    with MediaPipeDetector(segmentation=segmentation, min_visibility=REFERENCE_MIN_VISIBILITY) as detector:
        # 1. holistic's pick in the whole photo
        found = detector.detect_one(image)
        first = None if found is None else ReferencePerson(*found, detector.last_mask, detector.last_depth)
        person = first
        # 2. everyone the person detector finds
        people = find_people(image)
        if people:
            main = _main_person(person, people)
            # 3. a skeleton that is not the main person's, or no mask of them: look again where they are
            if person is None or not _same(person, people[main]) or (segmentation and person.mask is None):
                person = _look_again(detector, image, people[main]) or _finder_pose(person, people[main])
            # 4. the mask: the main person's pixels only
            if person.mask is not None:
                others = [p for i, p in enumerate(people) if i != main and _someone_else(p, person)]
                if others:
                    person.mask = _own_pixels(person.mask, person, others)
    if person is None:
        raise HoldposeError(f"{what}: nobody found in it; use a photo where one person is clearly visible")
    try:
        return _checked(person, segmentation, what)
    except HoldposeError:
        # The second look can be the worse one (the person detector's landmarks are made up on
        # an odd photo, and the crop around them agrees); holistic's own pick stands if it holds.
        if first is None or first is person:
            raise
        logger.info("reference: the second look does not hold; holistic's own pick is used")
        return _checked(first, segmentation, what)


def _checked(person: ReferencePerson, segmentation: bool, what: str) -> ReferencePerson:
    """``person`` with a squashed body left out, once its pose is usable (else a one-line error)."""
    person.scores = without_squashed_body(person.keypoints, person.scores)
    check_reference_pose(person.scores, what)
    if segmentation and person.mask is None:
        raise HoldposeError(f"{what}: segmentation found no person in it; use a photo where one person is "
                            "clearly visible")
    if person.mask is not None:
        _check_pose_fits_outline(person, what)
    return person


def _check_pose_fits_outline(person: ReferencePerson, what: str) -> None:
    """A one-line :class:`HoldposeError` when most of the person's outline lies far from the pose
    found: shown a photo cut through the body, MediaPipe may draw a small whole person inside it
    (a face at the crotch, shoulders on the shorts). Farther than one body size (the widest of
    shoulders, hips and torso sides) from every bone: none of the person in the battery's photos
    (bench/bench_warp_partial.py), 27-65 % in such made-up poses."""
    keypoints, present = person.keypoints, person.scores >= REFERENCE_MIN_VISIBILITY
    inside = person.mask > 0.5
    size = max((float(np.linalg.norm(keypoints[a] - keypoints[b])) for a, b in ((5, 6), (11, 12), (5, 11), (6, 12))
                if present[[a, b]].all()), default=0.0)
    if size <= 0 or not inside.any():
        return
    far = float((_skeleton_distance(inside.shape, keypoints, person.scores)[inside] > size).mean())
    if far > MAX_UNEXPLAINED:
        raise HoldposeError(f"{what}: the pose found does not fit the person ({100 * far:.0f} % of their outline "
                            "lies far from it: the detector did not make out the body); use a photo that shows "
                            "more of the person")


def check_reference_pose(scores: np.ndarray, what: str = "the reference image") -> None:
    """A one-line :class:`HoldposeError` unless the pose (``scores [133]``) shows a torso: both
    shoulders or both hips, which the puppet's body and the alignment's scale hang from."""
    present = np.asarray(scores)[:17] >= REFERENCE_MIN_VISIBILITY
    if present[[5, 6]].all() or present[[11, 12]].all():
        return
    from holdpose.skeleton import COCO_WHOLEBODY

    seen = ", ".join(COCO_WHOLEBODY.keypoint_names[i].replace("_", " ") for i in np.flatnonzero(present))
    raise HoldposeError(f"{what}: the person's torso is not in view (found {seen or 'no body point'}; both "
                        "shoulders or both hips are needed); use a photo that shows the person from the head "
                        "to at least the chest")


def without_squashed_body(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``scores [133]`` with the hips and legs missing when the torso they make is too short for
    the face: MediaPipe shown a photo cut through the chest (a head and one shoulder) draws a whole
    small body inside it, hips in the clothes, with full confidence. A torso (shoulder to hip) is
    5.6-12 eye distances in the photos measured (bench/bench_warp_partial.py), the made-up ones
    0.8-4.3 (the astronaut with her left arm cut away: shoulders 30-76 px too high, hips in the suit);
    a body bent toward the camera foreshortens it, hence the margin."""
    present = scores >= REFERENCE_MIN_VISIBILITY
    if not present[[1, 2]].all():
        return scores
    eyes = float(np.linalg.norm(keypoints[1] - keypoints[2]))
    torso = [float(np.linalg.norm(keypoints[a] - keypoints[b])) for a, b in ((5, 11), (6, 12)) if present[[a, b]].all()]
    if not torso or np.mean(torso) >= MIN_TORSO_EYES * eyes:
        return scores
    logger.info("reference: a torso of %.1f eye distances is not one; its hips and legs are left out",
                np.mean(torso) / max(eyes, 1e-6))
    out = scores.copy()
    out[LEGS] = 0
    return out


def find_people(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every person (up to :data:`MAX_PEOPLE`) MediaPipe's person detector finds in ``image``,
    ``(keypoints [133, 2], scores [133])`` body only, best first; empty without a TFLite interpreter."""
    from holdpose.detect import candidates
    from holdpose.detect.mediapipe import MediaPipeDetector

    if not candidates.interpreter_available():
        return []
    with MediaPipeDetector(max_people=MAX_PEOPLE, min_visibility=REFERENCE_MIN_VISIBILITY,
                           hands_and_face=False) as finder:
        keypoints, scores = finder(image)
    return list(zip(keypoints, scores))


def _main_person(person: ReferencePerson | None, people: list) -> int:
    """Index of the person holistic picked, or of the largest when it found nobody.

    Holistic's pick is whom its skeleton shares at least three body points with. Two people
    found there (both sharing points with it, and with each other) mean one of them is a blend
    of two people, as holistic's own skeleton may be: the one whose body points the landmark
    model sees most surely is taken (a blend's pieces of the person behind are half hidden)."""
    if person is not None:
        shared = np.array([_shared(person, other) for other in people])
        if shared.max() >= 3:
            candidates = np.flatnonzero(shared >= 3)
            seen = [(int((people[i][1][:17] > SEEN).sum()), shared[i]) for i in candidates]
            return int(candidates[max(range(len(candidates)), key=lambda k: seen[k])])
    sizes = [_size(kp, sc) for kp, sc in people]
    return int(np.argmax(sizes))


def _size(keypoints: np.ndarray, scores: np.ndarray) -> float:
    """Long side of the box around the seen body points, px."""
    seen = scores[:17] > SEEN
    return float(np.ptp(keypoints[:17][seen], 0).max()) if seen.sum() >= 2 else 0.0


def _shared(person: ReferencePerson, other: tuple[np.ndarray, np.ndarray], reach: float = 0.1) -> int:
    """How many body points both see within ``reach`` x the person's size of each other."""
    both = (person.scores[:17] > SEEN) & (other[1][:17] > SEEN)
    size = max(_size(person.keypoints, person.scores), _size(*other), 1.0)
    close = np.linalg.norm(person.keypoints[:17] - other[0][:17], axis=1) < reach * size
    return int((both & close).sum())


def _same(person: ReferencePerson, other: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether ``person`` is ``other``: nearly every body point both see lies close."""
    both = int(((person.scores[:17] > SEEN) & (other[1][:17] > SEEN)).sum())
    return both >= 3 and _shared(person, other, reach=0.08) >= both - 1


def _someone_else(other: tuple[np.ndarray, np.ndarray], person: ReferencePerson) -> bool:
    """Whether ``other`` is another person than ``person`` (who has a mask): not sharing two points
    with them (the same person found twice, or a blend of them with someone else), and not lying
    mostly inside their outline (a skeleton the landmark model makes up on their legs). Either
    would claim the person's own pixels."""
    if _shared(person, other) >= 2:
        return False
    keypoints, scores = other
    h, w = person.mask.shape
    seen = (scores[:17] > SEEN) & (keypoints[:17, 0] >= 0) & (keypoints[:17, 0] < w) & (keypoints[:17, 1] >= 0) \
        & (keypoints[:17, 1] < h)
    if not seen.any():
        return False
    x, y = keypoints[:17][seen].astype(int).T
    return float((person.mask[y, x] > 0.5).mean()) < 0.5


def _look_again(detector, image: np.ndarray, main: tuple[np.ndarray, np.ndarray]) -> ReferencePerson | None:
    """Holistic in a crop around ``main`` (its body box, squared, :data:`CROP_MARGIN` times):
    their pose, mask and depth on the whole photo, or None if it finds someone else."""
    h, w = image.shape[:2]
    keypoints, scores = main
    seen = scores[:17] > SEEN
    box = np.concatenate([keypoints[:17][seen].min(0), keypoints[:17][seen].max(0)])
    x0, y0, x1, y1 = expand_box(box, CROP_MARGIN, (w, h), square=True).round().astype(int)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    found = detector.detect_one(np.ascontiguousarray(image[y0:y1, x0:x1]))
    if found is None:
        return None
    # points the crop does not show are missing already; the photo may show more of the person than
    # the crop, but the crop holds their body box with a margin
    person = ReferencePerson(found[0] + np.array([x0, y0], np.float32), found[1], None, detector.last_depth)
    if not _same(person, main):
        logger.info("reference: a second look around the main person found someone else")
        return None
    if detector.last_mask is not None:
        person.mask = np.zeros((h, w), np.float32)
        person.mask[y0:y1, x0:x1] = detector.last_mask
    logger.info("reference: the photo's main person looked at again in the crop (%d, %d)-(%d, %d)", x0, y0, x1, y1)
    return person


def _finder_pose(person: ReferencePerson | None, main: tuple[np.ndarray, np.ndarray]) -> ReferencePerson:
    """The person detector's pose of ``main`` (body only), with holistic's mask when there is one."""
    logger.info("reference: holistic's skeleton was not one person; the person detector's is used")
    return ReferencePerson(main[0].copy(), main[1].copy(), None if person is None else person.mask, None)


def _own_pixels(mask: np.ndarray, person: ReferencePerson, others: list) -> np.ndarray:
    """``mask [H, W]`` less the pixels nearer another person's skeleton than ``person``'s."""
    distances = [_skeleton_distance(mask.shape, person.keypoints, person.scores)]
    distances += [_skeleton_distance(mask.shape, kp, sc) for kp, sc in others]
    nearest = np.argmin(np.stack(distances), axis=0)
    return np.where(nearest == 0, mask, 0).astype(np.float32)


def _skeleton_distance(shape: tuple[int, int], keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``float32 [H, W]``: each pixel's distance to the person's body bones, px (inf without bones)."""
    import cv2

    lines = np.ones(shape, np.uint8)
    present = scores[:17] >= REFERENCE_MIN_VISIBILITY
    drawn = False
    for a, b in BODY_BONES_2D:
        if present[a] and present[b]:
            cv2.line(lines, tuple(int(v) for v in np.round(keypoints[a])), tuple(int(v) for v in np.round(keypoints[b])),
                     0, 2)
            drawn = True
    if not drawn:
        return np.full(shape, np.inf, np.float32)
    return cv2.distanceTransform(lines, cv2.DIST_L2, 3)
