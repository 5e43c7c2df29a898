"""Stage download: generate the synthetic dataset or unpack a local DSB2018 zip into data/raw."""

from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.download import extract_zip
from nuclei_unet.params import load_section, load_seed
from nuclei_unet.synthetic import write_dataset


def main(args) -> None:
    params = load_section(args.params, "download")
    if params.source == "synthetic":
        write_dataset(args.out, load_seed(args.params), params.synthetic)
    else:
        extract_zip(params.path, args.out, params.sha256)


if __name__ == "__main__":
    parser = stage_parser(__doc__, "out")
    run_stage("download", parser, main)
