"""Stage train: fit the U-Net, keep the best weights, log every epoch with dvclive."""

from dvclive import Live

from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.io import read_json
from nuclei_unet.params import load_section, load_seed
from nuclei_unet.prepare import load_prepared
from nuclei_unet.train import train


def main(args) -> None:
    # every param is checked before any data is read
    model_params = load_section(args.params, "model")
    params = load_section(args.params, "train")
    seed = load_seed(args.params)
    data = load_prepared(args.prepared)
    splits = read_json(args.split)
    tr, va = data.index(splits["train"]), data.index(splits["val"])
    # metrics and plots are declared in dvc.yaml, so dvclive must not edit it
    with Live(args.live, save_dvc_exp=False, dvcyaml=None) as live:
        train(
            (data.images[tr], data.masks[tr]),
            (data.images[va], data.masks[va]),
            model_params,
            params,
            seed,
            args.model,
            live,
        )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "prepared", "split", "model", "live")
    run_stage("train", parser, main)
