# MLflow tracking server of the compose stack: the release the project locks (poetry.lock), with
# the Postgres driver and boto3 for its S3 artifacts. The command, the backend store
# (MLFLOW_BACKEND_STORE_URI) and every other setting come from docker-compose.yaml, rendered from
# the stack spec (the same command the native stack runs).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "prometheus-flask-exporter==0.23.2" "psycopg2-binary>=2.9" "boto3==1.43.117"
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
