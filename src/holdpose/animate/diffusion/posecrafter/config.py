"""PoseCrafter's names and defaults, in a module light enough for ``holdpose --help`` (no torch):
the tuned folder's file names, the paper's hyper-parameters and the trainable sets."""

TUNED_FORMAT = "holdpose-posecrafter/1"
TUNED_NAME = "posecrafter.json"
FRAMES_DIR = "frames"
FRAME_NAME = "frame_{:06d}.png"
POSES_NAME = "poses.npz"
DEFAULT_PROMPT = "a person"
DEFAULT_LEARNING_RATE = 3e-3  # the paper's fixed rate (ControlVideo's is 3e-5) [check]
DEFAULT_RESOLUTION = 512
CLIP_FRAMES = 8  # frames per training step (the paper's N = 8)
POSE_STYLE = "openpose_full"  # ControlNet v1.1 OpenPose, DWPose maps with hands and face

# Named trainable sets (regular expressions over PoseCrafterModel parameter names, :mod:`.model`). The paper
# states 68.79 M trainable parameters; no natural subset of SD 1.5 gives that count (SEED_MODULES
# §2.3), so the default is ControlVideo's set (80,324,800 on SD 1.5) and the others are offered.
_TEMPORAL = r"^unet\..*\.attn1\.processor\.(attn_temp|conv_temp)\."
_UNET_OUT = r"^unet\..*\.attn1\.to_out\."
_CONTROLNET_OUT = r"^controlnet\..*\.attn1\.to_out\."
TRAINABLE_SETS: dict[str, tuple[str, ...]] = {
    "controlvideo": (_TEMPORAL, _UNET_OUT, _CONTROLNET_OUT),  # ControlVideo train.py: 80.32 M on SD 1.5
    "temporal": (_TEMPORAL,),  # 61.98 M
    "temporal+controlnet": (_TEMPORAL, _CONTROLNET_OUT),  # 67.92 M, the closest to the paper's 68.79 M
    "temporal+unet": (_TEMPORAL, _UNET_OUT),  # 74.38 M
}
DEFAULT_TRAINABLE = "controlvideo"
