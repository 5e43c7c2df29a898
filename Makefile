# `make run`: set up .venv and run the whole pipeline (dvc repro) on the default params.
# `make test`: set up .venv and run the test suite.
# `make seed`: run the seed notebook's exact recipe as a DVC experiment named "seed".
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# dvc.yaml's commands call `python`: the venv's bin must come first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: venv run test seed seed-recipe clean

# The seed notebook's recipe, as overrides of params.yaml's defaults (which are our best
# recipe); the test suite runs exactly this line (`make -s seed-recipe` prints it).
SEED_RECIPE := -S prepare.mask_rule=any -S prepare.native.enabled=false -S model.norm=none \
	-S train.loss=bce -S train.scheduler=none -S train.epochs=40 -S train.patience=2 \
	-S train.input=resized -S train.edge=false \
	-S train.augment.flip=false -S train.augment.rot90=false \
	-S train.augment.elastic_sigma=0.0 -S train.augment.gray=0.0 \
	-S train.augment.invert=0.0 -S train.augment.channel_shuffle=0.0 -S train.augment.hed=0.0 \
	-S predict.tta=false -S predict.exposure=keep -S predict.mode=resize -S predict.instances=watershed \
	-S predict.threshold=0.5 -S predict.min_size=10 \
	-S train.precision=fp32 -S predict.precision=fp32 -S train.keep=best

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a loose requirement would pull a multi-GB CUDA build
	$(VENV)/bin/pip install -r requirements.txt
	$(VENV)/bin/pip install -e ".[test]"
	# the page template .dvc/config names: `dvc plots show` then works without a network
	$(VENV)/bin/nuclei-unet plots-template --out .dvc/offline_plots.html
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

seed: $(STAMP)
	$(VENV)/bin/dvc exp run -n seed $(SEED_RECIPE)

seed-recipe:
	@echo $(SEED_RECIPE)

clean:
	rm -rf $(VENV) dvc_plots .pytest_cache
