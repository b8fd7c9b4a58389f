# Rendered by `flightdelay stack compose` (stack/dockerfiles.py): do not edit.
# The DVC pipeline (`dvc repro`): the `pipeline` extra and git, on a checkout
# mounted at /project (docker-compose.yaml's `pipeline` service, profile `pipeline`),
# pointed at the stack's Postgres and MLflow by the environment.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* && git config --system --add safe.directory /project
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 POETRY_VIRTUALENVS_CREATE=false
WORKDIR /app
RUN pip install --no-cache-dir "poetry>=2.1,<3"
COPY pyproject.toml poetry.lock README.md ./
RUN poetry install --only main --extras pipeline --no-root --no-interaction --compile
COPY src ./src
RUN poetry install --only main --extras pipeline --no-interaction --compile
RUN useradd --create-home --uid 10001 --user-group flightdelay
USER 10001
WORKDIR /project
CMD ["dvc", "repro"]
