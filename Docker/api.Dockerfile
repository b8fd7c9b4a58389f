# The model service. Same command as `make serve`: uvicorn + the app factory, workers from settings.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 POETRY_VIRTUALENVS_CREATE=false
WORKDIR /app
RUN pip install --no-cache-dir "poetry>=2.1,<3"
COPY pyproject.toml poetry.lock README.md ./
RUN poetry install --only main --no-root --no-interaction --compile
COPY src ./src
COPY params.yaml ./
RUN poetry install --only main --no-interaction --compile
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# API_HOST/API_PORT/API_WORKERS come from the environment (see .env.example).
CMD ["sh", "-c", "exec flightdelay serve --host 0.0.0.0 --port 8000 --workers ${API_WORKERS:-1}"]
