"""Manifests in, uint8 image batches out: what the trainer and the evaluator read.

The manifests themselves (groups and eval, format version, image roots) are read by
:mod:`vgtrain.manifest` (pyarrow only); their classes are re-exported here for existing callers.
This module turns their absolute paths into batches.

Training sampling follows CosPlace (REFERENCE.md b.4): each item draws a class with equal
probability and then one of its images uniformly. Here the randomness lives in the sampled
items, ``(class_idx, image_seed)``, drawn by :class:`EpochSampler` from a generator seeded
by ``(seed, epoch)``; so batches depend neither on the number of loader workers nor on
whether the run was interrupted. Images travel as uint8; :mod:`vgtrain.augment` turns them
into normalised floats on the training device.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from vgtrain.manifest import (  # noqa: F401 - re-exported: vgtrain.data was their home
    EVAL_COLUMNS,
    GROUPS_COLUMNS,
    META_KEYS,
    EvalManifest,
    GroupsManifest,
    ManifestError,
)

log = logging.getLogger(__name__)

DECODE_RETRIES = 3
"""Other images of the class tried when one fails to decode."""
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What Pillow raises for missing, truncated or corrupt files."""


# ---------------------------------------------------------------- training


def epoch_generator_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for ``(seed, epoch)``; distinct pairs give unrelated streams."""
    digest = hashlib.sha256(f"vgtrain.epoch:{int(seed)}:{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class EpochSampler(Sampler):
    """CosPlace's sampling, made deterministic: classes drawn with equal probability, one image each.

    For epoch ``e`` a generator seeded from ``(seed, e)`` draws random permutations of the class
    indices, concatenated and cut to ``num_samples * world_size`` items, and one 63-bit image seed
    per item. Rank ``r`` takes items ``r::world_size``: the ranks see disjoint, interleaved slices
    of one stream, and rank ``r`` of world ``w`` with ``num_samples`` gets exactly the items at
    positions ``r, r + w, ...`` of the world-1 stream with ``num_samples * w``. Each permutation
    holds every class once, so over the whole stream class counts differ by at most 1.

    Yields ``(class_idx, image_seed)`` tuples; :class:`GroupDataset` turns each into an image.
    The stream depends only on (n_classes, seed, epoch, rank, world_size, num_samples), so a
    resumed run draws what an uninterrupted one would; ``start`` skips the first ``start``
    items of this rank (a run resumed mid-epoch).
    """

    def __init__(
        self,
        n_classes: int,
        num_samples: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if num_samples < 0 or not 0 <= start <= num_samples:
            raise ValueError(f"need 0 <= start <= num_samples, got start={start}, num_samples={num_samples}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.n_classes, self.num_samples, self.start = int(n_classes), int(num_samples), int(start)
        self.seed, self.epoch, self.rank, self.world_size = int(seed), int(epoch), int(rank), int(world_size)

    def items(self) -> torch.Tensor:
        """This rank's items as an int64 tensor (num_samples - start, 2): class index, image seed."""
        total = self.num_samples * self.world_size
        g = torch.Generator().manual_seed(epoch_generator_seed(self.seed, self.epoch))
        n_perms = -(-total // self.n_classes)
        # One random key per (permutation, class), argsorted per row: n_perms independent
        # uniform permutations in one call. float64 keys make ties (a fixed order) negligible.
        keys = torch.rand((n_perms, self.n_classes), generator=g, dtype=torch.float64)
        classes = keys.argsort(dim=1, stable=True).reshape(-1)[:total]
        image_seeds = torch.randint(0, 2**63 - 1, (total,), generator=g, dtype=torch.int64)
        mine = slice(self.rank + self.start * self.world_size, total, self.world_size)
        return torch.stack([classes[mine], image_seeds[mine]], dim=1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(c, s) for c, s in self.items().tolist()])

    def __len__(self) -> int:
        return self.num_samples - self.start


def _to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def load_image(path: str, size: int | None) -> torch.Tensor:
    """uint8 3xHxW from Pillow ``convert("RGB")``; resized to size x size (BILINEAR) when given and different."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return _to_tensor(im)


class GroupDataset(Dataset):
    """The classes of one group; an item ``(class_idx, image_seed)`` gives one image of that class.

    ``__getitem__`` returns ``(uint8 3xSxS, class_idx, failures)``: the image is
    ``random.Random(image_seed).choice(classes[class_idx])``, decoded with Pillow as RGB and
    resized to ``image_size`` square (BILINEAR) only if it is not that size already. When it
    fails to decode, up to :data:`DECODE_RETRIES` other images of the class are tried, drawn
    by the same seeded RNG; ``failures`` counts the files that failed. If every try fails, the
    image is zeros and the label -1 (the trainer drops such rows and counts them).
    """

    def __init__(self, classes: list[list[str]], image_size: int) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        empty = [i for i, paths in enumerate(classes) if not paths]
        if not classes or empty:
            raise ValueError(f"every class needs at least one image (empty: {empty[:5]} of {len(classes)} classes)")
        self.classes = classes
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        class_idx, image_seed = int(item[0]), int(item[1])
        rng = random.Random(image_seed)
        paths = self.classes[class_idx]
        candidates = list(paths)
        failures = 0
        path = rng.choice(candidates)
        for attempt in range(DECODE_RETRIES + 1):
            try:
                return load_image(path, self.image_size), class_idx, failures
            except DECODE_ERRORS as e:
                failures += 1
                log.warning(
                    "cannot decode %s (%s: %s); trying another image of class %d", path, type(e).__name__, e, class_idx
                )
            candidates.remove(path)
            if not candidates or attempt == DECODE_RETRIES:
                break
            path = rng.choice(candidates)
        return torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8), -1, failures


def train_loader(
    dataset: GroupDataset,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    iterations: int,
    rank: int = 0,
    world_size: int = 1,
    start_iteration: int = 0,
) -> DataLoader:
    """``iterations`` batches of ``(uint8 B x 3 x S x S, labels int64, failures int64)`` for one epoch.

    Items come from :class:`EpochSampler` with ``num_samples = iterations * batch_size``; the
    batches are identical for any ``num_workers``. ``start_iteration`` skips the batches an
    interrupted run already trained on. Labels of -1 mark images that could not be decoded.
    """
    if batch_size < 1 or iterations < 0 or not 0 <= start_iteration <= iterations:
        raise ValueError(f"need batch_size >= 1 and 0 <= start_iteration <= iterations, got {batch_size}, {iterations}")
    sampler = EpochSampler(
        len(dataset),
        iterations * batch_size,
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        start=start_iteration * batch_size,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


# ---------------------------------------------------------------- evaluation


class ImageListDataset(Dataset):
    """Images for descriptor extraction: item ``i`` is ``(uint8 3xHxW, i)``.

    ``image_size=None`` keeps each image's native size (CosPlace evaluates at native size,
    REFERENCE.md c); an int resizes to exactly ``image_size x image_size`` (BILINEAR), not
    the shorter side. A file that cannot be decoded raises :class:`ManifestError` naming it.
    """

    def __init__(self, paths: Sequence[str], image_size: int | None = None) -> None:
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be >= 1 or None, got {image_size}")
        self.paths = paths
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.paths[i]
        try:
            return load_image(path, self.image_size), i
        except DECODE_ERRORS as e:
            raise ManifestError(
                f"cannot decode evaluation image {path} ({type(e).__name__}: {e}); replace the file "
                "or rebuild the eval manifest without it"
            ) from None


def image_sizes(paths: Sequence[str]) -> list[tuple[int, int]]:
    """(width, height) of each file from its header (no decoding); ManifestError naming a bad file."""
    out = []
    for path in paths:
        try:
            with Image.open(path) as im:
                out.append(im.size)
        except DECODE_ERRORS as e:
            raise ManifestError(f"cannot read evaluation image {path} ({type(e).__name__}: {e})") from None
    return out


def equal_size_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Consecutive indices cut into batches of at most ``batch_size`` images of one size, in order."""
    batches: list[list[int]] = []
    for i, size in enumerate(sizes):
        if batches and len(batches[-1]) < batch_size and sizes[batches[-1][0]] == size:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def eval_loader(
    paths: Sequence[str],
    *,
    image_size: int | None,
    batch_size: int,
    num_workers: int,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> DataLoader:
    """Batches ``(uint8 B x 3 x H x W, idx int64)`` of ``paths`` in order, every batch of one image size.

    With ``image_size`` every image is resized to that square and batches have ``batch_size``
    images. With ``image_size=None`` (native sizes) a batch holds consecutive images of equal
    size, so a set whose sizes all differ is read one image at a time, as CosPlace reads its
    queries; ``sizes`` ((width, height) per path, e.g. :attr:`EvalManifest.query_sizes`) saves
    reading every file's header to learn them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if image_size is not None:
        batches = [list(range(i, min(i + batch_size, len(paths)))) for i in range(0, len(paths), batch_size)]
    else:
        if sizes is None:
            sizes = image_sizes(paths)
        elif len(sizes) != len(paths):
            raise ValueError(f"sizes has {len(sizes)} entries for {len(paths)} paths")
        batches = equal_size_batches(sizes, batch_size)
    return DataLoader(
        ImageListDataset(paths, image_size),
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        collate_fn=_EvalCollate(paths),
    )


class _EvalCollate:
    """Stacks a batch; names a file whose size disagrees with the manifest instead of a bare stack error."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = paths

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        shape = batch[0][0].shape
        for image, i in batch:
            if image.shape != shape:
                raise ManifestError(
                    f"evaluation image {self.paths[i]} is {tuple(image.shape[1:])} (HxW) but the batch is "
                    f"{tuple(shape[1:])}; the manifest's width/height_px disagree with the files, so pass sizes=None"
                )
        return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch], dtype=torch.int64)
