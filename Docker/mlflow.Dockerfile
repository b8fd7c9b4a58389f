# MLflow tracking server: Postgres backend store, artifacts proxied to S3 (MinIO).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "mlflow==3.17.2" "psycopg2-binary>=2.9" "boto3==1.43.117"
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health')"
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
CMD ["sh", "-c", "exec mlflow server --backend-store-uri postgresql+psycopg2://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_MLFLOW_DB} --artifacts-destination s3://${S3_BUCKET_MLFLOW}/artifacts --serve-artifacts --host 0.0.0.0 --port 5000 --workers 2 --allowed-hosts '*'"]
