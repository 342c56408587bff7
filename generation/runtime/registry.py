"""Which predictor class runs each kind of job. Kinds that share a class share its one instance (per
checkpoint, for a per-checkpoint class) and so its weights."""

from generation.runtime.background import BackgroundRemovalPredictor
from generation.runtime.predictors import Predictor
from generation.runtime.sdxl import SDXLPredictor
from generation.runtime.upscale import UpscalePredictor

PREDICTORS: dict[str, type[Predictor]] = {
    "text2img": SDXLPredictor,
    "img2img": SDXLPredictor,
    "inpaint": SDXLPredictor,
    "controlnet": SDXLPredictor,
    "outpaint": SDXLPredictor,
    "img_mixer": SDXLPredictor,
    "super_resolution": UpscalePredictor,
    "removebg_mask": BackgroundRemovalPredictor,
}
