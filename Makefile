# Two commands a user needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all bench clean

$(BIN)/holdpose: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[onnx,diffusion,ray,test,people]"
	touch $(BIN)/holdpose

demo: $(BIN)/holdpose
	$(BIN)/holdpose demo -o demo_output

test: $(BIN)/holdpose
	$(BIN)/python -m pytest -q

test-all: $(BIN)/holdpose
	$(BIN)/python -m pytest -q -m "slow or not slow"

# The foundation's figures (extraction, rendering, accuracy, refine, align, the animator, evaluation,
# studio, batch, reliability); every other table in the README names its own bench/ command beside it
# (people, the animator's look, closed loop, the diffusion backends and research systems).
bench: $(BIN)/holdpose
	for b in extract render accuracy refine align animate evaluate studio batch reliability; do $(BIN)/python bench/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) demo_output
