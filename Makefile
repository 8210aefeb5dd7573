# Two commands for a fresh machine:  `make demo`  (a real style transfer)  and  `make test`.
# Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PAIR   ?= 1
SIZE   ?= 512
DATA   ?= $(or $(PHOTOSTYLE_DATA),data/luan2017)

.PHONY: install demo test figures bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name photostyle --display-name "Python (photostyle)"
	touch $@

install: $(VENV)/.installed

# A real style transfer of Luan et al. pair $(PAIR) with its gold masks: the paper's full model
# (ImageNet VGG-19, downloaded once by torchvision into ~/.cache/torch/hub).
demo: install
	@test -f "$(DATA)/input/in$(PAIR).png" || $(PY) data/download_luan2017.py --dest "$(DATA)" --ids $(PAIR)
	$(VENV)/bin/photostyle transfer "$(DATA)/input/in$(PAIR).png" "$(DATA)/style/tar$(PAIR).png" \
		--content-mask "$(DATA)/segmentation/in$(PAIR).png" --style-mask "$(DATA)/segmentation/tar$(PAIR).png" \
		--preset full --size $(SIZE) -o results/demo/pair$(PAIR)_full.png --overwrite
	@echo "result: results/demo/pair$(PAIR)_full.png (metadata: results/demo/pair$(PAIR)_full.png.json)"

test: install
	$(VENV)/bin/pytest

bench: install
	$(PY) benchmarks/bench_engine.py

clean-venv:
	rm -rf $(VENV)

# Every notebook through papermill: PROFILE=ci (tiny, random weights, minutes) or paper (the paper's settings).
PROFILE ?= ci
figures: install
	$(PY) -m photostyle_lib.experiments run --profile $(PROFILE)
