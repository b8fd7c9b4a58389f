# The model service: only what serving needs (the project's `serving` extra, from poetry.lock).
# docker-compose.yaml runs the spec's command (uvicorn + the app factory, as natively) and sets
# MODEL_NAME from params.yaml register.model_name, so the image holds no params.yaml.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 POETRY_VIRTUALENVS_CREATE=false
WORKDIR /app
RUN pip install --no-cache-dir "poetry>=2.1,<3"
COPY pyproject.toml poetry.lock README.md ./
RUN poetry install --only main --extras serving --no-root --no-interaction --compile
COPY src ./src
RUN poetry install --only main --extras serving --no-interaction --compile
EXPOSE 8000
CMD ["sh", "-c", "exec uvicorn flightdelay.serving.app:create_app --factory --host 0.0.0.0 --port 8000 --workers ${API_WORKERS:-1} --no-access-log"]
