# Image for the query service with the bundled corpus indexed at build time.
# (Not exercised in CI: the development machines have no Docker engine.)
FROM python:3.11-slim
ENV DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSTRUCTURED_DISABLE_NOTICE=1 \
    PIP_NO_CACHE_DIR=1 BOARDPAPERS_INDEX_DIR=/data/index
WORKDIR /app
COPY pyproject.toml README.md ./
COPY indexer indexer
COPY service service
COPY evals evals
COPY corpus corpus
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -e . \
 && python -m indexer build corpus --index /data/index --no-progress
EXPOSE 8000
CMD ["python", "-m", "service", "--index", "/data/index", "--host", "0.0.0.0", "--port", "8000"]
