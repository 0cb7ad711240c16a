#!/usr/bin/env bash
# Create (once) a throwaway venv for bench/baseline_tutorial_extract.py, the plain
# "tutorial" extraction loop that bench_extract.py compares holdpose against:
#
#   mediapipe==0.10.21 (brings opencv-contrib-python), numpy<2, matplotlib,
#   torch==2.13.0 (the CPU build pip finds on local disk; the tutorial's drawing code,
#   controlnet_aux, imports torch; never torchvision), and controlnet-aux==0.0.10
#   installed --no-deps for its open_pose/util.py drawing code.
#
#   bench/baseline_venv.sh [VENV_DIR]        default: $HOLDPOSE_BASELINE_VENV or /tmp/holdpose-baseline-venv
#
# The base (numpy<2, OpenCV, matplotlib, controlnet-aux --no-deps, and the check that
# util.py is where _reference_draw.py looks for it) is laid by reference_venv.sh, with
# OPENCV_SPEC naming the OpenCV wheel mediapipe depends on, so both packages agree on
# the one cv2. Prints the venv's python.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-${HOLDPOSE_BASELINE_VENV:-/tmp/holdpose-baseline-venv}}"
# mediapipe 0.10.21 depends on opencv-contrib-python; OpenCV 4.12+ wants numpy>=2.
OPENCV_SPEC="${OPENCV_SPEC:-opencv-contrib-python==4.11.0.86}"
MARKER="$VENV/.holdpose-baseline-ok"

if [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; then
    echo "$VENV/bin/python"
    exit 0
fi

echo "creating baseline venv in $VENV" >&2
OPENCV_SPEC="$OPENCV_SPEC" bash "$HERE/reference_venv.sh" "$VENV" >/dev/null
# torch is pinned exactly: 2.13.0 is the CPU build on local disk; any other version
# pulls GBs of CUDA wheels.
"$VENV/bin/python" -m pip install --quiet "mediapipe==0.10.21" "numpy<2" "$OPENCV_SPEC" "torch==2.13.0" >&2
"$VENV/bin/python" - >&2 <<'EOF'
import cv2, mediapipe, numpy, torch
assert numpy.__version__.startswith("1."), numpy.__version__
print("baseline venv: mediapipe", mediapipe.__version__, "torch", torch.__version__,
      "numpy", numpy.__version__, "opencv", cv2.__version__)
EOF
touch "$MARKER"
echo "$VENV/bin/python"
