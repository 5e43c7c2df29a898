"""Stage evaluate: the seed's IoU/Dice per split, pooled figures, confusion matrix and plots."""

from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.evaluate import evaluate
from nuclei_unet.io import read_json
from nuclei_unet.params import load_section
from nuclei_unet.predict import load_predictions
from nuclei_unet.prepare import load_prepared


def main(args) -> None:
    params = load_section(args.params, "evaluate")
    pred_ids, _, pred_masks = load_predictions(args.predictions)
    evaluate(
        load_prepared(args.prepared),
        read_json(args.split),
        pred_ids,
        pred_masks,
        params,
        args.metrics,
        args.csv,
        args.plots,
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "prepared", "split", "predictions", "metrics", "csv", "plots")
    run_stage("evaluate", parser, main)
