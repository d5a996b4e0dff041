"""Quantisation-aware training of the int8 network: int8 taught to answer as f32 does (candidate).

    python -m training.qat_int8 --data-dir ../shared/data/blood-cells --out training/cache/qat/network.xml
    python -m training.qat_int8 --data-dir ../shared/data/blood-cells --install   # as the shipped int8 network

Post-training quantisation (``training.quantize_int8``) leaves int8 changing about 5% of the
validation labels against f32, from rounding error spread over most layers (EXPERIMENTS.md,
"Quantisation settings"). Quantisation-aware training is the usual cure for MobileNetV2:

1. The Keras network is rebuilt in PyTorch layer for layer (``torch_mobilenet``, the same
   weights; checked against the f32 OpenVINO network on real crops before anything else).
2. NNCF quantises it from 600 training crops, as ``quantize_int8`` does the OpenVINO network.
3. The quantised network, with its quantisers' ranges, is fine-tuned to reproduce the f32
   network's outputs (distillation: the class probabilities and both feature vectors the
   trust checks read) on the crops of the training run's 4,101 training images and one
   seeded copy of each through the training run's ``unseen_lab`` augmentation (the stains,
   blur and scales of labs it never met), each shown as it is or turned 180° (the two views
   every prediction reads). No label is used, no validation, test or unseen-lab image is
   read, and the batch norms keep their statistics. About 15 minutes an epoch on 2 cores.
4. The result is converted to OpenVINO (its fake-quantise nodes run as int8) with the
   inputs and outputs of the shipped networks, and written to ``--out``; or, with
   ``--install``, beside the shipped model as its int8 network (``quantize_int8.install_int8``),
   after which its trust checks are refitted as README's training commands say.

PyTorch is a training-time tool, like NNCF: ``.venv/bin/pip install torch==2.13.0``.
``training.quantize_probe --network NAME=XML`` scores the result against f32.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# MobileNetV2 (alpha 1.0): (expansion, output channels, blocks, first stride), as Keras builds it.
INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_BLOCK = 12  # block_12_add: the out-of-distribution features (classifier.FEATURE_LAYER)
BATCH_NORM_EPSILON = 1e-3


def torch_mobilenet(keras_model):
    """The Keras classifier as a PyTorch module: NHWC raw RGB in, (block-12 pooled features,
    final pooled features, probabilities) out, as the OpenVINO networks give them."""
    import torch
    from torch import nn
    from torch.nn import functional

    def conv(name, groups=1, stride=1):
        kernel = keras_model.get_layer(name).get_weights()[0]
        if groups == 1:  # (h, w, in, out) -> (out, in, h, w)
            weight = kernel.transpose(3, 2, 0, 1)
        else:  # depthwise (h, w, channels, 1) -> (channels, 1, h, w)
            weight = kernel.transpose(2, 3, 0, 1)
        layer = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2], stride=stride,
                          groups=groups, bias=False)
        layer.weight.data = torch.from_numpy(np.ascontiguousarray(weight))
        return layer

    def norm(name):
        gamma, beta, mean, variance = keras_model.get_layer(name).get_weights()
        layer = nn.BatchNorm2d(len(gamma), eps=BATCH_NORM_EPSILON)
        for tensor, value in ((layer.weight, gamma), (layer.bias, beta), (layer.running_mean, mean),
                              (layer.running_var, variance)):
            tensor.data = torch.from_numpy(np.asarray(value, np.float32))
        return layer

    class Block(nn.Module):
        def __init__(self, prefix: str, expand: bool, stride: int, residual: bool) -> None:
            super().__init__()
            channels = keras_model.get_layer(f"{prefix}depthwise").get_weights()[0].shape[2]
            self.expand = nn.Sequential(conv(f"{prefix}expand"), norm(f"{prefix}expand_BN"), nn.ReLU6()) \
                if expand else nn.Identity()
            self.stride = stride
            self.depthwise = nn.Sequential(conv(f"{prefix}depthwise", groups=channels, stride=stride),
                                           norm(f"{prefix}depthwise_BN"), nn.ReLU6())
            self.project = nn.Sequential(conv(f"{prefix}project"), norm(f"{prefix}project_BN"))
            self.residual = residual

        def forward(self, x):
            y = self.expand(x)
            # Keras pads stride-2 layers on the bottom and right only; "same" at stride 1 is 1 all round.
            y = functional.pad(y, (0, 1, 0, 1) if self.stride == 2 else (1, 1, 1, 1))
            y = self.project(self.depthwise(y))
            return x + y if self.residual else y

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv("Conv1", stride=2), norm("bn_Conv1"), nn.ReLU6())
            blocks, index, channels = [], 0, 32
            for expansion, width, count, first_stride in INVERTED_RESIDUALS:
                for repeat in range(count):
                    prefix = "expanded_conv_" if index == 0 else f"block_{index}_"
                    stride = first_stride if repeat == 0 else 1
                    blocks.append(Block(prefix, expansion != 1, stride, stride == 1 and channels == width))
                    channels, index = width, index + 1
            self.lower = nn.Sequential(*blocks[:FEATURE_BLOCK + 1])
            self.upper = nn.Sequential(*blocks[FEATURE_BLOCK + 1:])
            self.top = nn.Sequential(conv("Conv_1"), norm("Conv_1_bn"), nn.ReLU6())
            kernel, bias = keras_model.get_layer("predictions").get_weights()
            self.head = nn.Linear(kernel.shape[0], kernel.shape[1])
            self.head.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.T))
            self.head.bias.data = torch.from_numpy(bias)

        def forward(self, rgb):
            x = rgb.permute(0, 3, 1, 2) * (1 / 127.5) - 1.0
            x = functional.pad(x, (0, 1, 0, 1))  # Conv1 is "same" at stride 2: bottom and right
            lower = self.lower(self.stem(x))
            features = self.top(self.upper(lower)).mean(dim=(2, 3))
            return lower.mean(dim=(2, 3)), features, torch.softmax(self.head(features), dim=1)

    return Network().eval()


def turned(crops: np.ndarray) -> np.ndarray:
    return crops[:, ::-1, ::-1]


def distil(network, crops: np.ndarray, teacher: dict[bool, tuple[np.ndarray, ...]], epochs: int,
           learning_rate: float, batch_size: int, seed: int) -> list[float]:
    """Fine-tune ``network`` (quantised) so its outputs on ``crops`` match f32's (``teacher``,
    keyed by whether the crop is turned 180°; each epoch shows each crop in one view, drawn):
    cross-entropy to f32's probabilities, plus the squared distance of each feature vector
    relative to f32's mean norm. Batch norms stay in inference mode. Returns each epoch's loss."""
    import torch

    target = {view: [torch.from_numpy(np.asarray(t, np.float32)) for t in outputs]
              for view, outputs in teacher.items()}
    ood_scale, feature_scale = (float((t ** 2).sum(1).mean()) for t in target[False][:2])
    optimiser = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=learning_rate)
    rng = np.random.default_rng(seed)
    network.eval()  # batch norms keep their statistics; the quantisers keep learning their ranges
    losses = []
    for epoch in range(epochs):
        order, total, started = rng.permutation(len(crops)), 0.0, time.perf_counter()
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            turn = rng.random(len(rows)) < 0.5
            batch = torch.from_numpy(np.stack([crops[r, ::-1, ::-1] if t else crops[r] for r, t in zip(rows, turn)]))
            ood, features, probabilities = (torch.where(torch.from_numpy(turn)[:, None], a[rows], b[rows])
                                            for a, b in zip(target[True], target[False]))
            student_ood, student_features, student_p = network(batch)
            loss = (-(probabilities * torch.log(student_p.clamp_min(1e-8))).sum(1).mean()
                    + ((student_features - features) ** 2).sum(1).mean() / feature_scale
                    + ((student_ood - ood) ** 2).sum(1).mean() / ood_scale)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(crops))
        print(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return losses


def forward_all(network, crops: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, ...]:
    import torch

    parts = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch_size], np.float32))
            parts.append([t.numpy() for t in network(batch)])
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def main(argv=None) -> None:
    import keras
    import nncf
    import openvino as ov
    import torch

    from hematovision.model.classifier import DEFAULT_MODEL_PATH, card_beside, load_classifier
    from hematovision.model.model_card import load_model_card
    from training.calibrate import framed_crops, held_out_and_training
    from training.quantize_int8 import calibration_records, install_int8
    from training.train import AUGMENT_STRENGTH, model_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="where the int8 OpenVINO network goes (.xml)")
    where.add_argument("--install", action="store_true", help="write it as the shipped model's int8 network")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--images", type=int, default=0,
                        help="distil on this many training images, seeded (default: all 4,101)")
    parser.add_argument("--augmented-copies", type=int, default=1,
                        help="unseen_lab augmented copies of each image distilled on beside it")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.pbc_dir = args.data_dir.parent / "pbc"
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    reference = load_classifier(precision="f32")
    card = load_model_card(card_beside(DEFAULT_MODEL_PATH))
    settings = card.training.settings
    _, fitting = held_out_and_training(args, card.training.sources, settings["seed"], settings["val_fraction"])
    if args.images:
        rng = np.random.default_rng(args.seed)
        fitting = [fitting[i] for i in sorted(rng.choice(len(fitting), min(args.images, len(fitting)), replace=False))]
    paths = [path for path, _, _ in fitting]
    crops = np.stack([reference.prepare(path)[0] for path in paths]).astype(np.float32)
    if args.augmented_copies:
        # The training run's unseen_lab augmentation: f32's answers on stain, blur and scale it never met
        framed = framed_crops(reference, paths)
        crops = np.concatenate([crops] + [
            model_inputs(framed, copy, args.seed, AUGMENT_STRENGTH["unseen_lab"], "unseen_lab",
                         reference.colour_normalisation) for copy in range(1, args.augmented_copies + 1)])
    calibration = np.stack([reference.prepare(r.path)[0]
                            for r in calibration_records(args.data_dir, 600)]).astype(np.float32)
    teacher = {view: tuple(np.concatenate(part) for part in zip(*(
        reference.backend.forward(np.ascontiguousarray(turned(crops[i:i + 64]) if view else crops[i:i + 64]))
        for i in range(0, len(crops), 64)))) for view in (False, True)}
    print(f"{len(crops)} training crops ({len(paths)} images, {args.augmented_copies} augmented copies each), "
          f"{len(calibration)} calibration crops ({time.perf_counter() - started:.0f} s)", flush=True)

    network = torch_mobilenet(keras.saving.load_model(DEFAULT_MODEL_PATH, compile=False))
    check = calibration[:32]
    gap = np.abs(forward_all(network, check)[2] - reference.backend.forward(check)[2]).max()
    if gap > 1e-3:
        raise SystemExit(f"The PyTorch copy differs from the f32 network by {gap:.2e} in probability.")
    print(f"PyTorch copy matches the f32 network (max |dp| {gap:.1e})", flush=True)

    quantised = nncf.quantize(network, nncf.Dataset(list(calibration), lambda c: torch.from_numpy(c[None])),
                              subset_size=len(calibration))
    distil(quantised, crops, teacher, args.epochs, args.learning_rate, args.batch_size, args.seed)

    converted = ov.convert_model(quantised.eval(), example_input=torch.from_numpy(calibration[:1]),
                                 input=[ov.PartialShape([-1, *calibration.shape[1:]])])
    if args.install:
        defaults = {"epochs": 2, "learning_rate": 1e-4, "images": 0, "augmented_copies": 1, "batch_size": 32,
                    "seed": 0}
        command = "python -m training.qat_int8 --data-dir ../shared/data/blood-cells --install" + "".join(
            f" --{name.replace('_', '-')} {getattr(args, name)}" for name, value in defaults.items()
            if getattr(args, name) != value)
        install_int8(converted, DEFAULT_MODEL_PATH,
                     f"quantisation-aware: NNCF from {len(calibration)} training images (as quantize_int8), then "
                     f"{args.epochs} epochs distilled from f32 on {len(fitting)} training-split images and "
                     f"{args.augmented_copies} augmented copies of each, either view, learning rate "
                     f"{args.learning_rate:g}, seed {args.seed}", command)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(args.out), compress_to_fp16=False)
        print(f"wrote {args.out}", flush=True)
    print(f"{time.perf_counter() - started:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
