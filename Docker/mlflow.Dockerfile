# Rendered by `flightdelay stack compose` (stack/dockerfiles.py): do not edit.
# MLflow tracking server with its basic-auth app and --expose-prometheus, the Postgres
# driver and boto3 for its S3 artifacts. The command and every setting come from
# docker-compose.yaml, rendered from the stack spec (the command the native stack runs).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "prometheus-flask-exporter==0.23.2" "psycopg2-binary>=2.9" "boto3==1.43.117"
RUN useradd --create-home --uid 10001 --user-group flightdelay
USER 10001
WORKDIR /home/flightdelay
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
