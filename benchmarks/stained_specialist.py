"""A stained specialist: the model fine-tuned on stained/brightfield training images only.

Splits the split's stained images (prepare's kind, ``data/kinds.py``) into a tuning part and
every ``--hold-every``-th one held out, fine-tunes a copy of the model on random crops of the
tuning part (the train section of ``--params``, with ``--lr``, ``--epochs`` and
``--crops-per-image`` on top; a cosine schedule from ``--lr``), and prints one JSON line per
model, the model itself first: the held-out images' DSB mAP and F1 at IoU 0.5, each predicted
as predict does (the model file's settings; flags of ``nuclei-unet predict`` on top). Both
models trained on the held-out images' neighbours; the model itself on the held-out images too,
so the comparison leans its way. ``--check-split val`` then scores both on that split's stained
images, once the choice is made on the training images.

    python benchmarks/stained_specialist.py --model models/model.pt --lr 1e-3 --epochs 20 \
        --crops-per-image 4 --hold-every 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from scoring import add_data_args, load_scoring, score_variants  # beside this file

from nuclei_unet.config.load import load_section, load_seed
from nuclei_unet.config.schema import TrainParams
from nuclei_unet.data.native import NativeSample, load_native
from nuclei_unet.io.dsb import Sample, list_samples
from nuclei_unet.io.files import read_json
from nuclei_unet.model.checkpoint import load_network
from nuclei_unet.model.unet import UNet, fuse_batch_norm, memory_format_for
from nuclei_unet.runtime import resolve_device, resolve_precision, seed_everything
from nuclei_unet.train.build import make_crop_data, make_optimizer, normalize_data
from nuclei_unet.train.distributed import Dist
from nuclei_unet.train.losses import loss_for, out_channels_for
from nuclei_unet.train.steps import train_epoch


def held_out(ids: list[str], every: int) -> tuple[list[str], list[str]]:
    """``ids`` (sorted) -> (tuning ids, held-out ids): every ``every``-th one held out,
    starting from the middle of the first ``every``.

    >>> held_out(["a", "b", "c", "d", "e", "f", "g"], 3)
    (['a', 'c', 'd', 'f', 'g'], ['b', 'e'])
    """
    held = [i for k, i in enumerate(ids) if k % every == every // 2]
    return [i for i in ids if i not in held], held


def stained_samples(prepared: str, ids: list[str]) -> dict[str, NativeSample]:
    """The native samples of ``ids`` that prepare found stained/brightfield (its flag), by id."""
    return {i: s for i, s in zip(ids, load_native(prepared, ids)) if s.stained}


def fine_tune(
    net: UNet, samples: list[NativeSample], params: TrainParams, seed: int, normalize: str
) -> UNet:
    """``net`` (as trained, batch norms not folded) trained further on random crops of
    ``samples`` for ``params.epochs`` epochs on ``params.device`` in ``params.precision``, Adam
    or SGD from ``params.lr`` down a cosine; returned in eval mode, batch norms folded, as
    predict uses it."""
    seed_everything(seed)
    device = resolve_device(params.device)
    dtype = resolve_precision(params.precision, device)
    net = net.to(device, memory_format=memory_format_for(net))
    data = normalize_data(samples, normalize)
    # the crops' own val set is not used: the held-out images are scored whole instead
    loader, _ = make_crop_data(data, data[:1], params, seed, Dist())
    optimizer = make_optimizer(net, params)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(params.epochs, 1))
    loss_fn = loss_for(params.loss, params.edge)
    for epoch in range(1, params.epochs + 1):
        loader.sampler.set_epoch(epoch)
        loader.dataset.set_epoch(epoch)
        loss, _ = train_epoch(net, optimizer, loader, dtype, loss_fn, Dist(), f"epoch {epoch}")
        schedule.step()
        print(f"epoch {epoch}/{params.epochs}: loss {loss:.4f}", flush=True)
    return fuse_batch_norm(net.eval())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--prepared", default="data/prepared", help="prepare's output (native set)")
    parser.add_argument("--params", default="params.yaml", help="its train section and base.seed")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--crops-per-image", type=int, default=4)
    parser.add_argument("--hold-every", type=int, default=5)
    parser.add_argument("--check-split", default=None, help="also score this split's stained images")
    args = parser.parse_args()
    scoring = load_scoring(args)
    stained = stained_samples(args.prepared, [s.id for s in scoring.samples])
    tune, held = held_out(list(stained), args.hold_every)
    print(f"{len(stained)} stained images: fine-tuning on {len(tune)}, {len(held)} held out")
    params = load_section(args.params, "train").model_copy(update={
        "lr": args.lr, "epochs": args.epochs, "crops_per_image": args.crops_per_image,
    })
    net, _ = load_network(args.model)
    if net.out_channels != out_channels_for(params.loss, params.edge):
        raise SystemExit(
            f"{args.model}: {net.out_channels} output channel(s), but train.loss "
            f"{params.loss} with train.edge {params.edge} in {args.params} trains "
            f"{out_channels_for(params.loss, params.edge)}: give the params it was trained with"
        )
    start = time.perf_counter()
    specialist = fine_tune(
        net, [stained[i] for i in tune], params, load_seed(args.params),
        scoring.checkpoint.scale.normalize,
    )
    print(f"fine-tuned in {time.perf_counter() - start:.0f} s")
    models = {"model": scoring, "specialist": dataclasses.replace(
        scoring, checkpoint=dataclasses.replace(scoring.checkpoint, model=specialist)
    )}
    checks: dict[str, list[Sample]] = {"held out": [s for s in scoring.samples if s.id in held]}
    if args.check_split:
        wanted = stained_samples(args.prepared, sorted(read_json(args.split)[args.check_split]))
        checks[args.check_split] = [s for s in list_samples(args.raw) if s.id in wanted]
    for images, samples in checks.items():
        for name, model in models.items():
            (row,) = score_variants(model, samples, args.labels, {name: lambda i, t: (i, t)}, "model")
            row = {"images": images, **row}
            print(json.dumps(row))


if __name__ == "__main__":
    main()
