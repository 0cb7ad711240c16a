"""holdpose: make characters in AI-generated video hold a pose.

The package follows the data flow: pose data (``skeleton``, ``sequence``) ->
``detect`` -> ``refine`` / align -> ``render`` -> ``animate`` -> ``evaluate``.
Importing ``holdpose`` is cheap: heavy dependencies (mediapipe, PyAV, torch,
onnxruntime) load inside the functions that use them.
"""

from holdpose.errors import HoldposeError
from holdpose.sequence import PoseSequence
from holdpose.skeleton import COCO_WHOLEBODY, Skeleton

__version__ = "0.1.0"
__all__ = ["COCO_WHOLEBODY", "HoldposeError", "PoseSequence", "Skeleton", "__version__"]
