"""Stage download: the synthetic dataset, a local zip, or DSB2018 from the network, in data/raw."""

from nuclei_unet.config.load import load_section, load_seed
from nuclei_unet.data.download import download
from nuclei_unet.stage import run_stage, stage_parser


def main(args) -> None:
    download(load_section(args.params, "download"), load_seed(args.params), args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__, "out")
    run_stage("download", parser, main)
