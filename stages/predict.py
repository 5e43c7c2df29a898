"""Stage predict: probabilities and masks at training size for every image, and masks,
instance labels and a Kaggle submission at original size for the chosen splits."""

import logging

from nuclei_unet.checkpoint import load_checkpoint
from nuclei_unet.cli import run_stage, stage_parser
from nuclei_unet.dataset import list_samples
from nuclei_unet.io import atomic_path, read_json
from nuclei_unet.params import load_section
from nuclei_unet.predict import PREDICTIONS_FILE, predict_probs, save_predictions, threshold
from nuclei_unet.prepare import load_prepared
from nuclei_unet.runtime import resolve_device, resolve_precision
from nuclei_unet.segment import FULL_DIR, SegmentOptions, predict_full_res


def main(args) -> None:
    params = load_section(args.params, "predict")
    device = resolve_device(params.device)
    dtype = resolve_precision(params.precision, device)
    checkpoint = load_checkpoint(args.model)
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
            checkpoint.model, samples, SegmentOptions.from_params(params),
            checkpoint.input_size, out / FULL_DIR, device, dtype,
        )
    logging.info(
        "predicted %d images (threshold %.2f), %d at full resolution (%s, %s)",
        len(ids), params.threshold, len(samples), params.mode, params.instances,
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__, "model", "prepared", "split", "raw", "out")
    run_stage("predict", parser, main)
