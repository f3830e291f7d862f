"""The GPU worker: Celery app and tasks that generate a job's banks, filter it and export its database."""
