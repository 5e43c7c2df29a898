"""The names of the files that stages hand each other inside their output folders."""

DATASET_FILE = "dataset.npz"  # prepare: the arrays at training size
LABELS_DIR = "labels"  # prepare: full-resolution instance labels, <id>.png (uint16)
PREDICTIONS_FILE = "predictions.npz"  # predict: probabilities and masks at training size
FULL_DIR = "full"  # predict: <id>_mask.png and <id>_labels.png at full resolution
MASK_SUFFIX = "_mask.png"  # predict and nuclei-unet predict: <stem>_mask.png, uint8 0/255
LABELS_SUFFIX = "_labels.png"  # the same: <stem>_labels.png, uint16 instance labels
SUBMISSION_FILE = "submission.csv"  # predict: Kaggle submission of the full-resolution splits
