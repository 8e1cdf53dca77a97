"""Image data for AlexNet (Krizhevsky, Sutskever, Hinton, NeurIPS 2012): loaders and the
paper's augmentation (section 4.1) and test-time 10-patch averaging (section 4.1, 6).

Loaders, each tested on tiny files of its format:
- ImageNet (ILSVRC) folder layout: `train/<wnid>/*.JPEG`; `val/<wnid>/*.JPEG` or a flat `val/`
  with a label file (`<image> <wnid>` per line, or Kaggle's `LOC_val_solution.csv`). Images are
  decoded on demand (a thread pool; the next batch is decoded ahead), rescaled so the shorter
  side is `resize` and cut to the central `resize` x `resize` square, as the paper does.
- CIFAR-10 python-pickle batches (`data_batch_1..5`, `test_batch`), read with an unpickler that
  admits only the numpy types the format holds.
- MNIST and Fashion-MNIST IDX files (`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`).
  Fashion-MNIST ships in Debian's `dataset-fashion-mnist` (MIT); `make` unpacks it into the venv.
- `synthetic`: seeded coloured gratings, one orientation per class (seconds-long tests only).

Where a data set is looked for, in order: `data.path`, `$SUTSKEVER_DATA/<name>/`, the project
cache `$SUTSKEVER_CACHE/<name>/`, `<venv>/share/datasets/<name>/` (where `make` puts
Fashion-MNIST), `/usr/share/datasets/<name>/` (the Debian package).

Augmentation, batched on (B, C, H, W) tensors (no per-image Python loop):
- random `crop` x `crop` patches and horizontal flips (section 4.1, first form);
- PCA lighting (section 4.1, second form): to every pixel of an image add
  [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T, a_i ~ N(0, 0.1) drawn once per image per use, with p_i, l_i
  the eigenvectors and eigenvalues of the covariance of the training set's RGB values. Values are
  scaled to [0, 1] for the covariance, so l_i are dimensionless as in the common reading of the
  paper; on the raw 0-255 scale the eigenvalues are 255^2 larger and the shift would be absurd.
- 10 patches at test time: the four corner and the centre `crop` patches and their mirror images;
  the softmax outputs are averaged (section 4.1).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sutskever.data.point_tasks import cache_dir
from sutskever.errors import UserError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
FASHION_MNIST_HOW = ("install Debian's dataset-fashion-mnist (`apt-get install "
                     "dataset-fashion-mnist`, or `make` unpacks it into .venv/share/datasets/), "
                     "or put {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from "
                     "github.com/zalandoresearch/fashion-mnist in $SUTSKEVER_DATA/fashion-mnist/")
MNIST_HOW = ("put {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (yann.lecun.com/exdb/mnist) "
             "in $SUTSKEVER_DATA/mnist/ or pass data.path")
CIFAR_HOW = ("unpack cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) and put its "
             "cifar-10-batches-py/ files in $SUTSKEVER_DATA/cifar10/ or pass data.path")
IMAGENET_HOW = ("pass data.path=DIR (or $SUTSKEVER_DATA/imagenet/) holding train/<wnid>/*.JPEG "
                "and val/ (val/<wnid>/*.JPEG, or flat with a label file)")


# ---- where data sets are -------------------------------------------------------------------------
def candidates(name: str, path: str | None) -> list[Path]:
    """Directories to look in for data set `name`, in order."""
    if path is not None:
        given = Path(path).expanduser()
        return [given, given / name]
    found = []
    if os.environ.get("SUTSKEVER_DATA"):
        found.append(Path(os.environ["SUTSKEVER_DATA"]).expanduser() / name)
    found += [cache_dir() / name, Path(sys.prefix) / "share" / "datasets" / name,
              Path("/usr/share/datasets") / name]
    return found


def _locate(name: str, path: str | None, present: Callable[[Path], bool], how: str) -> Path:
    dirs = candidates(name, path)
    for d in dirs:
        if present(d):
            return d
    if path is not None:
        if not dirs[0].is_dir():
            raise UserError(f"{dirs[0]} is not a directory; pass the {name} data directory")
        raise UserError(f"{dirs[0]} does not hold the {name} files; {how}")
    raise UserError(f"{name} data not found (looked in {', '.join(map(str, dirs))}); {how}")


# ---- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------------
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or .gz) of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {path} ({e}); replace it with the original file") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] < 1:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number); "
                        f"pass the original file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path} is truncated (incomplete IDX header); pass the original file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise UserError(f"{path} holds {len(body)} bytes of data but its header says "
                        f"{'x'.join(map(str, dims))}; the file is truncated or corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _idx_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_idx(directory: Path) -> bool:
    return all(_idx_file(directory, s) for pair in IDX_FILES.values() for s in pair)


def load_idx_dataset(name: str, path: str | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """MNIST or Fashion-MNIST: {split: (images (N, 1, 28, 28) uint8, labels (N,) int64)}."""
    how = FASHION_MNIST_HOW if name == "fashion-mnist" else MNIST_HOW
    directory = _locate(name, path, _has_idx, how)
    out = {}
    for split, (img_stem, lab_stem) in IDX_FILES.items():
        img_file, lab_file = _idx_file(directory, img_stem), _idx_file(directory, lab_stem)
        assert img_file is not None and lab_file is not None
        images, labels = read_idx(img_file), read_idx(lab_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{img_file} ({images.shape}) and {lab_file} ({labels.shape}) are not "
                            f"N images and N labels; pass the original files")
        out[split] = (torch.from_numpy(images.copy())[:, None], torch.from_numpy(
            labels.astype(np.int64)))
    return out


# ---- CIFAR-10 python batches ---------------------------------------------------------------------
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The CIFAR batches hold dicts, lists, bytes and numpy arrays; refuse anything else."""

    ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"),
                                                           ("numpy", "dtype"),
                                                           ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            AttributeError, IndexError) as e:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: {e}); "
                        f"pass the files of cifar-10-batches-py/") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise UserError(f"{path} holds data of shape {data.shape} and {len(labels)} labels, not "
                        f"N x 3072 and N; pass the files of cifar-10-batches-py/")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """CIFAR-10: {split: (images (N, 3, 32, 32) uint8, labels (N,) int64)}."""
    def present(d: Path) -> bool:
        return all((d / f).is_file() for files in CIFAR_FILES.values() for f in files)

    directory = _locate("cifar10", path, present, CIFAR_HOW)
    out = {}
    for split, files in CIFAR_FILES.items():
        parts = [read_cifar_batch(directory / f) for f in files]
        out[split] = (torch.from_numpy(np.concatenate([p[0] for p in parts])),
                      torch.from_numpy(np.concatenate([p[1] for p in parts])))
    return out


# ---- synthetic gratings (tests) -----------------------------------------------------------------
def synthetic_images(count: int, side: int, classes: int, seed: int
                     ) -> tuple[Tensor, Tensor]:
    """Coloured sinusoidal gratings: class k has orientation k*pi/classes and its own tint;
    random phase, frequency jitter and pixel noise. (N, 3, side, side) uint8, (N,) int64."""
    rng = np.random.default_rng([7_001, seed])
    labels = rng.integers(0, classes, count)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    angle = labels * np.pi / classes
    freq = 3.0 + rng.random(count) * 1.5
    phase = rng.random(count) * 2 * np.pi
    wave = np.sin(2 * np.pi * freq[:, None, None] * (np.cos(angle)[:, None, None] * xx
                  + np.sin(angle)[:, None, None] * yy) + phase[:, None, None])  # (N, S, S)
    tint = np.random.default_rng(7_002).random((classes, 3)) * 0.5 + 0.5
    img = 0.5 + 0.35 * wave[:, None] * tint[labels][:, :, None, None]
    img += rng.normal(0, 0.08, img.shape)
    images = np.clip(img * 255, 0, 255).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


# ---- ImageNet folder layout ----------------------------------------------------------------------
def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(d for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def read_val_labels(path: Path) -> dict[str, str]:
    """A validation label file: image name (without extension) -> wnid. Lines are
    `<image> <wnid>` (whitespace or comma separated); Kaggle's LOC_val_solution.csv
    (`ImageId,PredictionString` with the wnid first) reads the same way."""
    labels = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the label file {path} ({e})") from None
    for number, line in enumerate(lines, 1):
        fields = line.replace(",", " ").split()
        if not fields or (number == 1 and fields[0].lower() == "imageid"):
            continue
        if len(fields) < 2:
            raise UserError(f"{path}:{number}: expected '<image> <wnid>', got {line!r}")
        labels[Path(fields[0]).stem] = fields[1]
    return labels


@dataclass
class FileList:
    files: list[Path]
    labels: Tensor  # (N,) int64
    classes: list[str]


def index_imagenet(root: Path, val_labels: str | None = None) -> dict[str, FileList]:
    """{'train', 'val'} file lists of an ILSVRC-layout folder; class ids are the sorted wnids of
    train/."""
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise UserError(f"{root} lacks train/ or val/; {IMAGENET_HOW}")
    classes = [d.name for d in _class_dirs(train_dir)]
    if not classes:
        raise UserError(f"{train_dir} has no class folders (train/<wnid>/*.JPEG)")
    ids = {c: i for i, c in enumerate(classes)}
    files, labels = [], []
    for c in classes:
        found = sorted(p for p in (train_dir / c).iterdir() if _is_image(p))
        files += found
        labels += [ids[c]] * len(found)
    if not files:
        raise UserError(f"{train_dir} holds no images (.JPEG, .jpg, .png)")
    out = {"train": FileList(files, torch.tensor(labels), classes)}
    vfiles, vlabels = [], []
    sub = _class_dirs(val_dir)
    if sub:  # val/<wnid>/*.JPEG
        for d in sub:
            if d.name not in ids:
                raise UserError(f"{d} is a class that train/ lacks; val/ and train/ need the "
                                f"same wnids")
            found = sorted(p for p in d.iterdir() if _is_image(p))
            vfiles += found
            vlabels += [ids[d.name]] * len(found)
    else:  # flat val/ with a label file
        label_file = _find_val_labels(root, val_labels)
        names = read_val_labels(label_file)
        for p in sorted(p for p in val_dir.iterdir() if _is_image(p)):
            if p.stem not in names:
                raise UserError(f"{label_file} has no label for {p.name}")
            if names[p.stem] not in ids:
                raise UserError(f"{label_file} labels {p.name} {names[p.stem]!r}, a class that "
                                f"train/ lacks")
            vfiles.append(p)
            vlabels.append(ids[names[p.stem]])
    if not vfiles:
        raise UserError(f"{val_dir} holds no images")
    out["val"] = FileList(vfiles, torch.tensor(vlabels), classes)
    return out


def _find_val_labels(root: Path, given: str | None) -> Path:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(f"data.val_labels={given!r} is not a file")
        return path
    for name in ("val_labels.txt", "LOC_val_solution.csv", "val/val_labels.txt"):
        if (root / name).is_file():
            return root / name
    raise UserError(f"{root}/val/ is flat but no label file was found; put val_labels.txt "
                    f"('<image> <wnid>' lines) or LOC_val_solution.csv in {root}, pass "
                    f"data.val_labels=FILE, or sort val/ into val/<wnid>/ folders")


def decode_image(path: Path, side: int) -> np.ndarray:
    """(3, side, side) uint8: shorter side rescaled to `side`, then the central square."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))  # JPEG: decode at a reduced scale when it can
            im = im.convert("RGB")
            w, h = im.size
            scale = side / min(w, h)
            nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - side) // 2, (nh - side) // 2
            im = im.crop((left, top, left + side, top + side))
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"cannot decode image {path} ({e}); remove or replace it") from None


class DecodedFiles:
    """Images of a FileList decoded on demand by a thread pool (PIL releases the GIL)."""

    def __init__(self, files: FileList, side: int, workers: int):
        self.files, self.side, self.workers = files, side, max(1, workers)
        self.labels = files.labels
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.files.files)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers)
            return self._pool

    def submit(self, index: Tensor) -> Future:
        return self._executor().submit(self.images, index)

    def images(self, index: Tensor) -> Tensor:
        paths = [self.files.files[i] for i in index.tolist()]
        arrays = list(self._executor().map(lambda p: decode_image(p, self.side), paths)) \
            if len(paths) > 1 else [decode_image(p, self.side) for p in paths]
        return torch.from_numpy(np.stack(arrays))


class InMemory:
    """Images held as one uint8 tensor (N, C, H, W)."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.data, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, index: Tensor) -> Tensor:
        return self.data[index]


# ---- augmentation (batched) ----------------------------------------------------------------------
def crop_at(x: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """x (B, C, H, W); the size x size patch of image b at (top[b], left[b]) -> (B, C, s, s)."""
    b = x.shape[0]
    ar = torch.arange(size, device=x.device)
    rows = (top[:, None] + ar)[:, :, None]  # (B, s, 1)
    cols = (left[:, None] + ar)[:, None, :]  # (B, 1, s)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, s, s)


def random_crop_flip(x: Tensor, size: int, generator: torch.Generator, flip: bool = True
                     ) -> Tensor:
    """Random size x size patches of x (B, C, H, W), each mirrored with probability 1/2."""
    b, _, h, w = x.shape
    top = torch.randint(0, h - size + 1, (b,), generator=generator)
    left = torch.randint(0, w - size + 1, (b,), generator=generator)
    out = crop_at(x, top, left, size)
    if flip:
        mirror = torch.rand(b, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out


def center_crop(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def ten_patches(x: Tensor, size: int) -> Tensor:
    """The paper's test patches of x (B, C, H, W): four corners and centre, then their mirror
    images -> (10, B, C, size, size); patch 0 is the centre."""
    h, w = x.shape[-2:]
    spots = [((h - size) // 2, (w - size) // 2), (0, 0), (0, w - size), (h - size, 0),
             (h - size, w - size)]
    crops = [x[..., t:t + size, l:l + size] for t, l in spots]
    return torch.stack(crops + [c.flip(-1) for c in crops])


@dataclass(frozen=True)
class PixelStats:
    """Training-set pixel statistics on the [0, 1] scale: per-channel mean and the eigen-
    decomposition of the C x C covariance (eigenvalues descending, eigenvectors as columns)."""

    mean: Tensor      # (C,)
    eigval: Tensor    # (C,)
    eigvec: Tensor    # (C, C), column i = p_i


def pixel_stats(images: Tensor) -> PixelStats:
    """From uint8 images (N, C, H, W)."""
    c = images.shape[1]
    pixels = images.permute(1, 0, 2, 3).reshape(c, -1).double() / 255.0  # (C, N*H*W)
    mean = pixels.mean(1)
    centred = pixels - mean[:, None]
    cov = centred @ centred.T / max(centred.shape[1] - 1, 1)  # (C, C)
    eigval, eigvec = torch.linalg.eigh(cov)
    order = eigval.argsort(descending=True)
    return PixelStats(mean.float(), eigval[order].clamp_min(0).float(),
                      eigvec[:, order].float())


def pca_lighting(x: Tensor, stats: PixelStats, std: float, generator: torch.Generator
                 ) -> Tensor:
    """x (B, C, H, W) float on the 0-255 scale, plus, per image, 255 * P (alpha * lambda) with
    alpha ~ N(0, std) (C,), the same shift at every pixel."""
    b, c = x.shape[:2]
    alpha = torch.randn(b, c, generator=generator) * std  # (B, C)
    shift = 255.0 * (alpha * stats.eigval) @ stats.eigvec.T  # (B, C) = sum_i a_i l_i p_i
    return x + shift.to(x.device, x.dtype)[:, :, None, None]


# ---- data sets as the recipe sees them -------------------------------------------------------
@dataclass
class Split:
    """One split: its images (`InMemory` or `DecodedFiles`) and the number of classes."""

    source: InMemory | DecodedFiles
    num_classes: int

    @property
    def labels(self) -> Tensor:
        return self.source.labels

    def __len__(self) -> int:
        return len(self.source)


def subset(split: Split, index: Sequence[int] | Tensor) -> Split:
    index = torch.as_tensor(index, dtype=torch.long)
    src = split.source
    if isinstance(src, InMemory):
        return Split(InMemory(src.data[index], src.labels[index]), split.num_classes)
    files = FileList([src.files.files[i] for i in index.tolist()], src.labels[index],
                     src.files.classes)
    return Split(DecodedFiles(files, src.side, src.workers), split.num_classes)


def load_image_splits(dataset: str, path: str | None, *, resize: int = 256,
                      val_labels: str | None = None, workers: int = 8,
                      synthetic: tuple[int, int, int] = (512, 128, 16)
                      ) -> dict[str, Split]:
    """{'train', 'test'} of a data set (`imagenet`: test = the validation set)."""
    if dataset == "imagenet":
        root = _locate("imagenet", path, lambda d: (d / "train").is_dir(), IMAGENET_HOW)
        lists = index_imagenet(root, val_labels)
        k = len(lists["train"].classes)
        return {"train": Split(DecodedFiles(lists["train"], resize, workers), k),
                "test": Split(DecodedFiles(lists["val"], resize, workers), k)}
    if dataset in ("fashion-mnist", "mnist"):
        parts = load_idx_dataset(dataset, path)
    elif dataset == "cifar10":
        parts = load_cifar10(path)
    elif dataset == "synthetic":
        n_train, n_test, side = synthetic
        parts = {"train": synthetic_images(n_train, side, 10, seed=0),
                 "test": synthetic_images(n_test, side, 10, seed=1)}
    else:
        raise UserError(f"unknown image data set {dataset!r}; choose one of: imagenet, cifar10, "
                        f"fashion-mnist, mnist, synthetic")
    k = int(max(int(parts["train"][1].max()), int(parts["test"][1].max()))) + 1
    return {s: Split(InMemory(*parts[s]), k) for s in ("train", "test")}


def datasets() -> list[dict[str, object]]:
    """The image data sets for `sutskever data list`: name, description, present, location."""
    specs = [("fashion-mnist", "Fashion-MNIST: 60k/10k 28x28 grey clothing images, 10 classes",
              _has_idx, FASHION_MNIST_HOW),
             ("mnist", "MNIST digits, IDX files", _has_idx, MNIST_HOW),
             ("cifar10", "CIFAR-10 python batches, 50k/10k 32x32 colour images",
              lambda d: (d / "data_batch_1").is_file(), CIFAR_HOW),
             ("imagenet", "ILSVRC-2012 in the train/<wnid>/ folder layout (AlexNet's data)",
              lambda d: (d / "train").is_dir(), IMAGENET_HOW)]
    out: list[dict[str, object]] = []
    for name, description, present, how in specs:
        where = next((d for d in candidates(name, None) if present(d)), None)
        out.append({"name": name, "description": description, "present": where is not None,
                    "location": str(where) if where is not None else how})
    return out

