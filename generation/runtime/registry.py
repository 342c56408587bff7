"""The predictor classes by the name a kind of job gives (Kind.predictor, generation/kinds/). Kinds that
name the same predictor share its one instance (per checkpoint, for a per-checkpoint class) and so its
weights."""

from generation.runtime.background import BackgroundRemovalPredictor
from generation.runtime.crop import CropPredictor
from generation.runtime.predictors import Predictor
from generation.runtime.sdxl import SDXLPredictor
from generation.runtime.trainer import LoraTrainer
from generation.runtime.upscale import UpscalePredictor

PREDICTORS: dict[str, type[Predictor]] = {
    "sdxl": SDXLPredictor,
    "upscale": UpscalePredictor,
    "background": BackgroundRemovalPredictor,
    "trainer": LoraTrainer,
    "crop": CropPredictor,
}
MAIN = "sdxl"  # the one whose model a worker advertises
UPSCALE = "upscale"  # the one a job's own upscaling steps run on
