# The worker image: Python, this project, and the PostgreSQL client tools (pg_dump, psql).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 sqlite3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY backup_engine backup_engine
COPY config config
COPY tasks tasks
COPY worker worker
RUN useradd --create-home --uid 1000 backup && mkdir -p /backups /uploads /var/lib/beat \
 && chown backup /backups /uploads /var/lib/beat
USER backup
CMD ["python", "-m", "worker", "run"]
