"""What a training run is built from: tensors, network, optimiser, schedule and batches.

Shared by the training loop and the throughput benchmark.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from nuclei_unet.config.schema import ModelParams, TrainParams
from nuclei_unet.data.native import NativeSample
from nuclei_unet.model.preprocess import normalize_image, normalize_images, to_input
from nuclei_unet.model.unet import UNet
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import out_channels_for
from nuclei_unet.transforms.augment import AugmentedSet
from nuclei_unet.transforms.crops import CropSet, val_crops

# Keras' Adam epsilon (PyTorch's default is 1e-8); kept so the seed recipe is the seed's
KERAS_ADAM_EPS = 1e-7


def to_tensors(images: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, H, W, 3) uint8`` and ``(N, H, W)`` 0/1 -> ``(N, 3, H, W)`` float32 in [0, 1]
    (channels_last memory) and ``(N, 1, H, W)`` float32."""
    return to_input(images), torch.from_numpy(masks.astype(np.float32))[:, None]


def normalize_data(
    data: tuple[np.ndarray, ...] | list[NativeSample], rule: str
) -> tuple[np.ndarray, ...] | list[NativeSample]:
    """A training set with each image brought to the network's range by ``rule``
    (:mod:`nuclei_unet.model.preprocess`): native samples, or ``(images (N, H, W, 3) uint8,
    masks, ...)`` whose other arrays are kept. ``none`` returns ``data`` itself."""
    if rule == "none":
        return data
    if isinstance(data, list):
        return [dataclasses.replace(s, image=normalize_image(s.image, rule)) for s in data]
    return (normalize_images(data[0], rule), *data[1:])


def make_model(model_params: ModelParams, loss: str, edge: bool = False) -> UNet:
    """The U-Net of ``model_params`` with the output head ``loss`` needs (two classes for
    ``softmax_ce``, else one logit) and, with ``edge``, the edge class's logit."""
    return UNet(
        model_params.widths, model_params.dropouts, norm=model_params.norm,
        out_channels=out_channels_for(loss, edge),
        head="softmax" if loss == "softmax_ce" else "sigmoid",
    )


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """Adam (Keras epsilon) or SGD with momentum, as ``params.optimizer`` says."""
    if params.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=params.lr, eps=KERAS_ADAM_EPS, weight_decay=params.weight_decay
        )
    return torch.optim.SGD(
        model.parameters(), lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay
    )


def shuffled_batches(
    dataset: Dataset, params: TrainParams, seed: int, group: Dist, pin_memory: bool = False
) -> DataLoader:
    """Shuffled batches of this process's share of ``dataset``.

    The global batch stays ``params.batch_size`` whatever the number of processes. Call
    ``loader.sampler.set_epoch(e)`` and ``loader.dataset.set_epoch(e)`` before each epoch.
    """
    sampler = DistributedSampler(
        range(len(dataset)), num_replicas=group.world, rank=group.rank, shuffle=True, seed=seed
    )
    local_batch = max(1, params.batch_size // group.world)
    return DataLoader(
        dataset, batch_size=local_batch, sampler=sampler, num_workers=params.workers,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU asynchronously
    )


def make_loader(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, params: TrainParams, seed: int,
    group: Dist, pin_memory: bool = False,
) -> DataLoader:
    """Shuffled, augmented batches of this process's share of the training set
    (:func:`shuffled_batches`)."""
    dataset = AugmentedSet(x, y, w, params.augment, seed)
    return shuffled_batches(dataset, params, seed, group, pin_memory)


def make_crop_data(
    train: list[NativeSample], val: list[NativeSample], params: TrainParams, seed: int,
    group: Dist, pin_memory: bool = False,
) -> tuple[DataLoader, tuple[torch.Tensor, torch.Tensor, None]]:
    """Batches of random crops of this process's share of ``train`` (a new draw each epoch,
    :func:`shuffled_batches`), and fixed crops of ``val``."""
    dataset = CropSet(
        train, params.crop_size, params.crops_per_image, params.scale_jitter, params.augment,
        params.edge, params.oversample_stained, seed, params.contact_weight,
        params.foreground_crops, params.exposure_stained, params.area_power,
    )
    vx, vy = val_crops(val, params.crop_size, params.edge)
    return shuffled_batches(dataset, params, seed, group, pin_memory), (vx, vy, None)


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams):
    """The learning-rate schedule, stepped once per epoch; ``None`` for a constant rate."""
    if params.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    if params.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None
