"""Running sioworkers jobs on Celery workers (task ``sio.celery.job.sioworkers_job``)."""
