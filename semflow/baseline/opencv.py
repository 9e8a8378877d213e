"""Classical flow methods from OpenCV (contrib): DIS, Farneback, DeepFlow, TV-L1."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 gray (H, W)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


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
    # such as 16x100: its pyramid depth comes from the width alone. Frames are padded to this side.
    MIN_SIDE = 32

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        dis = cv2.DISOpticalFlow_create(self.PRESETS[self.preset])
        gray1, gray2 = to_gray(img1), to_gray(img2)
        h, w = gray1.shape
        pad_h, pad_w = max(0, self.MIN_SIDE - h), max(0, self.MIN_SIDE - w)
        if pad_h or pad_w:
            gray1 = cv2.copyMakeBorder(gray1, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            gray2 = cv2.copyMakeBorder(gray2, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        flow = dis.calc(gray1, gray2, None)
        return FlowResult(np.ascontiguousarray(flow[:h, :w]))


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

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        deepflow = cv2.optflow.createOptFlow_DeepFlow()
        return FlowResult(deepflow.calc(to_gray(img1), to_gray(img2), None))


class TVL1Flow(FlowMethod):
    """Dual TV-L1 (Zach et al. 2007) with a 0.5 pyramid step so large motion is reachable."""

    name = "tvl1"

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        tvl1.setScaleStep(0.5)
        return FlowResult(tvl1.calc(to_gray(img1), to_gray(img2), None))
