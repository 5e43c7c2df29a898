"""Stage split: the last n_test ids are test, the last val_fraction of the rest validation."""

import logging

from nuclei_unet.config.load import load_section
from nuclei_unet.data.split import split_ids
from nuclei_unet.io.files import write_json
from nuclei_unet.io.prepared import load_prepared
from nuclei_unet.stage import run_stage, stage_parser


def main(args) -> None:
    splits = split_ids(load_prepared(args.prepared).ids, load_section(args.params, "split"))
    write_json(args.out, splits)
    logging.info("split: %s", ", ".join(f"{len(v)} {k}" for k, v in splits.items()))


if __name__ == "__main__":
    parser = stage_parser(__doc__, "prepared", "out")
    run_stage("split", parser, main)
