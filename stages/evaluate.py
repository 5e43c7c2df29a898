"""Stage evaluate: the seed's IoU/Dice per split, pooled figures, confusion matrix and plots,
and the DSB2018 metric at original resolution for the splits predicted there."""

from pathlib import Path

from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.evaluate import evaluate
from nuclei_unet.io import read_json
from nuclei_unet.params import load_section
from nuclei_unet.predict import PREDICTIONS_FILE, load_predictions
from nuclei_unet.prepare import LABELS_DIR, load_prepared
from nuclei_unet.segment import FULL_DIR


def main(args) -> None:
    params = load_section(args.params, "evaluate")
    pred_ids, _, pred_masks = load_predictions(Path(args.predictions) / PREDICTIONS_FILE)
    evaluate(
        load_prepared(args.prepared),
        read_json(args.split),
        pred_ids,
        pred_masks,
        params,
        Path(args.prepared) / LABELS_DIR,
        Path(args.predictions) / FULL_DIR,
        {"metrics": args.metrics, "csv": args.csv, "curve": args.curve, "plots": args.plots},
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "prepared", "split", "predictions", "metrics", "csv", "curve", "plots")
    run_stage("evaluate", parser, main)
