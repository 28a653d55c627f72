# One image for web, worker, beat and runner; the command picks the role (see Procfile).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git bubblewrap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=build DJANGO_ALLOWED_HOSTS=build DJANGO_SETTINGS_MODULE=config.settings.production \
    python manage.py collectstatic --noinput
ENV DJANGO_SETTINGS_MODULE=config.settings.production PYTHONUNBUFFERED=1
