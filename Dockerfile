# One image for the API and the GPU workers (PyPI's torch wheels bring their CUDA libraries).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY store ./store
COPY migrations ./migrations
COPY worker ./worker
COPY generator ./generator
COPY filter ./filter
COPY classify ./classify
COPY ingest ./ingest
COPY training ./training
COPY cli ./cli
RUN pip install --no-cache-dir .
ENV CTRLGENAUG_DATA_DIR=/data
EXPOSE 8000
CMD ["ctrlgenaug", "api", "--host", "0.0.0.0", "--port", "8000"]
