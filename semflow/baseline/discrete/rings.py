"""discrete's optional last step (``ring_width``): each rigid moving region's affine motion on the ring of
pixels just inside its outline, where the flow drifts.

Frame t is cut into SLIC superpixels; each gets a robust affine fit of the flow. Neighbouring well-fitted
superpixels whose affines agree along their shared border join into motion components; each large one
gets a robust affine fitted on its core (the component eroded). Then, using no ground truth:

1. vote: a superpixel near a component takes the component's affine where that matches frame t+1
   clearly better than its own flow, unless it would land where well-matching pixels of another motion
   land (:func:`vote_segments`);
2. ring fix: the components are found again on the voted flow, and on each one's outer ``width`` px the
   flow becomes the component's affine wherever the two differ by at most ``max_change`` px
   (:func:`fix_rings`).

Distances in px, colour errors in grey levels (mean over RGB of frames blurred by 0.8 px).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from semflow.warp import prepare_image


@dataclass(frozen=True)
class RingParams:
    """Settings of the step (the measured ones; see docs/methods.md). Superpixels: ``slic_size`` px,
    ``slic_ruler`` compactness, ``slic_iterations``; a superpixel is ``clean`` below this mean affine
    residual (px) with at least ``min_segment`` px; clean neighbours join when their affines differ by less
    than ``agree`` px along their border; a component needs ``min_component`` px, a core eroded by ``core``
    px (then half, then 2 px) and a median core residual at most ``max_core_residual`` px. Vote: superpixels
    within ``reach`` px; colour errors capped at ``cap``; a pixel ``matched`` below this error; a candidate
    dropped when more than ``conflict`` of its pixels land where matched pixels moving more than ``apart``
    px differently land; taken when its error is below ``(1 - rel) * own - absolute`` and ``matched``. Ring:
    changes of at most ``max_change`` px."""

    slic_size: int = 10
    slic_ruler: float = 10.0
    slic_iterations: int = 10
    clean: float = 0.25
    min_segment: int = 20
    agree: float = 0.5
    min_component: int = 400
    core: int = 10
    max_core_residual: float = 0.15
    reach: int = 12
    cap: float = 30.0
    matched: float = 8.0
    apart: float = 2.0
    conflict: float = 0.1
    rel: float = 0.1
    absolute: float = 0.3
    max_change: float = 1.0


@dataclass(frozen=True)
class Component:
    """One motion component: ``affine`` (2, 3) (flow = affine @ [x, y, 1], px), its ``box`` (y0, y1, x0, x1)
    and its ``mask`` over the box."""

    affine: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


def superpixels(image: np.ndarray, *, params: RingParams) -> np.ndarray:
    """SLIC superpixels of ``image`` (H, W, 3) uint8 RGB, in Lab: labels (H, W) int32, 0..N-1."""
    algorithm = cv2.ximgproc.SLICO if params.slic_ruler <= 0 else cv2.ximgproc.SLIC
    slic = cv2.ximgproc.createSuperpixelSLIC(cv2.cvtColor(image, cv2.COLOR_RGB2LAB), algorithm,
                                             params.slic_size, float(max(params.slic_ruler, 1)))
    slic.iterate(params.slic_iterations)
    slic.enforceLabelConnectivity(25)
    return slic.getLabels()


class PendingSuperpixels:
    """:func:`superpixels` of ``image`` computed on a thread of their own from now on (OpenCV lets go of the GIL),
    so that they overlap the work before the step; :meth:`labels_for` waits for them."""

    def __init__(self, image: np.ndarray, *, params: RingParams = RingParams()) -> None:
        self.image = image
        self._out: dict[str, object] = {}
        self._thread = threading.Thread(target=self._run, args=(params,), name="semflow-superpixels", daemon=True)
        self._thread.start()

    def _run(self, params: RingParams) -> None:
        try:
            self._out["labels"] = superpixels(self.image, params=params)
        except BaseException as exc:  # (raised where they are asked for)
            self._out["error"] = exc

    def labels_for(self, image: np.ndarray) -> np.ndarray | None:
        """The labels (H, W) int32, if ``image`` is the very array they were started on; else None."""
        if image is not self.image:
            return None
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out["labels"]


class Superpixels:
    """Superpixel ``labels`` (H, W) 0..N-1 and what the fits over them share: pixel coordinates relative to
    their label's centroid (``dx``, ``dy``), the affine fit's ``geometry`` terms (dx², dx dy, dy², dx, dy, 1) per
    pixel and their sums per label (``geometry_sums`` (6, N)), the label pairs along shared borders (``pairs``
    (P, 2), with each border pixel's pair index ``border_pair`` and position ``border_x``, ``border_y``)."""

    def __init__(self, labels: np.ndarray) -> None:
        h, w = labels.shape
        self.labels = labels
        self.n = n = int(labels.max()) + 1
        lab = self.flat = labels.ravel()
        self.count = np.bincount(lab, minlength=n).astype(np.float64)
        x = np.tile(np.arange(w, dtype=np.float64), h)
        y = np.repeat(np.arange(h, dtype=np.float64), w)
        self.cx, self.cy = np.bincount(lab, x, n) / self.count, np.bincount(lab, y, n) / self.count
        self.dx, self.dy = x - self.cx[lab], y - self.cy[lab]
        self.geometry = [self.dx * self.dx, self.dx * self.dy, self.dy * self.dy, self.dx, self.dy, np.ones(lab.size)]
        self.geometry_sums = np.stack([np.bincount(lab, g, n) for g in self.geometry])
        a = np.concatenate([labels[:, 1:].ravel(), labels[1:].ravel()])  # each pixel against its left, upper one
        b = np.concatenate([labels[:, :-1].ravel(), labels[:-1].ravel()])
        xs = np.concatenate([np.tile(np.arange(1, w), h), np.tile(np.arange(w), h - 1)])
        ys = np.concatenate([np.repeat(np.arange(h), w - 1), np.repeat(np.arange(1, h), w)])
        cross = a != b
        self.border_a, self.border_b = a[cross], b[cross]
        self.border_x, self.border_y = xs[cross].astype(np.float64), ys[cross].astype(np.float64)
        low = np.minimum(self.border_a, self.border_b).astype(np.int64)  # (int32 keys wrapped past 46341 labels)
        keys, self.border_pair = np.unique(low * n + np.maximum(self.border_a, self.border_b), return_inverse=True)
        self.border_length = np.bincount(self.border_pair)
        self.pairs = np.stack([keys // n, keys % n], 1)
        small = lab.astype(np.uint16) if n <= 65536 else lab  # (a stable sort of uint16 is a radix sort)
        self.order = np.argsort(small, kind="stable")  # pixels sorted by label, each label's start in them
        self.starts = np.concatenate([[0], np.cumsum(self.count.astype(np.int64))])

    def pixels_of(self, segs: np.ndarray) -> np.ndarray:
        """The flat pixel indices of the labels ``segs`` (label by label, each in raster order)."""
        lengths = self.starts[segs + 1] - self.starts[segs]
        first = np.repeat(self.starts[segs] - np.cumsum(lengths) + lengths, lengths)
        return self.order[first + np.arange(lengths.sum())]


def segment_affines(segs: Superpixels, flow: np.ndarray, *, which: np.ndarray | None = None, rounds: int = 3,
                    least_scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Each superpixel's robust affine fit of ``flow`` (H, W, 2) px: IRLS, Tukey weights of scale
    max(``least_scale``, 2.5 x the mean residual). Returns affines (N, 2, 3) and mean residuals (N,) px, or
    with ``which`` (K,) those of these superpixels only, (K, 2, 3) and (K,)."""
    if which is None:
        lab, n, count, cx, cy = segs.flat, segs.n, segs.count, segs.cx, segs.cy
        geometry, geometry_sums = segs.geometry, segs.geometry_sums
        u, v = flow[..., 0].ravel().astype(np.float64), flow[..., 1].ravel().astype(np.float64)
    else:
        pix = segs.pixels_of(which)
        n, count, cx, cy = len(which), segs.count[which], segs.cx[which], segs.cy[which]
        lab = np.repeat(np.arange(n), count.astype(np.int64))
        geometry, geometry_sums = [g[pix] for g in segs.geometry], segs.geometry_sums[:, which]
        u, v = (flow.reshape(-1, 2)[pix].astype(np.float64)).T
    dx, dy = geometry[3], geometry[4]
    products = [dx * u, dy * u, u, dx * v, dy * v, v]
    weight = None
    for i in range(rounds):  # label sums by bincount: each label's pixels added in raster order
        if weight is None:
            sxx, sxy, syy, sx, sy, s1 = geometry_sums
            rhs = [np.bincount(lab, t, n) for t in products]
        else:
            sxx, sxy, syy, sx, sy, s1, *rhs = [np.bincount(lab, t * weight, n) for t in geometry + products]
        m = np.stack([np.stack([sxx, sxy, sx], -1), np.stack([sxy, syy, sy], -1), np.stack([sx, sy, s1], -1)], 1)
        m += np.eye(3) * 1e-3
        pu = np.linalg.solve(m, np.stack(rhs[:3], -1)[..., None])[..., 0]
        pv = np.linalg.solve(m, np.stack(rhs[3:], -1)[..., None])[..., 0]
        r = np.hypot(pu[lab, 0] * dx + pu[lab, 1] * dy + pu[lab, 2] - u, pv[lab, 0] * dx + pv[lab, 1] * dy + pv[lab, 2] - v)
        mean_r = np.bincount(lab, r, n) / count
        if i + 1 < rounds:
            scale = np.maximum(least_scale, 2.5 * mean_r)
            weight = np.clip(1 - (r / scale[lab]) ** 2, 0, None) ** 2 + 1e-6
    affines = np.zeros((n, 2, 3))
    for k, p in enumerate((pu, pv)):  # centred coordinates back to absolute ones
        affines[:, k, :2] = p[:, :2]
        affines[:, k, 2] = p[:, 2] - p[:, 0] * cx - p[:, 1] * cy
    return affines, mean_r


def motion_components(segs: Superpixels, affines: np.ndarray, residuals: np.ndarray, *, params: RingParams
                      ) -> tuple[np.ndarray, int]:
    """Clean neighbouring superpixels whose ``affines`` (N, 2, 3) differ by less than ``params.agree`` px (mean
    along their shared border) joined: component per pixel (H, W) and the number of components."""
    d = affines[segs.border_a] - affines[segs.border_b]
    xs, ys = segs.border_x, segs.border_y
    gap = np.hypot(d[:, 0, 0] * xs + d[:, 0, 1] * ys + d[:, 0, 2], d[:, 1, 0] * xs + d[:, 1, 1] * ys + d[:, 1, 2])
    mean_gap = np.bincount(segs.border_pair, gap) / segs.border_length
    pa, pb = segs.pairs.T
    clean = (residuals < params.clean) & (segs.count >= params.min_segment)
    join = (mean_gap < params.agree) & clean[pa] & clean[pb]
    graph = sparse.coo_matrix((np.ones(join.sum()), (pa[join], pb[join])), shape=(segs.n, segs.n))
    count, component = connected_components(graph, directed=False)
    return component[segs.labels], count


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` (h, w) bool eroded by a disc of ``radius`` px (the array's edge is not an outline)."""
    return cv2.erode(mask.astype(np.uint8), _disc(radius), borderType=cv2.BORDER_REPLICATE) > 0


def robust_affine(xs: np.ndarray, ys: np.ndarray, flow: np.ndarray, *, rounds: int = 6, least_scale: float = 0.5,
                  max_points: int = 4000) -> np.ndarray:
    """Robust affine fit (2, 3) of ``flow`` (M, 2) px at (``xs``, ``ys``): IRLS with Tukey weights of scale
    max(``least_scale``, 2.5 x 1.4826 x the median residual); at most ``max_points`` of them (drawn, seeded)."""
    if len(xs) > max_points:
        pick = np.random.default_rng(0).choice(len(xs), max_points, replace=False)
        xs, ys, flow = xs[pick], ys[pick], flow[pick]
    design = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
    weight = np.ones(len(xs))
    for _ in range(rounds):
        root = np.sqrt(weight)[:, None]
        affine, *_ = np.linalg.lstsq(design * root, flow * root, rcond=None)
        r = np.hypot(*(design @ affine - flow).T)
        scale = max(least_scale, 1.4826 * np.median(r) * 2.5)
        weight = np.where(r < scale, (1 - (r / scale) ** 2) ** 2, 0.0) + 1e-9
    return affine.T


def affine_field(affine: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The flow (y1 - y0, x1 - x0, 2) float32 px of ``affine`` (2, 3) over ``box`` (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return np.stack([affine[0, 0] * xx + affine[0, 1] * yy + affine[0, 2],
                     affine[1, 0] * xx + affine[1, 1] * yy + affine[1, 2]], -1).astype(np.float32)


def component_motions(segs: Superpixels, flow: np.ndarray, fits: tuple[np.ndarray, np.ndarray], *,
                      params: RingParams) -> list[Component]:
    """The motion components of ``flow`` (H, W, 2) px over superpixels ``segs`` (``fits``: their
    :func:`segment_affines`) with at least
    ``params.min_component`` px whose affine, fitted on their core, fits it to ``params.max_core_residual`` px."""
    h, w = segs.labels.shape
    comp, count = motion_components(segs, *fits, params=params)
    sizes = np.bincount(comp.ravel(), minlength=count)
    big = np.nonzero(sizes >= params.min_component)[0]
    if not len(big):
        return []
    remap = np.zeros(count, np.int32)  # find_objects over the big components only
    remap[big] = np.arange(1, len(big) + 1)
    out = []
    for c, sl in zip(big, ndimage.find_objects(remap[comp])):
        y0, y1 = max(0, sl[0].start - 1), min(h, sl[0].stop + 1)
        x0, x1 = max(0, sl[1].start - 1), min(w, sl[1].stop + 1)
        mask = comp[y0:y1, x0:x1] == c
        area = mask.sum()
        for radius in (params.core, params.core // 2, 2):  # a thin component: a thinner erosion
            core = erode(mask, radius)
            if core.sum() >= min(100, 0.25 * area):
                break
        if core.sum() < 40:
            continue
        ys, xs = np.nonzero(core)
        x, y, at = xs + float(x0), ys + float(y0), flow[y0:y1, x0:x1][ys, xs]
        affine = robust_affine(x, y, at)
        fitted = np.stack([affine[0, 0] * x + affine[0, 1] * y + affine[0, 2],  # affine_field at the core only
                           affine[1, 0] * x + affine[1, 1] * y + affine[1, 2]], -1).astype(np.float32)
        if np.median(np.hypot(*(fitted - at).T)) <= params.max_core_residual:
            out.append(Component(affine, (y0, y1, x0, x1), mask))
    return out


def colour_errors(f1: np.ndarray, f2: np.ndarray, ys: np.ndarray, xs: np.ndarray, u: np.ndarray, v: np.ndarray, *,
                  cap: float) -> np.ndarray:
    """|f1(x) - f2(x + flow)| (mean over RGB, capped at ``cap``; ``cap`` where it lands outside) at the pixels
    (``ys``, ``xs``) (M,) moved by (``u``, ``v``) (M,) px; ``f1``, ``f2`` (H, W, 3) float32 (prepare_image)."""
    h, w = f1.shape[:2]
    tx, ty = xs + u, ys + v
    size = len(xs)
    cols = 4096  # (remap's maps are at most 32767 wide)
    rows = max(1, -(-size // cols))
    pad = rows * cols - size
    mx = np.concatenate([tx, np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    my = np.concatenate([ty, np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    warped = cv2.remap(f2, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:size]
    diff = np.abs(np.take(f1.reshape(-1, 3), ys * w + xs, axis=0) - warped)
    err = (diff[:, 0] + diff[:, 1] + diff[:, 2]) / np.float32(3)  # what .mean(1) adds, in its order, faster
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return np.minimum(np.where(outside, cap, err), cap)


def footprint(flow: np.ndarray, errors: np.ndarray, *, matched: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of frame t+1 (flattened, H*W): how many frame-t pixels with colour ``errors`` (H, W) below
    ``matched`` land there (rounded), and their mean flow u, v px."""
    h, w = errors.shape
    yy, xx = np.mgrid[0:h, 0:w]
    tx = np.rint(xx + flow[..., 0]).astype(int)
    ty = np.rint(yy + flow[..., 1]).astype(int)
    keep = (errors < matched) & (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    at = ty[keep] * w + tx[keep]
    count = np.bincount(at, minlength=h * w)
    n = np.maximum(count, 1)
    return count, np.bincount(at, flow[..., 0][keep], h * w) / n, np.bincount(at, flow[..., 1][keep], h * w) / n


def vote_segments(f1: np.ndarray, f2: np.ndarray, segs: Superpixels, flow: np.ndarray, comps: list[Component], *,
                  params: RingParams) -> tuple[np.ndarray, np.ndarray]:
    """``flow`` (H, W, 2) px with each superpixel near a component given that component's affine where it
    matches frame t+1 clearly better (see :class:`RingParams`) and lands clear of other matched motions; and
    the superpixels that took one (N,) bool."""
    p = params
    labels, lab, n = segs.labels, segs.flat, segs.n
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w]
    err = colour_errors(f1, f2, yy.ravel(), xx.ravel(), flow[..., 0].ravel(), flow[..., 1].ravel(), cap=p.cap)
    count, fu, fv = footprint(flow, err.reshape(h, w), matched=p.matched)
    own = np.bincount(lab, err, n) / segs.count
    best, choice = own.copy(), np.full(n, -1)
    disc = _disc(p.reach)
    for i, comp in enumerate(comps):
        y0, y1, x0, x1 = comp.box
        top, left = max(0, y0 - p.reach), max(0, x0 - p.reach)
        bottom, right = min(h, y1 + p.reach), min(w, x1 + p.reach)
        near = np.zeros((bottom - top, right - left), np.uint8)
        near[y0 - top:y1 - top, x0 - left:x1 - left] = comp.mask
        near = cv2.dilate(near, disc) > 0
        pix = segs.pixels_of(np.flatnonzero(np.bincount(labels[top:bottom, left:right][near], minlength=n)))
        ys, xs = np.divmod(pix, w)
        a = comp.affine
        u = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
        v = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
        e = colour_errors(f1, f2, ys, xs, u, v, cap=p.cap)
        at = np.clip(np.rint(ys + v).astype(int), 0, h - 1) * w + np.clip(np.rint(xs + u).astype(int), 0, w - 1)
        clash = (count[at] > 0) & (np.hypot(fu[at] - u, fv[at] - v) > p.apart)
        ls = lab[pix]
        m = np.bincount(ls, minlength=n)
        m1 = np.maximum(m, 1)
        e_seg = np.bincount(ls, e, n) / m1
        better = (m > 0) & (np.bincount(ls, clash, n) / m1 <= p.conflict) & (e_seg < best)
        best[better], choice[better] = e_seg[better], i
    take = (choice >= 0) & (best < own * (1 - p.rel) - p.absolute) & (best < p.matched)
    out = flow.copy()
    if take.any():
        chosen = np.where(take, choice, -1)[labels]
        ys, xs = np.nonzero(chosen >= 0)
        a = np.stack([c.affine for c in comps])[chosen[ys, xs]]
        out[ys, xs, 0] = a[:, 0, 0] * xs + a[:, 0, 1] * ys + a[:, 0, 2]
        out[ys, xs, 1] = a[:, 1, 0] * xs + a[:, 1, 1] * ys + a[:, 1, 2]
    return out, take


def fix_rings(flow: np.ndarray, comps: list[Component], *, width: int, max_change: float) -> np.ndarray:
    """``flow`` (H, W, 2) px with each component's outer ``width`` px set to its affine where that moves a pixel's
    flow by at most ``max_change`` px."""
    out = flow.copy()
    for comp in comps:
        y0, y1, x0, x1 = comp.box
        fitted = affine_field(comp.affine, comp.box)
        crop = flow[y0:y1, x0:x1]
        ring = comp.mask & ~erode(comp.mask, width)
        near = ring & (np.hypot(*(fitted - crop).transpose(2, 0, 1)) <= max_change)
        out[y0:y1, x0:x1][near] = fitted[near]
    return out


def refit_rings(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, *, width: int,
                params: RingParams = RingParams(), labels: np.ndarray | None = None) -> np.ndarray:
    """The step: ``flow`` (H, W, 2) px from ``img1`` to ``img2`` (H, W, 3) uint8 RGB, voted then with each motion
    component's ring of ``width`` px refitted (module docstring). ``width`` 0 returns ``flow`` itself.
    ``labels``: :func:`superpixels` of ``img1`` computed already (:class:`PendingSuperpixels`)."""
    if width <= 0:
        return flow
    segs = Superpixels(superpixels(img1, params=params) if labels is None else labels)
    f1, f2 = prepare_image(img1), prepare_image(img2)
    affines, residuals = segment_affines(segs, flow)
    comps = component_motions(segs, flow, (affines, residuals), params=params)
    flow, voted = vote_segments(f1, f2, segs, flow, comps, params=params)
    if voted.any():  # only the voted superpixels' flow changed: only theirs are fitted again
        affines[voted], residuals[voted] = segment_affines(segs, flow, which=np.nonzero(voted)[0])
    comps = component_motions(segs, flow, (affines, residuals), params=params)
    return fix_rings(flow, comps, width=width, max_change=params.max_change)
