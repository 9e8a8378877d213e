"""Classical flow methods from OpenCV (contrib): DIS, Farneback, DeepFlow, TV-L1."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.warp import to_gray


def padded_pair(gray1: np.ndarray, gray2: np.ndarray, min_side: int, *, replicate: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Grey frames (H, W) padded at their bottom and right to at least ``min_side`` px a side (unchanged
    when they are that large): with their edge rows and columns (``replicate``) or with each frame's mean
    grey. (Crop the flow back to (H, W).)"""
    h, w = gray1.shape
    pad_h, pad_w = max(0, min_side - h), max(0, min_side - w)
    if not (pad_h or pad_w):
        return gray1, gray2
    if replicate:
        return tuple(cv2.copyMakeBorder(g, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE) for g in (gray1, gray2))
    return tuple(cv2.copyMakeBorder(g, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=int(round(float(g.mean()))))
                 for g in (gray1, gray2))


class DISFlow(FlowMethod):
    """Dense Inverse Search (Kroeger et al., ECCV 2016) with one of OpenCV's presets."""

    PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, preset: str = "medium") -> None:
        if preset not in self.PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}")
        self.preset = preset
        self.name = f"dis-{preset}"

    # OpenCV's DIS rejects frames with a side under 12 px and crashes (segfault) on short, wide ones
    # such as 16x100: its pyramid depth comes from the width alone. Frames are padded to this side, with
    # their mean grey: edge rows or columns repeated are stripes that a shift along them leaves unchanged,
    # and DIS drifted along them (a 2 px shift of a 3x96 frame read as 17 px on average, up to 39).
    MIN_SIDE = 32

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        return FlowResult(dis_flow(to_gray(img1), to_gray(img2), self.preset))


def dis_flow(gray1: np.ndarray, gray2: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV's DIS flow (H, W, 2) float32 from uint8 grey ``gray1`` to ``gray2`` (H, W), with one of
    :attr:`DISFlow.PRESETS`; frames of any size from 1x1 (padded to :attr:`DISFlow.MIN_SIDE` with their mean
    grey, the flow cropped back)."""
    h, w = gray1.shape
    dis = cv2.DISOpticalFlow_create(DISFlow.PRESETS[preset])
    flow = dis.calc(*padded_pair(gray1, gray2, DISFlow.MIN_SIDE, replicate=False), None)
    return np.ascontiguousarray(flow[:h, :w])


class FarnebackFlow(FlowMethod):
    """Farneback's polynomial-expansion flow (SCIA 2003), 5-level pyramid."""

    name = "farneback"

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        flow = cv2.calcOpticalFlowFarneback(
            to_gray(img1), to_gray(img2), None,
            pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0,
        )
        return FlowResult(flow)


class DeepFlow(FlowMethod):
    """DeepFlow (Weinzaepfel et al., ICCV 2013) as implemented in OpenCV's optflow module."""

    name = "deepflow"
    # On frames with a side under about 48 px OpenCV's DeepFlow returns almost no flow (a 2 px shift read as
    # 0.1 px at 37x23, without a word): frames are padded to this side with their edges.
    MIN_SIDE = 64

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        deepflow = cv2.optflow.createOptFlow_DeepFlow()
        gray1, gray2 = to_gray(img1), to_gray(img2)
        h, w = gray1.shape
        flow = deepflow.calc(*padded_pair(gray1, gray2, self.MIN_SIDE, replicate=True), None)
        return FlowResult(np.ascontiguousarray(flow[:h, :w]))


class TVL1Flow(FlowMethod):
    """Dual TV-L1 (Zach et al. 2007) with a 0.5 pyramid step so large motion is reachable."""

    name = "tvl1"

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        tvl1.setScaleStep(0.5)
        return FlowResult(tvl1.calc(to_gray(img1), to_gray(img2), None))
