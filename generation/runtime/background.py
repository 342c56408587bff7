"""Background removal: a library segmentation model (U2-Net or IS-Net exported to ONNX, as the rembg
project publishes them) run with onnxruntime. The image is scaled to the model's input, normalised as
those models were trained (ImageNet mean and deviation), and the saliency map it gives back, stretched to
0-255 and scaled to the image's size, is the mask: white = the subject."""

import logging
import time
from collections import OrderedDict

import cv2
import numpy as np
import onnxruntime
from django.conf import settings
from PIL import Image, ImageOps

from generation.kinds.removebg_mask import RemoveBgParams
from generation.runtime.predictors import GenerationError, JobInput, LocalModel, Prediction, Predictor

logger = logging.getLogger(__name__)

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
DEFAULT_SIDE = 320  # U2-Net's input, for a model whose input size is not fixed
SESSIONS_KEPT = 2


class BackgroundRemovalPredictor(Predictor):
    """Keeps the last SESSIONS_KEPT models' onnxruntime sessions; nothing to load before the first job."""

    def __init__(self, *, device: str, weights=None):
        super().__init__(device=device, weights=weights)
        self.sessions = OrderedDict()  # content hash -> InferenceSession

    @property
    def model_name(self) -> str:
        return "background-removal"

    def setup(self):
        pass

    def predict(self, job: JobInput, on_step=None) -> Prediction:
        params: RemoveBgParams = job.params
        started = time.perf_counter()
        image = job.images["image"]
        mask = self.mask(job.segmenter, image)
        if params.post_process_mask:
            mask = post_process(mask)
        if params.inverse_mask:
            mask = ImageOps.invert(mask)
        if params.only_mask:
            result = mask
        else:
            result = image.convert("RGBA")
            result.putalpha(mask)
        if on_step is not None:
            on_step(1, 1)
        return Prediction(images=[result], seeds=params.seeds, seconds=time.perf_counter() - started)

    def mask(self, model: LocalModel, image: Image.Image) -> Image.Image:
        session = self._session(model)
        entry = session.get_inputs()[0]
        height, width = (side if isinstance(side, int) else DEFAULT_SIDE for side in entry.shape[2:4])
        if max(height, width) > settings.SEGMENTATION_MAX_INPUT_SIDE:  # a model added before it was checked
            raise GenerationError(f"Failed: the segmentation model {model.id!r} takes images over the size allowed")
        pixels = np.asarray(image.convert("RGB").resize((width, height), Image.LANCZOS), dtype=np.float32)
        pixels = (pixels / max(float(pixels.max()), 1e-6) - MEAN) / STD
        batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)
        try:
            saliency = session.run(None, {entry.name: batch})[0][0, 0]
        except Exception as exc:  # a graph of another interface: onnxruntime's errors share no base class
            raise GenerationError(f"Failed: the segmentation model {model.id!r} cannot be run") from exc
        low, high = float(saliency.min()), float(saliency.max())
        scaled = (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)
        mask = Image.fromarray((scaled * 255).round().astype(np.uint8))
        return mask.resize(image.size, Image.LANCZOS)

    def _session(self, model: LocalModel):
        key = model.content_hash or str(model.path)
        if key in self.sessions:
            self.sessions.move_to_end(key)
            return self.sessions[key]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device != "cpu" else []
        available = [name for name in providers if name in onnxruntime.get_available_providers()]
        try:
            session = onnxruntime.InferenceSession(
                str(model.path), options, providers=available or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors share no base class but Exception
            raise GenerationError(f"Failed: the segmentation model {model.id!r} cannot be loaded") from exc
        self.sessions[key] = session
        while len(self.sessions) > SESSIONS_KEPT:
            self.sessions.popitem(last=False)
        logger.info("Loaded segmentation model %s", model.id)
        return session


def post_process(mask: Image.Image) -> Image.Image:
    """rembg's clean-up: an opening to drop specks, a blur, then a hard threshold."""
    array = np.asarray(mask)
    array = cv2.morphologyEx(array, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    array = cv2.GaussianBlur(array, (5, 5), sigmaX=2, sigmaY=2, borderType=cv2.BORDER_DEFAULT)
    return Image.fromarray(np.where(array < 127, 0, 255).astype(np.uint8))
