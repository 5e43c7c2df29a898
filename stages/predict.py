"""Stage predict: masks, instance labels and a Kaggle submission at original size for the
chosen splits; probabilities and masks at training size (for a model trained on whole 128-px
images, of every image; for one trained on native crops, its full-size probabilities of the
chosen splits brought to that size); and the model file users apply (the trained model with
these predict settings stored in it)."""

import logging

import numpy as np

from nuclei_unet.config.load import load_section
from nuclei_unet.data.prepare import HALF
from nuclei_unet.infer.probs import predict_probs, threshold
from nuclei_unet.infer.segment import predict_full_res
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import atomic_path, read_json
from nuclei_unet.io.layout import FULL_DIR, PREDICTIONS_FILE
from nuclei_unet.io.predictions import save_predictions
from nuclei_unet.io.prepared import load_prepared
from nuclei_unet.model.checkpoint import add_predict_settings, load_checkpoint
from nuclei_unet.model.exposure import fit_exposures
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
    wanted = {k for split in params.full_res_splits for k in splits[split]}
    samples = [s for s in list_samples(args.raw) if s.id in wanted]
    with atomic_path(args.out) as out:
        out.mkdir()
        small = predict_full_res(
            checkpoint.model, samples, params, checkpoint.input_size, out / FULL_DIR, device,
            dtype, checkpoint.scale, data.images.shape[1],
        )
        if checkpoint.scale.native:
            # a native-scale model sees no 128-px image: its training-size masks are its
            # full-size masks brought to that size by the rule the true masks followed (at
            # least half of the pixel covered); "probs" then holds the covered fraction
            ids = [k for k in ids if k in small]
            size = data.images.shape[1:3]
            probs = np.stack([small[k] for k in ids]) if ids else np.zeros((0, *size), np.float32)
            masks = (probs >= HALF).astype(np.uint8)
        else:
            images = data.images[data.index(ids)]
            if params.exposure == "fit":
                # the range was recorded on these training-size images: fit them as the
                # full-size path fits whole images
                images = fit_exposures(images, checkpoint.scale.intensity, ids)
            probs = predict_probs(
                checkpoint.model, images, params.batch_size, device=device, dtype=dtype,
                tta=params.tta, normalize=checkpoint.scale.normalize,
            )
            masks = threshold(probs, params.threshold)
        save_predictions(out / PREDICTIONS_FILE, ids, probs, masks)
    add_predict_settings(args.trained, args.model, params)
    logging.info(
        "predicted %d images (threshold %.2f), %d at full resolution (%s, %s); %s carries "
        "these settings", len(ids), params.threshold, len(samples), params.mode,
        params.instances, args.model,
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "trained", "prepared", "split", "raw", "out", "model")
    run_stage("predict", parser, main)
