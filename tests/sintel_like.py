"""A synthetic clip laid out like MPI Sintel, with its exact forward flows and occlusions.

A textured square moves by whole pixels over a background that moves too (``moving_square_clip``),
so every frame is exact and so is the ground truth: warping frame t+1 back with the forward flow
reproduces frame t on every pixel that is neither occluded nor sent out of the frame.

    python -m tests.sintel_like OUT [--frames 24 --height 218 --width 512]

writes OUT/clean/square/frame_0001.png ..., OUT/flow/square/frame_0001.flo ... (flow from frame 1
to 2) and OUT/occlusions/square/frame_0001.png ... (white where frame 1's pixel is hidden in frame 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from tests.clips import make_frame_folder
from tests.synthetic import _default_corner, _grid, _inside_square, moving_square_clip
from vidstyle.io.flo import write_flo

SCENE = "square"


def sintel_like(num_frames: int, height: int, width: int, *, velocity=(3, 2), background_velocity=(1, 0),
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames uint8 (T, H, W, 3); forward flows float32 (T-1, H, W, 2); occluded bool (T-1, H, W).

    Velocities are whole pixels per frame (dx, dy), so that the frames and flows are exact. Pixel x
    of frame t is occluded when it is background in t and the square covers x + flow in t+1.
    """
    size = int(0.3 * min(height, width))
    corner = tuple(float(int(c)) for c in _default_corner(height, width, size))   # whole pixels: exact
    frames = moving_square_clip(num_frames, height, width, size=size, corner=corner, velocity=velocity,
                                background_velocity=background_velocity, seed=seed)
    x, y = _grid(height, width)
    flows, occluded = [], []
    for t in range(num_frames - 1):
        here = _inside_square(x, y, (corner[0] + t * velocity[0], corner[1] + t * velocity[1]), size)
        later = (corner[0] + (t + 1) * velocity[0], corner[1] + (t + 1) * velocity[1])
        flow = np.where(here[..., None], np.float32(velocity), np.float32(background_velocity))
        flow = flow.astype(np.float32)
        flows.append(flow)
        occluded.append(~here & _inside_square(x + flow[..., 0], y + flow[..., 1], later, size))
    return frames, np.stack(flows), np.stack(occluded)


def write_mask_folder(folder: Path, masks: np.ndarray, start: int = 1) -> Path:
    """bool (N, H, W) masks as frame_NNNN.png, white where True."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, mask in enumerate(masks):
        cv2.imwrite(str(folder / f"frame_{start + i:04d}.png"), mask.astype(np.uint8) * 255)
    return folder


def write_sintel_like(root: str | Path, frames: np.ndarray, flows: np.ndarray, occluded: np.ndarray,
                      scene: str = SCENE) -> dict[str, Path]:
    """Write the Sintel layout under ``root``; returns the folders {"clean", "flow", "occlusions"}."""
    root = Path(root)
    clean = make_frame_folder(root / "clean" / scene, frames, pattern="frame_{:04d}.png", start=1)
    flow_dir = root / "flow" / scene
    flow_dir.mkdir(parents=True, exist_ok=True)
    for i, flow in enumerate(flows):
        write_flo(flow_dir / f"frame_{i + 1:04d}.flo", flow)
    occlusions = write_mask_folder(root / "occlusions" / scene, occluded)
    return {"clean": clean, "flow": flow_dir, "occlusions": occlusions}


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic clip laid out like MPI Sintel.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--height", type=int, default=218)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()
    folders = write_sintel_like(args.out, *sintel_like(args.frames, args.height, args.width))
    for name, folder in folders.items():
        print(f"{name}: {folder}")


if __name__ == "__main__":
    main()
