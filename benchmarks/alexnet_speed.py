"""AlexNet training speed: images/s and model FLOP/s as a fraction of the measured matmul peak.

Two networks: the small member on 24x24 grey crops (the `quick` preset's) and the full 224-px
network of the paper (the `paper` preset's, groups=1 and 2). Each variant times forward +
backward + SGD steps on random data (the data pipeline is not timed). On CUDA the variants are
fp32, bf16 autocast, + channels-last, + torch.compile; on CPU fp32 and channels-last. The
peak is the device's measured dense matmul rate (bf16 on CUDA, fp32 on CPU), the denominator of
every MFU in this project.

    python benchmarks/alexnet_speed.py [--device auto|cpu|cuda] [--steps N] [--full-batch B]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from sutskever.environment import hardware, matmul_peak_flops, pick_device
from sutskever.models.alexnet import AlexNet, AlexNetConfig, flops_per_image

SMALL = AlexNetConfig(arch="small", num_classes=10, in_channels=1, image_size=24,
                      channels=(32, 64, 64), hidden=256)


def bench(cfg: AlexNetConfig, batch: int, device: torch.device, steps: int, *,
          bf16: bool = False, channels_last: bool = False, compile: bool = False) -> float:
    """Training images per second."""
    torch.manual_seed(0)
    model = AlexNet(cfg).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3 if not compile else 5):  # warm-up (and compilation)
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default: by device)")
    parser.add_argument("--full-batch", type=int, default=0,
                        help="batch of the 224-px network (default 128 on CUDA, 16 on CPU)")
    args = parser.parse_args()
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    peak = matmul_peak_flops(device, torch.bfloat16 if cuda else torch.float32)
    print(f"hardware: {hardware(device)}; torch {torch.__version__}")
    print(f"measured matmul peak: {peak / 1e12:.2f} TFLOP/s ({'bf16' if cuda else 'fp32'})")
    variants = [("fp32", {})]
    if cuda:
        variants += [("bf16", {"bf16": True}),
                     ("bf16 + channels-last", {"bf16": True, "channels_last": True}),
                     ("bf16 + channels-last + compile",
                      {"bf16": True, "channels_last": True, "compile": True})]
    else:
        variants += [("fp32 + channels-last", {"channels_last": True})]
    nets = [("small 24px (quick)", SMALL, 128),
            ("full 224px groups=1 (paper)", AlexNetConfig(), args.full_batch or
             (128 if cuda else 16)),
            ("full 224px groups=2", AlexNetConfig(groups=2), args.full_batch or
             (128 if cuda else 16))]
    print(f"{'network':30s} {'variant':32s} {'batch':>5s} {'images/s':>10s} "
          f"{'TFLOP/s':>8s} {'MFU':>6s}")
    for name, cfg, batch in nets:
        flops = flops_per_image(AlexNet(cfg))
        steps = args.steps or (30 if cuda else (20 if cfg.arch == "small" else 3))
        for label, opts in variants:
            try:
                rate = bench(cfg, batch, device, steps, **opts)
            except Exception as e:  # e.g. compile unavailable: report and go on
                print(f"{name:30s} {label:32s} failed: {type(e).__name__}: {e}")
                continue
            achieved = rate * flops
            print(f"{name:30s} {label:32s} {batch:5d} {rate:10.0f} {achieved / 1e12:8.3f} "
                  f"{achieved / peak:6.1%}")


if __name__ == "__main__":
    main()
