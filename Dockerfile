# One Dockerfile for the API and the GPU workers. The dependencies are installed from pyproject.toml alone, in a
# layer a code change does not rebuild. TORCH_INDEX_URL picks the torch build: empty = PyPI's (CUDA libraries
# included, for workers); https://download.pytorch.org/whl/cpu for the API image (docker-compose.yml).
FROM python:3.11.11-slim
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 ctrlgenaug && mkdir /data && chown ctrlgenaug /data
WORKDIR /app

COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
    && if [ -n "$TORCH_INDEX_URL" ]; then \
         grep -E '^(torch|torchvision)[<>=]' /tmp/requirements.txt > /tmp/torch.txt \
         && pip install --index-url "$TORCH_INDEX_URL" -r /tmp/torch.txt; \
       fi \
    && pip install -r /tmp/requirements.txt

# the packages pyproject.toml installs (.dockerignore lets only them and README.md in)
COPY . ./
RUN pip install --no-deps .

USER ctrlgenaug
ENV CTRLGENAUG_DATA_DIR=/data
EXPOSE 8000
CMD ["ctrlgenaug", "api", "--host", "0.0.0.0", "--port", "8000"]
