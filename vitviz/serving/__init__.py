"""Serving many sessions from one model: a queue that tells each its place, and a worker that batches.

* :mod:`~vitviz.serving.queue`: :class:`WorkQueue` (first come, first served; each key done once),
  :class:`Ticket` (a future that knows its :class:`Place`), :class:`ServiceTimes` (measured seconds per job).
* :mod:`~vitviz.serving.batcher`: :class:`Batcher` (the worker thread; batches within a time window where
  batching pays) and :func:`batch_policy` (on for CUDA, off on the CPU; ``VITVIZ_BATCH_WINDOW_MS``).

Nothing here knows torch or streamlit: the app (``vitviz_app.loaders``) gives the batcher its work
(``vitviz.pipeline.run_batch``) and draws the place while a session waits.
"""
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS, Batcher, BatchPolicy, batch_policy
from .queue import Cancelled, Job, Place, ServiceTimes, Ticket, WorkQueue

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_WINDOW_MS", "BatchPolicy", "Batcher", "Cancelled", "Job", "Place",
           "ServiceTimes", "Ticket", "WorkQueue", "batch_policy"]
