"""Stage predict: probabilities and masks at training size for every image, masks, instance
labels and a Kaggle submission at original size for the chosen splits, and the model file
users apply (the trained model with these predict settings stored in it)."""

import logging

from nuclei_unet.config.load import load_section
from nuclei_unet.infer.probs import predict_probs, threshold
from nuclei_unet.infer.segment import predict_full_res
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import atomic_path, read_json
from nuclei_unet.io.layout import FULL_DIR, PREDICTIONS_FILE
from nuclei_unet.io.predictions import save_predictions
from nuclei_unet.io.prepared import load_prepared
from nuclei_unet.model.checkpoint import add_predict_settings, load_checkpoint
from nuclei_unet.runtime import resolve_device, resolve_precision
from nuclei_unet.stage import run_stage, stage_parser


def main(args) -> None:
    params = load_section(args.params, "predict")
    device = resolve_device(params.device)
    dtype = resolve_precision(params.precision, device)
    checkpoint = load_checkpoint(args.trained)
    data = load_prepared(args.prepared)
    splits = read_json(args.split)
    ids = [k for split in ("train", "val", "test") for k in splits[split]]
    with atomic_path(args.out) as out:
        out.mkdir()
        images = data.images[data.index(ids)]
        probs = predict_probs(
            checkpoint.model, images, params.batch_size, device, dtype, tta=params.tta
        )
        save_predictions(out / PREDICTIONS_FILE, ids, probs, threshold(probs, params.threshold))
        wanted = {k for split in params.full_res_splits for k in splits[split]}
        samples = [s for s in list_samples(args.raw) if s.id in wanted]
        predict_full_res(
            checkpoint.model, samples, params, checkpoint.input_size, out / FULL_DIR, device, dtype
        )
    add_predict_settings(args.trained, args.model, params)
    logging.info(
        "predicted %d images (threshold %.2f), %d at full resolution (%s, %s); %s carries "
        "these settings", len(ids), params.threshold, len(samples), params.mode,
        params.instances, args.model,
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "trained", "prepared", "split", "raw", "out", "model")
    run_stage("predict", parser, main)
