# One image for the worker and the API (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Exact versions with their hashes first (make lock refreshes the file), then the
# service itself without resolving anything again.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY partners ./partners
COPY workflows ./workflows
COPY store ./store
COPY activities ./activities
COPY starter ./starter
COPY worker.py ./
RUN pip install --no-deps . && useradd --system --uid 10001 app

USER app
EXPOSE 8000
CMD ["partners-worker"]
