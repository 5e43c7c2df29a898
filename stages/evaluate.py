"""Stage evaluate: the seed's IoU/Dice per split, pooled figures, confusion matrix and plots,
and the DSB2018 metric and instance panels at original resolution for the splits predicted
there."""

from pathlib import Path

from nuclei_unet.config.load import load_section
from nuclei_unet.evaluate.report import Outputs, evaluate
from nuclei_unet.io.files import read_json
from nuclei_unet.io.layout import FULL_DIR, LABELS_DIR, PREDICTIONS_FILE
from nuclei_unet.io.predictions import load_predictions
from nuclei_unet.io.prepared import load_prepared
from nuclei_unet.stage import run_stage, stage_parser


def main(args) -> None:
    params = load_section(args.params, "evaluate")
    outputs = Outputs(
        Path(args.metrics), Path(args.details), Path(args.csv), Path(args.curve), Path(args.plots)
    )
    evaluate(
        load_prepared(args.prepared),
        read_json(args.split),
        load_predictions(Path(args.predictions) / PREDICTIONS_FILE),
        params,
        raw_dir=Path(args.raw),
        truth_dir=Path(args.prepared) / LABELS_DIR,
        full_dir=Path(args.predictions) / FULL_DIR,
        outputs=outputs,
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__, "raw", "prepared", "split", "predictions", "metrics", "details", "csv", "curve",
        "plots",
    )
    run_stage("evaluate", parser, main)
