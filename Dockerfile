# One image for the worker and the API (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY partners ./partners
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY worker.py ./
RUN pip install . && useradd --system --uid 10001 app

USER app
EXPOSE 8000
CMD ["partners-worker"]
