"""The GPU worker: Celery app and tasks that generate a job's banks, filter the job and export its database."""
