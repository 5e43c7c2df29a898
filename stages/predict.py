"""Stage predict: probabilities and thresholded masks for the train, val and test images."""

import logging

from nuclei_unet.checkpoint import load_model
from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.io import read_json
from nuclei_unet.params import load_section
from nuclei_unet.predict import predict_probs, save_predictions, threshold
from nuclei_unet.prepare import load_prepared


def main(args) -> None:
    params = load_section(args.params, "predict")
    model = load_model(args.model)
    data = load_prepared(args.prepared)
    splits = read_json(args.split)
    ids = [k for split in ("train", "val", "test") for k in splits[split]]
    probs = predict_probs(model, data.images[data.index(ids)], params.batch_size)
    save_predictions(args.out, ids, probs, threshold(probs, params.threshold))
    logging.info("predicted %d images (threshold %.2f)", len(ids), params.threshold)


if __name__ == "__main__":
    parser = stage_parser(__doc__, "model", "prepared", "split", "out")
    run_stage("predict", parser, main)
