"""Stage prepare: resize images, merge per-nucleus masks, keep instance labels and sizes."""

from nuclei_unet.config.load import load_section
from nuclei_unet.data.prepare import prepare_dataset
from nuclei_unet.stage import run_stage, stage_parser


def main(args) -> None:
    prepare_dataset(args.raw, args.out, load_section(args.params, "prepare"))


if __name__ == "__main__":
    parser = stage_parser(__doc__, "raw", "out")
    run_stage("prepare", parser, main)
