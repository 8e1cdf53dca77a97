"""Tests for AlexNet (Krizhevsky, Sutskever, Hinton 2012): the network, LRN, the image loaders,
the paper's augmentation and 10-patch testing, and the recipe's `paper` preset on an
ImageNet-layout folder."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sutskever import recipes
from sutskever.data.images import (
    PixelStats,
    center_crop,
    index_imagenet,
    load_cifar10,
    load_idx_dataset,
    pca_lighting,
    pixel_stats,
    random_crop_flip,
    read_idx,
    ten_patches,
)
from sutskever.errors import UserError
from sutskever.models.alexnet import AlexNet, AlexNetConfig, flops_per_image, local_response_norm
from sutskever.recipes.alexnet import ImageData, epochs_to_threshold, predict, topk_error
from sutskever.train import RunSpec, train

torch.set_num_threads(1)


# ---- the network ---------------------------------------------------------------------------------
@pytest.mark.parametrize("groups,params,macs", [(2, 60_965_224, 0.7244e9),
                                               (1, 62_378_344, 1.1353e9)])
def test_full_network_shapes_and_parameter_count(groups: int, params: int, macs: float) -> None:
    """The paper: "60 million parameters" (section 1), with the two-GPU layout. The count is
    conv 2,334,080 (groups=2) + FC 58,631,144."""
    torch.manual_seed(0)
    model = AlexNet(AlexNetConfig(groups=groups))
    assert sum(p.numel() for p in model.parameters()) == params
    shapes = []
    x = torch.zeros(2, 3, 224, 224)
    with torch.no_grad():
        for m in model.features:
            x = m(x)
            if isinstance(m, nn.MaxPool2d):
                shapes.append(tuple(x.shape[1:]))
        assert shapes == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]
        assert model.conv1(torch.zeros(1, 3, 224, 224)).shape == (1, 96, 55, 55)  # Figure 2
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
    # the paper's init: N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7; 0 elsewhere
    assert abs(model.fc6.weight.std().item() - 0.01) < 1e-4
    for m in (model.conv2, model.conv4, model.conv5, model.fc6, model.fc7):
        assert torch.all(m.bias == 1)
    for m in (model.conv1, model.conv3, model.fc8):
        assert torch.all(m.bias == 0)
    # forward multiply-adds: 0.72 G with the two columns (the often-quoted ~720M)
    assert flops_per_image(model) / 6 == pytest.approx(macs, rel=1e-3)


def _paper_lrn(a: torch.Tensor, n: int = 5, k: float = 2.0, alpha: float = 1e-4,
               beta: float = 0.75) -> torch.Tensor:
    """Section 3.3, written as the paper's sum, channel by channel."""
    big_n = a.shape[1]
    out = torch.empty_like(a)
    for i in range(big_n):
        lo, hi = max(0, i - n // 2), min(big_n - 1, i + n // 2)
        s = (a[:, lo:hi + 1] ** 2).sum(1)
        out[:, i] = a[:, i] / (k + alpha * s) ** beta
    return out


def test_lrn_is_the_papers_formula() -> None:
    a = torch.randn(2, 12, 4, 3, dtype=torch.float64) * 30  # large enough that the sum matters
    ours = local_response_norm(a, 5, 1e-4, 0.75, 2.0)
    assert torch.allclose(ours, _paper_lrn(a), rtol=1e-10, atol=0)
    assert not torch.allclose(ours, a / 2 ** 0.75, rtol=1e-3)  # the window sum is not negligible
    # torch's LocalResponseNorm divides alpha by n: it matches with alpha * n
    torch_lrn = nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)
    assert torch.allclose(ours, torch_lrn(a), rtol=1e-10)
    # groups: each half normalised on its own (the two GPUs)
    halves = torch.cat([_paper_lrn(a[:, :6]), _paper_lrn(a[:, 6:])], 1)
    assert torch.allclose(local_response_norm(a, groups=2), halves, rtol=1e-10)


@pytest.mark.parametrize("side", [28, 32])
@pytest.mark.parametrize("switch", [{}, {"activation": "tanh"}, {"lrn": False},
                                    {"overlap": False}, {"dropout": 0.0}, {"groups": 2}])
def test_small_network_switches(side: int, switch: dict) -> None:
    cfg = AlexNetConfig(arch="small", num_classes=10, in_channels=1, image_size=side,
                        channels=(8, 16, 16), hidden=32, **switch)
    model = AlexNet(cfg)
    assert model.fc6.in_features == 16 * math.ceil(side / 8) ** 2  # pooling choice: same sizes
    x = torch.randn(3, 1, side, side, requires_grad=True)
    out = model(x)
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    kinds = {type(m) for m in model.modules()}
    assert (nn.Tanh in kinds) == (switch.get("activation") == "tanh")
    assert (nn.Dropout in kinds) == (switch.get("dropout", 0.5) > 0)


# ---- augmentation --------------------------------------------------------------------------------
def _coloured_set(n: int = 64) -> torch.Tensor:
    """3-channel images whose colours vary mostly along (1, 1, 1) and a little along (1, -1, 0)."""
    g = torch.Generator().manual_seed(0)
    bright = torch.rand(n, 1, 8, 8, generator=g) * 160
    tint = torch.rand(n, 1, 8, 8, generator=g) * 40
    rgb = torch.cat([40 + bright + tint, 40 + bright - tint, 40 + bright], 1)
    return rgb.round().clamp(0, 255).to(torch.uint8)


def test_pca_lighting_keeps_the_mean_and_moves_along_principal_components() -> None:
    images = _coloured_set()
    stats = pixel_stats(images)
    assert stats.eigval[0] > 10 * stats.eigval[1] > 0  # brightness dominates
    p1 = stats.eigvec[:, 0]
    assert abs(abs(p1 @ torch.ones(3)) / math.sqrt(3) - 1) < 0.05  # p1 ~ (1, 1, 1)/sqrt(3)
    x = images[:4].float()
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([pca_lighting(x, stats, 0.1, g) for _ in range(4000)])  # (D, B, C, H, W)
    # over many draws the mean image is unchanged (alpha has mean 0) ...
    assert (draws.mean(0) - x).abs().max() < 0.1 * 255 * stats.eigval[0] * 0.1
    # ... and each draw shifts every pixel of an image by the same colour 255 * P (alpha*lambda)
    shift = draws - x  # (D, B, C, H, W)
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-3)
    colour = shift[..., 0, 0].reshape(-1, 3)  # (D*B, 3)
    alpha = (colour @ stats.eigvec) / (255 * stats.eigval)  # coordinates along p_i / lambda_i
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1), rtol=0.05)  # alpha ~ N(0, 0.1)
    assert alpha.mean(0).abs().max() < 0.01
    # the largest colour changes are along p1
    along = (colour @ stats.eigvec).abs().mean(0)
    assert along[0] > 10 * along[1]


def test_random_crops_and_flips_are_patches_of_the_image() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        out = random_crop_flip(x, 4, g)
        assert out.shape == (2, 3, 4, 4)
        for b in range(2):
            found = [(t, l, f) for t in range(3) for l in range(3) for f in (False, True)
                     if torch.equal(out[b], (lambda p: p.flip(-1) if f else p)(
                         x[b, :, t:t + 4, l:l + 4]))]
            assert len(found) == 1
            seen.add(found[0])
    assert len(seen) == 18  # every offset and mirror turns up
    # uint8 in, uint8 out (crops before the float conversion)
    assert random_crop_flip(x.to(torch.uint8), 4, g).dtype == torch.uint8


def test_ten_patches_of_a_constant_image_equal_the_single_crop_prediction() -> None:
    torch.manual_seed(0)
    model = AlexNet(AlexNetConfig(arch="small", num_classes=10, in_channels=3, image_size=12,
                                  channels=(8, 16, 16), hidden=32)).eval()
    image = torch.full((1, 3, 16, 16), 0.7)
    patches = ten_patches(image, 12)
    assert patches.shape == (10, 1, 3, 12, 12)
    with torch.no_grad():
        single = torch.softmax(model(center_crop(image, 12)), -1)
        ten = torch.softmax(model(patches.flatten(0, 1)), -1).mean(0, keepdim=True)
    assert torch.allclose(single, ten, atol=1e-6)
    # on a non-constant image the ten patches are the 4 corners, centre and mirrors
    x = torch.arange(36.0).view(1, 1, 6, 6)
    p = ten_patches(x, 4)
    assert torch.equal(p[0, 0], x[0, :, 1:5, 1:5]) and torch.equal(p[1, 0], x[0, :, :4, :4])
    assert torch.equal(p[9, 0], x[0, :, 2:, 2:].flip(-1))


def test_topk_error_and_threshold_crossing() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    labels = torch.tensor([2, 0])
    assert topk_error(probs, labels, 1) == pytest.approx(50.0)
    assert topk_error(probs, labels, 2) == pytest.approx(0.0)
    history = [(1.0, 60.0), (2.0, 30.0), (3.0, 10.0)]
    assert epochs_to_threshold(history, 20.0, 90.0) == pytest.approx(2.5)
    assert epochs_to_threshold(history, 75.0, 90.0) == pytest.approx(0.5)  # from chance at 0
    assert math.isnan(epochs_to_threshold(history, 5.0, 90.0))


# ---- loaders on tiny files of each format --------------------------------------------------------
def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def _write_idx_set(directory: Path, n_train: int = 20, n_test: int = 6, gz: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        files = {f"{prefix}-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28)),
                 f"{prefix}-labels-idx1-ubyte": np.arange(n) % 10}
        for name, array in files.items():
            raw = _idx(np.asarray(array))
            if gz:
                (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader(tmp_path: Path, gz: bool) -> None:
    _write_idx_set(tmp_path / "fashion-mnist", gz=gz)
    parts = load_idx_dataset("fashion-mnist", str(tmp_path))  # the parent of fashion-mnist/
    images, labels = parts["train"]
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [i % 10 for i in range(20)]
    assert parts["test"][0].shape == (6, 1, 28, 28)


def test_idx_loader_rejects_bad_files(tmp_path: Path) -> None:
    d = tmp_path / "mnist"
    _write_idx_set(d, gz=False)
    bad = d / "train-images-idx3-ubyte"
    raw = bad.read_bytes()
    bad.write_bytes(raw[:-5])  # truncated
    with pytest.raises(UserError, match="truncated"):
        load_idx_dataset("mnist", str(d))
    bad.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(UserError, match="magic"):
        read_idx(bad)
    with pytest.raises(UserError, match="not a directory"):
        load_idx_dataset("mnist", str(tmp_path / "nowhere"))


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sutskever.data.images as images

    monkeypatch.setenv("SUTSKEVER_DATA", str(tmp_path))
    monkeypatch.setattr(images, "candidates", lambda name, path: [tmp_path / name])
    with pytest.raises(UserError, match="dataset-fashion-mnist") as err:
        load_idx_dataset("fashion-mnist")
    assert "\n" not in str(err.value)


def _write_cifar(directory: Path, n: int = 4) -> None:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        batch = {b"batch_label": name.encode(), b"labels": [(k + i) % 10 for i in range(n)],
                 b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 b"filenames": [b"x.png"] * n}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar_loader(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar10")
    parts = load_cifar10(str(tmp_path / "cifar10"))
    images, labels = parts["train"]
    assert images.shape == (20, 3, 32, 32) and labels.shape == (20,)
    raw = pickle.loads((tmp_path / "cifar10" / "data_batch_1").read_bytes())
    assert torch.equal(images[0], torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32)))
    assert parts["test"][0].shape == (4, 3, 32, 32)
    # a pickle that is not a CIFAR batch (here: one that would call os.system) is refused
    evil = pickle.dumps(__import__("os").system)
    (tmp_path / "cifar10" / "test_batch").write_bytes(evil)
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_cifar10(str(tmp_path / "cifar10"))


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _write_imagenet(root: Path, flat_val: bool = True, per_class: int = 3) -> None:
    wnids = ["n01440764", "n01443537"]
    for c, wnid in enumerate(wnids):
        d = root / "train" / wnid
        d.mkdir(parents=True)
        for i in range(per_class):
            (d / f"{wnid}_{i}.JPEG").write_bytes(_jpeg((200 * c, 50 + 40 * i, 90), (40, 30)))
    (root / "val").mkdir()
    lines = []
    for i in range(4):
        wnid = wnids[i % 2]
        name = f"ILSVRC2012_val_{i + 1:08d}"
        target = root / "val" / (f"{name}.JPEG" if flat_val else f"{wnid}/{name}.JPEG")
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(_jpeg((200 * (i % 2), 80, 90), (30, 36)))
        lines.append(f"{name},{wnid} 1 2 3 4")
    if flat_val:
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" +
                                                   "\n".join(lines) + "\n")


@pytest.mark.parametrize("flat_val", [True, False])
def test_imagenet_folder_index(tmp_path: Path, flat_val: bool) -> None:
    _write_imagenet(tmp_path, flat_val)
    lists = index_imagenet(tmp_path)
    assert lists["train"].classes == ["n01440764", "n01443537"]
    assert lists["train"].labels.tolist() == [0, 0, 0, 1, 1, 1]
    # flat: in file-name order; in class folders: class by class
    assert lists["val"].labels.tolist() == ([0, 1, 0, 1] if flat_val else [0, 0, 1, 1])


def test_imagenet_bad_input(tmp_path: Path) -> None:
    _write_imagenet(tmp_path)
    (tmp_path / "LOC_val_solution.csv").unlink()
    with pytest.raises(UserError, match="no label file"):
        index_imagenet(tmp_path)
    with pytest.raises(UserError, match="lacks train/ or val/"):
        index_imagenet(tmp_path / "train")


# ---- the recipe ---------------------------------------------------------------------------------
def test_paper_preset_runs_unchanged_on_an_imagenet_folder(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The `paper` preset as it is, on a tiny ILSVRC-layout folder (flat val + label file);
    only the data path, the number of steps and the batch size are overridden."""
    import sutskever.train.trainer as trainer

    monkeypatch.setattr(trainer, "_peak_flops", lambda device: 1e11)  # MFU's peak: not tested
    root = tmp_path / "imagenet"
    _write_imagenet(root, per_class=4)
    recipe = recipes.get("alexnet")
    overrides = {"data.path": str(root), "train.epochs": 0.0, "train.steps": 2,
                 "train.batch_size": 4}
    cfg = recipe.configure("paper", overrides)
    assert cfg.model.arch == "imagenet" and cfg.data.crop == 224 and cfg.data.lighting_std == 0.1
    summary = train(recipe, cfg, tmp_path / "run", RunSpec("alexnet", "paper", overrides, 0),
                    device=torch.device("cpu"))
    m = summary["metrics"]
    assert summary["steps"] == 2 and math.isfinite(summary["final_train_loss"])
    for key in ("top1_error", "top5_error", "top1_error_10patch", "top5_error_10patch"):
        assert 0.0 <= m[key] <= 100.0
    assert m["top5_error"] == 0.0  # 2 classes: always in the top 5 of 1000
    # the batches are 224 crops of the 256 images, normalised
    data = recipe.build_data(cfg, 0)
    x, y = data.batch(0)
    assert x.shape == (4, 3, 224, 224) and y.shape == (4,) and x.dtype == torch.float32


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    recipe = recipes.get("alexnet")
    cfg = recipe.configure("smoke")
    a, b = ImageData(cfg, 0), ImageData(cfg, 0)
    for step in (3, 0, 9, 3):
        xa, ya = a.batch(step)
        xb, yb = b.batch(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a.batch(0)[0], ImageData(cfg, 1).batch(0)[0])
    # one epoch shows each training image once
    seen = torch.cat([a._indices(i) for i in range(a.steps_per_epoch)])
    assert len(set(seen.tolist())) == len(seen) == a.steps_per_epoch * cfg.train.batch_size


def test_predict_and_ensemble_shapes() -> None:
    recipe = recipes.get("alexnet")
    cfg = recipe.configure("smoke")
    data = recipe.build_data(cfg, 0)
    models = [recipe.build_model(cfg).eval() for _ in range(2)]
    centre, averaged, labels = predict(models, data, data.splits["test"], cfg, True)
    assert centre.shape == averaged.shape == (len(labels), 10)
    assert torch.allclose(centre.sum(1), torch.ones(len(labels)), atol=1e-5)
    metrics = recipe.evaluate_ensemble(models, cfg, data, "test")
    assert set(metrics) == {"top1_error", "top5_error", "top1_error_10patch",
                            "top5_error_10patch"}


def test_pixel_stats_type() -> None:
    stats = pixel_stats(_coloured_set(8))
    assert isinstance(stats, PixelStats) and stats.eigvec.shape == (3, 3)


@pytest.mark.parametrize("preset,args,message", [
    ("paper", ["--set", "data.path=/nonexistent/imagenet"], "not a directory"),
    ("smoke", ["--set", "model.activation=sigmoid"], "not one of"),
    ("smoke", ["--set", "model.channels=8,16"], "3 conv layers"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, preset: str, args: list[str],
                                          message: str) -> None:
    cmd = [sys.executable, "-m", "sutskever", "run", "alexnet", "--preset", preset,
           "--out", str(tmp_path / "run"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
