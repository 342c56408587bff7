"""The RQ worker class: loads SDXL once at start and runs every job in the same process."""

from rq import SimpleWorker

from generation.predictor import get_predictor


class GenerationWorker(SimpleWorker):
    """A SimpleWorker (no fork per job) whose process keeps the pipeline resident."""

    def work(self, *args, **kwargs):
        get_predictor().load()
        return super().work(*args, **kwargs)
