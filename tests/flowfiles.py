"""Small vidstyle-flow/1 files with exact flows, for the data loader and training tests."""

import numpy as np

from tests.synthetic import translation_pair
from vidstyle.flow.flowwriter import write_clip

SHIFT = (3.0, -2.0)   # whole-picture motion per frame, pixels (dx, dy)
ATTRS = {"source": "synthetic", "source_size": 0, "source_mtime": 0.0, "fps": 25.0,
         "flow_method": "exact", "flow_params": {}, "created": "test", "vidstyle_version": "test"}


def write_translation_clip(path, height=48, width=64, shift=SHIFT, seed=0):
    """A 3-frame clip whose picture moves by ``shift`` each frame, with its exact flows and masks."""
    first = translation_pair(height, width, shift, seed)
    second = translation_pair(height, width, (2 * shift[0], 2 * shift[1]), seed)
    frames = np.stack([first.frame_a, first.frame_b, second.frame_b])
    flows_fw = np.stack([first.flow_fw] * 2)
    flows_bw = np.stack([first.flow_bw] * 2)
    masks = np.stack([(~first.out_of_frame).astype(np.uint8)] * 2)
    return write_clip(path, frames, flows_fw, flows_bw, masks, ATTRS)


def write_training_flows(folder):
    """A tiny training set in the new folder ``folder``: two such clips moving different ways."""
    folder.mkdir()
    write_translation_clip(folder / "a.h5", 40, 48, seed=1)
    write_translation_clip(folder / "b.h5", 40, 48, shift=(-2.0, 1.0), seed=2)
    return folder
