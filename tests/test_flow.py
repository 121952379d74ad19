"""vidstyle.flow.optical against motion whose answer the test knows (tests/synthetic.py)."""

import cv2
import numpy as np
import pytest

from tests import synthetic
from vidstyle.errors import ConfigError
from vidstyle.flow import optical as flow

HEIGHT, WIDTH = 144, 192

# End-point error (pixels) allowed on pixels visible in both frames. Measured at 144x192 on these
# textures (flow_fw / flow_bw): translation, Farneback (defaults) 0.04 / 0.06, DIS 0.03 / 0.03,
# DeepFlow 0.007; affine, Farneback 0.09 / 0.13, DIS 0.06 / 0.09 (the flow varies across the
# windows). The bounds leave room for other OpenCV builds yet sit far below what a wrong sign, a
# vector left unscaled after upsampling (half the shift) or swapped axes would give (pixels).
TRANSLATION_EPE_MAX = 0.2
AFFINE_EPE_MAX = 0.3

# Estimated flows blur the motion of the square over about half a window each side (Farneback's
# 15-pixel window at 0.75 scale spans 20 pixels), and the motion-boundary check flags that whole
# band by design. So the mask must flag most of the true disoccluded region (measured recall
# 0.82-1.0 over three seeds), and what it flags must lie within BOUNDARY_SLACK pixels of the square
# (in either frame) or on the frame's 2-pixel edge, where any outward flow trips the out-of-frame
# check (measured precision 0.94-1.0).
DISOCCLUSION_RECALL_MIN = 0.75
DISOCCLUSION_PRECISION_MIN = 0.85
BOUNDARY_SLACK = 12
# Far from the square the static background has exactly zero motion; nearly all of it must stay
# valid (measured 0.99-1.0), or training would lose its temporal signal there.
BACKGROUND_VALID_MIN = 0.9

# Mean absolute error (grey levels of 255) of warp(frame_t, flow_bw) vs frame t+1 on mask-valid
# pixels. The exact flow pays 0.8 for bilinear interpolation and uint8 rounding; the texture's
# mean gradient is 11 levels a pixel, so 2.5 allows a flow about 0.15 px off on average (measured:
# Farneback 1.2, DIS 0.9). The same frames warped the wrong way round give 8.6.
WARP_MAE_ESTIMATED_MAX = 2.5
WARP_MAE_EXACT_MAX = 1.2

# Methods that must meet the accuracy bounds. DeepFlow is slow (0.9 s a 640x360 flow here), so it
# runs once, on the translation.
FAST_METHODS = ("farneback", "dis")


def _pair_errors(pair, method):
    """EPE of compute_pair's flow_fw (on frame a's pixels that stay in frame) and flow_bw (pair.valid)."""
    fw, bw, _ = flow.compute_pair(pair.frame_a, pair.frame_b, method)
    margin = int(np.ceil(np.abs(pair.flow_fw).max())) + 1
    stays_in_frame = np.zeros((HEIGHT, WIDTH), dtype=bool)
    stays_in_frame[margin:-margin, margin:-margin] = True
    return (synthetic.endpoint_error(fw, pair.flow_fw, stays_in_frame),
            synthetic.endpoint_error(bw, pair.flow_bw, pair.valid))


@pytest.mark.parametrize("method", FAST_METHODS)
def test_flow_recovers_subpixel_translation_of_texture(method):
    pair = synthetic.translation_pair(HEIGHT, WIDTH, (3.4, -2.2), seed=1)
    epe_fw, epe_bw = _pair_errors(pair, method)
    assert epe_fw < TRANSLATION_EPE_MAX and epe_bw < TRANSLATION_EPE_MAX, (epe_fw, epe_bw)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_flow_recovers_small_affine_motion(method):
    matrix = synthetic.similarity(HEIGHT, WIDTH, angle_deg=2.0, scale=1.03, shift=(2.0, 1.0))
    pair = synthetic.affine_pair(HEIGHT, WIDTH, matrix, seed=2)
    epe_fw, epe_bw = _pair_errors(pair, method)
    assert epe_fw < AFFINE_EPE_MAX and epe_bw < AFFINE_EPE_MAX, (epe_fw, epe_bw)


def test_deepflow_recovers_subpixel_translation_of_texture():
    pair = synthetic.translation_pair(HEIGHT, WIDTH, (3.4, -2.2), seed=1)
    epe_fw, epe_bw = _pair_errors(pair, "deepflow")
    assert epe_fw < TRANSLATION_EPE_MAX and epe_bw < TRANSLATION_EPE_MAX, (epe_fw, epe_bw)


def test_reduced_scale_farneback_rescales_flow_vectors():
    # At half scale a flow left unscaled would be half the shift, an EPE of about 3 pixels.
    pair = synthetic.translation_pair(HEIGHT, WIDTH, (5.0, 3.0), seed=3)
    bw = flow.compute_flow(pair.frame_b, pair.frame_a, "farneback", scale=0.5)
    assert synthetic.endpoint_error(bw, pair.flow_bw, pair.valid) < TRANSLATION_EPE_MAX


def _square_outline(square):
    """bool (H, W): pixels of the square or background with a 4-neighbour on the other side."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    square = square.astype(np.uint8)
    return (cv2.dilate(square, cross) != cv2.erode(square, cross))


def test_mask_of_exact_flows_is_disocclusion_outline_and_out_of_frame_exactly():
    pair = synthetic.moving_square_pair(HEIGHT, WIDTH, velocity=(6.0, 4.0), background_velocity=(-3.0, 0.0))
    mask = flow.consistency_mask(pair.flow_fw, pair.flow_bw)
    # Exact flows are piecewise constant: only the disocclusion check, the outline (the one place
    # the gradient is not zero) and the columns that came from beyond the frame can fail.
    expected_invalid = pair.disoccluded | _square_outline(pair.foreground) | pair.out_of_frame
    assert pair.disoccluded.sum() > 0 and pair.out_of_frame.sum() > 0
    np.testing.assert_array_equal(mask, (~expected_invalid).astype(np.uint8))


def test_mask_flags_points_warped_from_outside_the_frame():
    pair = synthetic.translation_pair(HEIGHT, WIDTH, (4.0, -3.0))
    mask = flow.consistency_mask(pair.flow_fw, pair.flow_bw)
    # Frame b's first 4 columns and last 3 rows show what was left or below frame a.
    expected = np.ones((HEIGHT, WIDTH), dtype=np.uint8)
    expected[:, :4] = 0
    expected[-3:, :] = 0
    np.testing.assert_array_equal(mask, expected)


def _within(region, distance):
    """bool (H, W): pixels at most ``distance`` pixels (chessboard) from the bool ``region``."""
    kernel = np.ones((2 * distance + 1, 2 * distance + 1), np.uint8)
    return cv2.dilate(region.astype(np.uint8), kernel).astype(bool)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_mask_flags_disocclusion_of_moving_square(method):
    pair = synthetic.moving_square_pair(HEIGHT, WIDTH, size=48, velocity=(7.0, 5.0), seed=4)
    _, _, mask = flow.compute_pair(pair.frame_a, pair.frame_b, method)
    flagged = mask == 0
    square_in_either_frame = pair.foreground | pair.disoccluded
    frame_edge = np.ones((HEIGHT, WIDTH), dtype=bool)
    frame_edge[2:-2, 2:-2] = False
    expected_place = _within(square_in_either_frame, BOUNDARY_SLACK) | frame_edge
    recall = flagged[pair.disoccluded].mean()
    precision = expected_place[flagged].mean()
    assert recall >= DISOCCLUSION_RECALL_MIN, recall
    assert precision >= DISOCCLUSION_PRECISION_MIN, precision


@pytest.mark.parametrize("method", FAST_METHODS)
def test_mask_keeps_static_background_valid(method):
    pair = synthetic.moving_square_pair(HEIGHT, WIDTH, size=48, velocity=(7.0, 5.0), seed=5)
    _, _, mask = flow.compute_pair(pair.frame_a, pair.frame_b, method)
    # Away from the square and from the frame's border (where flows are least certain).
    background = ~_within(pair.foreground | pair.disoccluded, BOUNDARY_SLACK)
    background[:BOUNDARY_SLACK] = background[-BOUNDARY_SLACK:] = False
    background[:, :BOUNDARY_SLACK] = background[:, -BOUNDARY_SLACK:] = False
    assert background.mean() > 0.3  # enough pixels left for the fraction to mean something
    assert mask[background].mean() >= BACKGROUND_VALID_MIN, mask[background].mean()


def _warp_mae(pair, flow_bw, mask):
    predicted = flow.warp(pair.frame_a, flow_bw).astype(np.float32)
    error = np.abs(predicted - pair.frame_b.astype(np.float32)).mean(axis=-1)
    return float(error[mask.astype(bool)].mean())


@pytest.mark.parametrize("method", FAST_METHODS)
def test_warping_frame_t_with_estimated_flow_bw_reproduces_frame_t1_on_valid_pixels(method):
    pair = synthetic.moving_square_pair(HEIGHT, WIDTH, size=48, velocity=(5.0, -3.0),
                                        background_velocity=(1.5, 1.0), seed=6)
    _, flow_bw, mask = flow.compute_pair(pair.frame_a, pair.frame_b, method)
    assert mask.mean() > 0.5  # the bound below must not hold merely because nothing is valid
    assert _warp_mae(pair, flow_bw, mask) < WARP_MAE_ESTIMATED_MAX


def test_warping_frame_t_with_exact_flow_bw_reproduces_frame_t1():
    pair = synthetic.moving_square_pair(HEIGHT, WIDTH, velocity=(2.5, 1.5), background_velocity=(-0.5, 0.25))
    assert _warp_mae(pair, pair.flow_bw, pair.valid) < WARP_MAE_EXACT_MAX
    # ...and the wrong way round it does not: the check above can fail.
    assert _warp_mae(pair, pair.flow_fw, pair.valid) > 3 * WARP_MAE_ESTIMATED_MAX


@pytest.mark.parametrize("shape, dtype", [((20, 30), np.uint8), ((20, 30, 3), np.uint8),
                                          ((20, 30, 1), np.float32), ((20, 30, 5), np.float32)])
def test_warp_with_zero_flow_is_identity(shape, dtype):
    image = np.random.default_rng(0).uniform(0, 255, size=shape).astype(dtype)
    out = flow.warp(image, np.zeros((20, 30, 2), np.float32))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, image)


def test_warp_with_integer_shift_equals_roll_on_interior_and_replicates_the_border():
    image = synthetic.texture(40, 50, seed=7)
    dx, dy = 3, -2
    shift = np.broadcast_to(np.array([dx, dy], np.float32), (40, 50, 2))
    out = flow.warp(image, np.ascontiguousarray(shift))
    # out(x) = image(x + d), i.e. the picture rolled by -d where x + d is inside the picture...
    rolled = np.roll(image, (-dy, -dx), axis=(0, 1))
    np.testing.assert_array_equal(out[2:, :-3], rolled[2:, :-3])
    # ...and the nearest border pixel where it is not.
    np.testing.assert_array_equal(out[:2, :-3], np.broadcast_to(image[0, 3:], (2, 47, 3)))
    np.testing.assert_array_equal(out[2:, -3:], np.broadcast_to(image[:-2, -1:], (38, 3, 3)))


def test_warp_interpolates_float_images_bilinearly_at_subpixel_points():
    ramp = np.add.outer(np.arange(10.0), 10 * np.arange(12.0)).astype(np.float32)  # 1 per row, 10 per column
    shift = np.zeros((10, 12, 2), np.float32)
    shift[..., 0], shift[..., 1] = 0.25, 0.5
    out = flow.warp(ramp, shift)
    np.testing.assert_allclose(out[:-1, :-1], ramp[:-1, :-1] + 10 * 0.25 + 0.5, atol=1e-4)


@pytest.mark.skipif(not flow._RELATIVE_MAP, reason="this OpenCV has no relative remap")
@pytest.mark.parametrize("dtype, channels", [(np.uint8, 3), (np.float32, 2), (np.uint8, 1)])
def test_warp_by_the_flow_itself_equals_warp_by_the_points_it_names(monkeypatch, dtype, channels):
    # warp() hands OpenCV the flow where OpenCV takes it, the points x + flow(x) where it does not;
    # both must sample exactly the same, out of frame and at sub-pixel points included.
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, size=(37, 53, channels)).astype(dtype)
    motion = (rng.normal(0, 6, size=(37, 53, 2))).astype(np.float32)
    by_flow = flow.warp(image, motion)
    monkeypatch.setattr(flow, "_RELATIVE_MAP", 0)
    np.testing.assert_array_equal(by_flow, flow.warp(image, motion))


def test_warp_rejects_flow_of_another_size():
    with pytest.raises(ConfigError):
        flow.warp(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11, 2), np.float32))


def test_flow_to_color_is_white_at_rest_and_saturated_along_directions():
    field = np.zeros((4, 4, 2), np.float32)
    field[0, 0] = (2.0, 0.0)     # right, at the maximum
    field[0, 1] = (-2.0, 0.0)    # left
    field[0, 2] = (0.0, 1.0)     # down, half the maximum
    picture = flow.flow_to_color(field)
    assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)
    assert (picture[1:] == 255).all()
    np.testing.assert_array_equal(picture[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(picture[0, 1], (0, 255, 255))
    # Half the maximum: half-saturated yellow-green (hue 90), blue channel at half.
    np.testing.assert_allclose(picture[0, 2], (191, 255, 128), atol=1)


def test_flow_to_color_saturates_beyond_max_magnitude():
    field = np.zeros((2, 2, 2), np.float32)
    field[0, 0] = (0.0, -50.0)
    field[0, 1] = (0.0, -5.0)
    picture = flow.flow_to_color(field, max_magnitude=5.0)
    np.testing.assert_array_equal(picture[0, 0], picture[0, 1])
    assert picture[0, 1].min() == 0  # fully saturated


def test_compute_pair_returns_flows_and_mask_on_the_frame_grid():
    pair = synthetic.translation_pair(40, 56, (1.0, 1.0))
    fw, bw, mask = flow.compute_pair(pair.frame_a, pair.frame_b)
    assert fw.shape == bw.shape == (40, 56, 2) and fw.dtype == bw.dtype == np.float32
    assert mask.shape == (40, 56) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


@pytest.mark.parametrize("method, params", [("dis", {}), ("farneback", {"reuse_forward": False})])
def test_compute_pair_backward_flow_is_the_flow_from_b_to_a(method, params):
    pair = synthetic.moving_square_pair(64, 80, size=24, velocity=(4.0, 2.0))
    fw, bw, mask = flow.compute_pair(pair.frame_a, pair.frame_b, method, **params)
    np.testing.assert_array_equal(fw, flow.compute_flow(pair.frame_a, pair.frame_b, method, **params))
    np.testing.assert_array_equal(bw, flow.compute_flow(pair.frame_b, pair.frame_a, method, **params))
    np.testing.assert_array_equal(mask, flow.consistency_mask(fw, bw))


@pytest.mark.parametrize("method, params", [("raft", {}), ("farneback", {"window": 5}),
                                            ("dis", {"preset": "slow"}), ("farneback", {"poly_n": 6}),
                                            ("farneback", {"scale": 2.0}), ("farneback", {"levels": "3"}),
                                            ("deepflow", {"preset": "fast"})])
def test_bad_method_or_parameter_is_a_config_error(method, params):
    image = synthetic.texture(32, 32)
    with pytest.raises(ConfigError):
        flow.compute_flow(image, image, method, **params)


def test_images_of_different_sizes_are_a_config_error():
    with pytest.raises(ConfigError, match="same size"):
        flow.compute_flow(synthetic.texture(32, 32), synthetic.texture(32, 40))


def test_deepflow_without_opencv_contrib_is_a_config_error(monkeypatch):
    monkeypatch.delattr(cv2, "optflow")
    image = synthetic.texture(32, 32)
    with pytest.raises(ConfigError, match="contrib"):
        flow.compute_flow(image, image, "deepflow")


@pytest.mark.parametrize("height, width", [(8, 64), (12, 200), (31, 200), (64, 8)])
def test_dis_on_thin_frames_gives_a_flow_of_their_size(height, width):
    """OpenCV's DIS crashed the process on such sizes (8x64, 12x200); the frames are extended for it.
    A texture moved 1 pixel right comes back as about +1 in x away from the edges."""
    pair = synthetic.translation_pair(height, width, (1.0, 0.0), seed=2)
    fw = flow.compute_flow(pair.frame_a, pair.frame_b, "dis", preset="medium")
    assert fw.shape == (height, width, 2) and np.isfinite(fw).all()
    inner = fw[:, 2:-2, 0] if width > height else fw[2:-2, :, 0]
    assert abs(float(np.median(inner)) - 1.0) < 0.5
