# Rendered by `flightdelay stack compose` (stack/dockerfiles.py): do not edit.
# The model service: only what serving needs (the `serving` extra).
# docker-compose.yaml runs the spec's command (uvicorn + the app factory, as natively)
# and sets MODEL_NAME from params.yaml register.model_name (the image holds none).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 POETRY_VIRTUALENVS_CREATE=false
WORKDIR /app
RUN pip install --no-cache-dir "poetry>=2.1,<3"
COPY pyproject.toml poetry.lock README.md ./
RUN poetry install --only main --extras serving --no-root --no-interaction --compile
COPY src ./src
RUN poetry install --only main --extras serving --no-interaction --compile
RUN useradd --create-home --uid 10001 --user-group flightdelay
USER 10001
EXPOSE 8000
CMD ["sh", "-c", "exec uvicorn flightdelay.serving.app:create_app --factory --http flightdelay.serving.protocol:LimitedHttpToolsProtocol --host 0.0.0.0 --port 8000 --workers ${API_WORKERS:-1} --no-access-log"]
