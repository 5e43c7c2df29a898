"""Stage train: fit the U-Net, write the weights train.keep picks, log every epoch with dvclive.

A resumable checkpoint is kept at --resume while training runs; a killed run picks up from it.
With train.processes > 1 the stage relaunches itself under torchrun.
"""

import contextlib
import os
import sys

from dvclive import Live

from nuclei_unet.config.load import load_section, load_seed
from nuclei_unet.data.native import load_native
from nuclei_unet.errors import ParamsError
from nuclei_unet.io.files import read_json, write_json
from nuclei_unet.io.prepared import load_prepared
from nuclei_unet.stage import run_stage, stage_parser
from nuclei_unet.train.distributed import (
    inside_torchrun,
    relaunch_with_torchrun,
    shutdown,
)
from nuclei_unet.train.loop import details, train


def main(args) -> None:
    # every param is checked before any data is read
    model_params = load_section(args.params, "model")
    params = load_section(args.params, "train")
    seed = load_seed(args.params)
    if params.processes > 1 and not inside_torchrun():
        relaunch_with_torchrun(params.processes, sys.argv)
    data = load_prepared(args.prepared)
    splits = read_json(args.split)
    tr, va = data.index(splits["train"]), data.index(splits["val"])
    if params.weight_map and data.weights is None:
        raise ParamsError(
            "train.weight_map: the prepared data has no weight maps (set prepare.weight_map: true)"
        )
    extra = [data.weights] if params.weight_map else []
    if params.input == "crops":
        train_data = load_native(args.prepared, splits["train"])
        val_data = load_native(args.prepared, splits["val"])
    else:
        train_data = (data.images[tr], data.masks[tr], *[a[tr] for a in extra])
        val_data = (data.images[va], data.masks[va], *[a[va] for a in extra])
    main_process = int(os.environ.get("RANK", "0")) == 0
    # metrics and plots are declared in dvc.yaml, so dvclive must not edit it
    live = Live(args.live, save_dvc_exp=False, dvcyaml=None) if main_process else None
    with live or contextlib.nullcontext():
        result = train(
            train_data,
            val_data,
            model_params,
            params,
            seed,
            args.trained,
            live,
            args.resume,
        )
    if main_process:
        per_epoch = len(tr) * (params.crops_per_image if params.input == "crops" else 1)
        write_json(args.details, details(result, per_epoch))
    shutdown()


if __name__ == "__main__":
    parser = stage_parser(__doc__, "prepared", "split", "trained", "live", "details", "resume")
    run_stage("train", parser, main)
