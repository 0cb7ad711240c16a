#!/usr/bin/env bash
# Create (once) a throwaway venv holding the reference drawing code for bench_render.py:
# controlnet_aux 0.0.10, installed WITHOUT its dependencies (they would pull in torch,
# torchvision and a different numpy), plus the little that open_pose/util.py needs.
#
#   bench/reference_venv.sh [VENV_DIR]        default: $HOLDPOSE_REFERENCE_VENV or /tmp/holdpose-reference-venv
#
# OPENCV_SPEC picks the OpenCV wheel (bench_render.py passes the version of the OpenCV in
# the main venv, so both sides rasterise with the same OpenCV). Prints the venv's python.
set -euo pipefail

VENV="${1:-${HOLDPOSE_REFERENCE_VENV:-/tmp/holdpose-reference-venv}}"
OPENCV_SPEC="${OPENCV_SPEC:-opencv-python-headless}"
PYTHON="${PYTHON:-python3}"
MARKER="$VENV/.holdpose-reference-ok"

if [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; then
    echo "$VENV/bin/python"
    exit 0
fi

echo "creating reference venv in $VENV" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "numpy<2" "$OPENCV_SPEC" matplotlib >&2
"$VENV/bin/python" -m pip install --quiet --no-deps "controlnet-aux==0.0.10" >&2
# Check that the drawing module is where _reference_draw.py looks for it.
"$VENV/bin/python" - >&2 <<'EOF'
import pathlib, sysconfig
util = pathlib.Path(sysconfig.get_paths()["purelib"]) / "controlnet_aux" / "open_pose" / "util.py"
assert util.is_file(), f"{util} missing"
print("reference drawing code:", util)
EOF
touch "$MARKER"
echo "$VENV/bin/python"
