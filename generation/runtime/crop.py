"""A photo made square at a training's size: its centre square (no face detector is installed), or the
whole photo resized."""

import time

from PIL import Image, ImageOps

from generation.runtime.predictors import JobInput, Prediction, Predictor


class CropPredictor(Predictor):
    """Nothing to load."""

    @property
    def model_name(self) -> str:
        return "centre-crop"

    def setup(self):
        pass

    def predict(self, job: JobInput, on_step=None) -> Prediction:
        started = time.perf_counter()
        params, image = job.params, job.images["image"]
        size = (params.side, params.side)
        square = ImageOps.fit(image, size, Image.LANCZOS) if params.crop else image.resize(size, Image.LANCZOS)
        if on_step is not None:
            on_step(1, 1)
        return Prediction(images=[square], seeds=params.seeds, seconds=time.perf_counter() - started)
