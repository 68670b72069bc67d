"""CosPlace's training augmentation, batched on the training device (REFERENCE.md d).

CosPlace applies, per image of the batch, ColorJitter(0.7, 0.7, 0.7, 0.5) then
RandomResizedCrop(image_size, scale=(0.5, 1)) then ImageNet normalisation, calling torchvision
once per image. :class:`BatchAugment` draws the same per-image parameters and applies them
with tensor ops over the whole batch (no Python loop over images, no host-device sync), from
one ``torch.Generator`` so the trainer can seed it per epoch. torchvision is not imported.

Differences from torchvision, all small:

* the crop is resampled with one ``grid_sample`` (bilinear, ``align_corners=False``, border
  padding) straight from the full image, without antialiasing; CosPlace's crops are never
  larger than the output (they upsample), where antialiasing does nothing. A half-pixel at the
  crop's edge reads the neighbouring pixels outside the crop instead of repeating the edge;
* the float image is not rounded to uint8 between jitter steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
"""RGB -> luma weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601-2)."""
CROP_ATTEMPTS = 10
"""Tries at a crop inside the image before the centre-crop fallback, as in torchvision."""


def normalize(x: Tensor) -> Tensor:
    """ImageNet normalisation of images (..., 3, H, W) as float32 on x's device.

    uint8 input is scaled to [0, 1] first; floating input is taken to be in [0, 1] already.
    """
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def grayscale(x: Tensor) -> Tensor:
    """Luma (B, 1, H, W) of float RGB images (B, 3, H, W)."""
    r, g, b = x.unbind(dim=-3)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """Float RGB in [0, 1] (B, 3, H, W) -> HSV with hue in turns [0, 1); gray pixels get hue 0."""
    r, g, b = x.unbind(dim=-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    delta = maxc - minc
    gray = delta == 0
    safe = torch.where(gray, torch.ones_like(delta), delta)
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    # Hue in sixths of a turn from the channel that is the maximum (red wins ties, then green).
    h = torch.where(
        maxc == r, ((g - b) / safe) % 6.0, torch.where(maxc == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    h = torch.where(gray, torch.zeros_like(h), h / 6.0) % 1.0
    return torch.stack([h, s, maxc], dim=-3)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV (hue in turns) -> RGB, with channel n = v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6."""
    h, s, v = x.unbind(dim=-3)
    out = []
    for n in (5.0, 3.0, 1.0):  # red, green, blue
        k = (n + 6.0 * h) % 6.0
        out.append(v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(out, dim=-3)


def adjust_hue(x: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate the hue of float RGB images (B, 3, H, W) by ``shift`` turns (a float or one per image).

    Same result as ``hsv_to_rgb`` of ``rgb_to_hsv`` with the hue shifted, fused: v = max and
    v*s = max - min, so channel n = max - (max - min) * clamp(min(k, 4 - k), 0, 1).
    """
    if not torch.is_tensor(shift):
        shift = torch.full((x.shape[0],), float(shift), device=x.device, dtype=x.dtype)
    r, g, b = x.unbind(dim=-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    delta = maxc - minc
    inv = 1.0 / delta.clamp_min(1e-12)  # gray pixels: delta 0, so their hue does not matter
    sixths = torch.where(maxc == r, (g - b) * inv, torch.where(maxc == g, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    sixths = sixths + 6.0 * shift.view(-1, 1, 1)
    out = []
    for n in (5.0, 3.0, 1.0):  # red, green, blue
        k = (sixths + n) % 6.0
        out.append(maxc - delta * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(out, dim=-3)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1.0 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """``factor * x`` clamped to [0, 1], one factor per image."""
    return (factor.view(-1, 1, 1, 1) * x).clamp(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with the mean of its luma, one factor per image."""
    return _blend(x, grayscale(x).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its luma image, one factor per image."""
    return _blend(x, grayscale(x), factor)


def crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """RandomResizedCrop boxes (n, 4) as float (top, left, height, width) in pixels, drawn like torchvision.

    Each of :data:`CROP_ATTEMPTS` attempts draws an area fraction uniform in ``scale`` and an aspect
    ratio log-uniform in ``ratio``; the first attempt whose rounded box fits is kept, its corner
    uniform over the integer positions; if none fits, a centre crop with the ratio clamped to
    ``ratio``. All attempts are drawn at once, so no value returns to the host.
    """
    kw = {"generator": generator, "device": device, "dtype": torch.float64}
    area = float(height * width)
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand((n, CROP_ATTEMPTS), **kw))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand((n, CROP_ATTEMPTS), **kw))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # index of the first fitting attempt
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    found = fits.any(dim=1)
    # Fallback (torchvision): whole image, narrowed to the nearest allowed aspect ratio.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    u = torch.rand((n, 2), **kw)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)), torch.full_like(h, (height - fh) // 2))
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)), torch.full_like(w, (width - fw) // 2))
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop each image to its box (top, left, height, width) and resample it to size x size, in one grid_sample."""
    n, _, height, width = x.shape
    top, left, h, w = boxes.unbind(dim=1)
    theta = torch.zeros((n, 2, 3), device=x.device, dtype=torch.float64)
    # align_corners=False: -1 and +1 are the outer edges of the first and last pixel.
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2.0 * left + w) / width - 1.0
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2.0 * top + h) / height - 1.0
    grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchAugment(nn.Module):
    """ColorJitter -> RandomResizedCrop -> ImageNet normalisation, per image, over a uint8 batch.

    Jitter factors are drawn per image like torchvision's ColorJitter: brightness, contrast and
    saturation uniform in [max(0, 1 - v), 1 + v], hue shift uniform in [-hue, hue] turns; a
    jitter whose value is 0 is skipped. With ``random_order`` (the default, torchvision's and so
    CosPlace's behaviour) each image applies the four in its own random order; this costs
    computing each jitter at each of the four steps and keeping, per image, the one its order
    asks for (``torch.where``: no host sync). ``random_order=False`` applies them in the fixed
    order brightness, contrast, saturation, hue, about four times cheaper.
    """

    def __init__(
        self,
        image_size: int,
        brightness: float = 0.7,
        contrast: float = 0.7,
        saturation: float = 0.7,
        hue: float = 0.5,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        random_order: bool = True,
    ) -> None:
        super().__init__()
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if min(brightness, contrast, saturation) < 0 or not 0 <= hue <= 0.5:
            raise ValueError("brightness, contrast and saturation must be >= 0 and hue in [0, 0.5]")
        if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
        self.image_size = int(image_size)
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.random_order = random_order

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}, scale={self.scale}, ratio={self.ratio}, "
            f"random_order={self.random_order}"
        )

    def _jitters(self, n: int, generator: torch.Generator | None, device: torch.device) -> list:
        """Brightness, contrast, saturation, hue as (function, per-image factor), or None when disabled."""

        def uniform(lo: float, hi: float) -> Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)

        out: list = []
        for fn, v in (
            (adjust_brightness, self.brightness),
            (adjust_contrast, self.contrast),
            (adjust_saturation, self.saturation),
        ):
            out.append((fn, uniform(max(0.0, 1.0 - v), 1.0 + v)) if v else None)
        out.append((adjust_hue, uniform(-self.hue, self.hue)) if self.hue else None)
        return out

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment uint8 images (B, 3, H, W) into normalised float32 (B, 3, S, S).

        Every random number comes from ``generator``, which must live on x's device (``None``: that
        device's default generator). Draw order: jitter factors, per-image order (if random),
        crop attempts, crop corners.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
        n, _, height, width = x.shape
        device = x.device
        y = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        jitters = self._jitters(n, generator, device)
        if self.random_order:
            order = torch.rand((n, 4), generator=generator, device=device).argsort(dim=1)
            for step in range(4):
                current = y
                for op, jitter in enumerate(jitters):
                    if jitter is not None:
                        fn, factor = jitter
                        y = torch.where((order[:, step] == op).view(-1, 1, 1, 1), fn(current, factor), y)
        else:
            for jitter in jitters:
                if jitter is not None:
                    y = jitter[0](y, jitter[1])
        boxes = crop_boxes(n, height, width, self.scale, self.ratio, generator, device)
        y = resized_crop(y, boxes, self.image_size)
        return normalize(y)
