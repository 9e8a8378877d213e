"""Dense local descriptors for matching: a fast SIFT-like descriptor, plus DAISY and kornia for comparison.

Every function takes a gray image (H, W) (uint8 or float in [0, 255]) and returns float32 (H, W, D):
one L2-normalised descriptor per pixel, centred on that pixel. ``descriptor_pyramid`` builds them on
an image pyramid (level ``l`` has half the size of level ``l - 1``; pixel ``x`` at level ``l`` is pixel
``x * 2**l`` at level 0, as ``cv2.pyrDown`` samples).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _normalize(desc: np.ndarray, *, clip: float = 0.0, eps: float = 1e-6) -> np.ndarray:
    """L2-normalise along the last axis (``eps`` added to the norm); with ``clip``, clip and normalise again."""
    norm = np.sqrt(np.einsum("...d,...d->...", desc, desc))[..., None]
    desc = desc / (norm + eps)
    if clip:
        np.minimum(desc, clip, out=desc)
        norm = np.sqrt(np.einsum("...d,...d->...", desc, desc))[..., None]
        desc /= np.maximum(norm, 1e-6)
    return desc


def orientation_maps(gray: np.ndarray, *, bins: int = 8, sigma: float = 0.8) -> np.ndarray:
    """Gradient magnitude split into ``bins`` orientation channels (soft binning), float32 (H, W, bins)."""
    img = np.asarray(gray, np.float32)
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1)
    mag, ang = cv2.cartToPolar(gx, gy)  # angle in radians, [0, 2 pi)
    pos = ang * (bins / (2.0 * np.pi))
    lower = np.floor(pos)
    frac = pos - lower
    lower = lower.astype(np.int64) % bins
    out = np.zeros((*img.shape, bins), np.float32)
    if bins < 2:
        out[..., 0] = mag
        return out
    # Each pixel's two bins differ, so writing them is the same as adding to zeros (and much faster).
    np.put_along_axis(out, lower[..., None], (mag * (1.0 - frac))[..., None], axis=2)
    np.put_along_axis(out, ((lower + 1) % bins)[..., None], (mag * frac)[..., None], axis=2)
    return out


def sift_like(gray: np.ndarray, *, cell: int = 4, cells: int = 4, bins: int = 8,
              projection: np.ndarray | None = None) -> np.ndarray:
    """Dense SIFT-like descriptors: ``cells x cells`` histograms of ``bins`` gradient orientations.

    Each cell covers ``cell`` pixels (bilinear spatial weights, as SIFT); the whole patch is
    ``cells * cell`` pixels wide and centred on the pixel. The descriptor is L2-normalised, with a
    contrast floor (a tenth of the image's median norm) so that flat areas stay near zero instead of
    amplifying noise. Returns float32 (H, W, cells * cells * bins), or (H, W, d) projected by
    ``projection`` (cells * cells * bins, d) (see :func:`fit_projection`).

    The cells are gathered by one dilated convolution (projection folded into its weights), so the
    cost does not depend on ``cell`` and the full descriptor is never built when projecting.
    """
    ori = orientation_maps(gray, bins=bins)
    # A triangle of half-width ``cell`` = two boxes of width ``cell``: SIFT's bilinear cell weights.
    pooled = cv2.blur(cv2.blur(ori, (cell, cell)), (cell, cell)).reshape(*ori.shape[:2], bins)
    h, w = pooled.shape[:2]
    full = cells * cells * bins
    proj = np.eye(full, dtype=np.float32) if projection is None else np.asarray(projection, np.float32)
    # Weight [d, b, i, j] multiplies orientation b of cell (i, j): descriptor entry (i * cells + j) * bins + b.
    weight = torch.from_numpy(proj.reshape(cells, cells, bins, -1)).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)
    span = (cells - 1) * cell
    pad = (span // 2, span - span // 2)
    with torch.no_grad():
        # Padded (H', W', bins) seen as (1, bins, H', W') in channels-last memory order, as the weights:
        # the convolution runs about twice as fast so, and its output is (H, W, D) in memory already.
        # (Same values as the channels-first convolution, bit for bit.)
        x = torch.from_numpy(cv2.copyMakeBorder(pooled, pad[0], pad[1], pad[0], pad[1], cv2.BORDER_REPLICATE)
                             .reshape(h + span, w + span, bins)).permute(2, 0, 1)[None]
        desc = F.conv2d(x, weight, dilation=cell)[0].permute(1, 2, 0)  # (H, W, D), contiguous
        # The descriptor's squared norm is the sum of its cells' squared norms.
        x = x.contiguous()  # channels-first: the channel sum below adds in the same order as before
        norm = _cell_sum((x * x).sum(1)[0], cells, cell, (h, w)).clamp_(min=0).sqrt_()
        floor = 0.1 * float(norm[::4, ::4].median()) + 1e-6
        desc.mul_((1.0 / (norm + floor))[..., None])  # in place: a new (H, W, D) array costs more than the product
    return np.ascontiguousarray(desc.numpy())  # (no copy where the convolution gave channels last)


def _cell_sum(values: torch.Tensor, cells: int, cell: int, size: tuple[int, int]) -> torch.Tensor:
    """The sum (H, W) = ``size`` of ``values`` (H', W') over ``cells x cells`` points ``cell`` apart: the
    dilated convolution with ones, added in its order (row by row; same bits) without its cost."""
    h, w = size
    total = torch.zeros(h, w)
    for i in range(cells):
        for j in range(cells):
            total += values[i * cell:i * cell + h, j * cell:j * cell + w]
    return total


def fit_projection(samples: np.ndarray, dims: int) -> np.ndarray:
    """PCA basis (D, dims) of descriptor samples (N, D): the ``dims`` directions of largest variance."""
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(-1, samples.shape[-1])
    x = x - x.mean(0)
    cov = x.T @ x / max(1, len(x) - 1)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return vecs[:, -dims:].flip(1).float().contiguous().numpy()


def daisy_descriptors(gray: np.ndarray, *, radius: int = 8) -> np.ndarray:
    """Dense DAISY (Tola et al.) from scikit-image at every pixel, float32 (H, W, 104)."""
    from skimage.feature import daisy

    img = np.asarray(gray, np.float32) / 255.0
    padded = np.pad(img, radius, mode="edge")
    desc = daisy(padded, step=1, radius=radius, rings=2, histograms=6, orientations=8)
    return _normalize(desc.astype(np.float32))


def kornia_dense_sift(gray: np.ndarray, *, cell: int = 4) -> np.ndarray:
    """Dense SIFT from kornia (``DenseSIFTDescriptor``) at every pixel, float32 (H, W, 128)."""
    import kornia

    h, w = gray.shape
    pad = 2 * cell
    sift = kornia.feature.DenseSIFTDescriptor(num_ang_bins=8, num_spatial_bins=4, spatial_bin_size=cell,
                                              stride=1, padding=pad)
    x = torch.from_numpy(np.asarray(gray, np.float32) / 255.0)[None, None]
    with torch.no_grad():
        d = sift(x)[0]
    d = d[:, :h, :w].permute(1, 2, 0).contiguous().numpy()
    return _normalize(d)


DESCRIPTORS = {"sift": sift_like, "daisy": daisy_descriptors, "kornia-sift": kornia_dense_sift}
DESCRIPTOR_SIZE = {"sift": 128, "daisy": 104, "kornia-sift": 128}


def gray_pyramid(gray: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels + 1`` float32 images, level 0 the input, each next one ``cv2.pyrDown`` of the last."""
    pyr = [np.asarray(gray, np.float32)]
    for _ in range(levels):
        pyr.append(cv2.pyrDown(pyr[-1]))
    return pyr


def descriptor_pyramids(gray1: np.ndarray, gray2: np.ndarray, levels: int, *, kind: str = "sift",
                        dims: int | None = 32, finest: int = 0, shrink: float | None = None
                        ) -> tuple[list, ...]:
    """Descriptors (H_l, W_l, D) of both frames at pyramid levels 0..``levels`` (module docstring).

    Levels below ``finest`` are not computed (``None`` in the lists). With ``shrink`` (a factor < 1),
    two more lists hold the descriptors of frame 1's and frame 2's levels resized by ``shrink`` (for
    matches whose size changes between the frames, see ``proposals.MatchLevel``).

    With ``dims``, both frames are projected on one PCA basis of ``dims`` directions, fitted on the
    descriptors of a coarse level of both frames (:func:`pair_projection`): distances keep most of
    their variance at a fraction of the matching cost.
    """
    if kind not in DESCRIPTORS:
        raise ValueError(f"unknown descriptor {kind!r}; known: {', '.join(DESCRIPTORS)}")
    pyr1, pyr2 = gray_pyramid(gray1, levels), gray_pyramid(gray2, levels)
    proj = pair_projection(pyr1, pyr2, kind, dims) if dims is not None else None
    one = frame_descriptors(pyr1, kind=kind, projection=proj, finest=finest, shrink=shrink)
    two = frame_descriptors(pyr2, kind=kind, projection=proj, finest=finest, shrink=shrink)
    return (one[0], two[0]) + ((one[1], two[1]) if shrink is not None else ())


def pair_projection(pyr1: list[np.ndarray], pyr2: list[np.ndarray], kind: str, dims: int) -> np.ndarray:
    """The PCA basis (D, dims) that :func:`descriptor_pyramids` fits on a coarse level of both gray pyramids."""
    base = DESCRIPTORS[kind]
    fit_level = min(len(pyr1) - 1, 2)
    samples = np.concatenate([base(pyr1[fit_level])[::2, ::2].reshape(-1, DESCRIPTOR_SIZE[kind]),
                              base(pyr2[fit_level])[::2, ::2].reshape(-1, DESCRIPTOR_SIZE[kind])])
    return fit_projection(samples, min(dims, samples.shape[1]))


def frame_descriptors(pyr: list[np.ndarray], *, kind: str = "sift", projection: np.ndarray | None = None,
                      finest: int = 0, shrink: float | None = None) -> tuple[list, list | None]:
    """One frame's descriptors at each level of its gray pyramid ``pyr`` (None below ``finest``),
    projected by ``projection`` (D, d) if given, and (second, with ``shrink``) of each level resized
    by ``shrink``, else None. A video computes each frame's once: it is frame 2 of one pair and frame 1
    of the next."""
    describe = _describer(kind, projection)
    plain = [describe(g) if level >= finest else None for level, g in enumerate(pyr)]
    if shrink is None:
        return plain, None
    return plain, shrunk_descriptors(pyr, kind=kind, projection=projection, finest=finest, shrink=shrink)


def shrunk_descriptors(pyr: list[np.ndarray], *, kind: str = "sift", projection: np.ndarray | None = None,
                       finest: int = 0, shrink: float) -> list:
    """The second list of :func:`frame_descriptors`: each level of ``pyr`` resized by ``shrink``, described."""
    describe = _describer(kind, projection)
    return [describe(_resize(g, shrink)) if level >= finest else None for level, g in enumerate(pyr)]


def _describer(kind: str, projection: np.ndarray | None):
    """A function gray image -> descriptors (H, W, d) of ``kind``, projected by ``projection`` if given."""
    base = DESCRIPTORS[kind]
    if projection is None:
        return base
    if kind == "sift":  # the projection folds into the descriptor's convolution
        return lambda image: base(image, projection=projection)
    return lambda image: base(image) @ projection


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
