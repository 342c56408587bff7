"""docs/adding-a-kind.md, proven: a throw-away kind — one module's worth of code (its parameters,
serializer and operation) and its predictor, registered only in this test — is routed, validated, priced,
run by the worker and answered, with no other module touched."""

import importlib
import io
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest
from django.urls import clear_url_caches
from PIL import Image
from rest_framework import serializers

import config.urls
import generation.urls
from billing import credits
from billing.models import Plan
from generation import kinds
from generation.kinds.base import V6_IMAGES, JobParams, Kind, Operation
from generation.kinds.fields import LenientNumberField, LenientTextField
from generation.kinds.requests import JobSerializer
from generation.models import Job
from generation.runtime.predictors import Prediction, Predictor
from generation.runtime.registry import PREDICTORS
from tests.conftest import download
from tests.test_worker import run_burst


@dataclass(kw_only=True)
class SwatchParams(JobParams):
    """A plain colour: the least a kind can be."""

    kind: ClassVar[str] = "swatch"

    color: str = "#336699"
    width: int = 64
    height: int = 64

    def request_fields(self) -> dict:
        return {**super().request_fields(), "color": self.color, "width": self.width, "height": self.height}


class SwatchSerializer(JobSerializer):
    color = LenientTextField(max_length=20, required=False, default="#336699")
    width = LenientNumberField(minimum=8, maximum=256, integer=True, default=64)
    height = LenientNumberField(minimum=8, maximum=256, integer=True, default=64)
    samples = LenientNumberField(minimum=1, maximum=4, integer=True, default=1)

    def validate(self, data):
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", data["color"]):
            raise serializers.ValidationError({"color": ["The color must be #rrggbb."]})
        params = SwatchParams(color=data["color"], width=data["width"], height=data["height"], samples=data["samples"])
        return self.submission(data, params)


KIND = Kind(
    params=SwatchParams,
    cost_setting="CREDITS_PER_IMAGE",
    predictor="swatch",
    operations=(
        Operation(name="swatch", serializer=SwatchSerializer, summary="A colour", routes={V6_IMAGES: "swatch"}),
    ),
)


class SwatchPredictor(Predictor):
    @property
    def model_name(self) -> str:
        return "swatch"

    def setup(self):
        pass

    def predict(self, job, on_step=None) -> Prediction:
        params = job.params
        images = [Image.new("RGB", (params.width, params.height), params.color) for _ in params.seeds]
        if on_step is not None:
            on_step(1, 1)
        return Prediction(images=images, seeds=params.seeds, seconds=0.0)


def _reload_urls():
    importlib.reload(generation.urls)
    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def swatch(account):
    """The kind registered, its routes served, and the account's jobs on a queue only this test serves."""
    kinds.register(KIND)
    PREDICTORS[KIND.predictor] = SwatchPredictor
    _reload_urls()
    Plan.objects.filter(pk=credits.account_for(account[0]).plan_id).update(priority="isolated")
    yield
    kinds.unregister(KIND)
    del PREDICTORS[KIND.predictor]
    _reload_urls()


def test_a_kind_added_as_one_module_is_routed_validated_priced_run_and_answered(api, account, swatch):
    refused = api.post("/api/v6/images/swatch", {"color": "red"})
    assert refused == {
        "status": "error",
        "message": {"color": ["The color must be #rrggbb."]},
        "messege": refused["messege"],
    }

    before = credits.account_for(account[0]).balance
    queued = api.post("/api/v6/images/swatch", {"color": "#ff0000", "samples": 2, "instant_response": "yes"})
    assert queued["status"] == "processing" and queued["fetch_result"].endswith(f"/api/v6/images/fetch/{queued['id']}")
    assert before - credits.account_for(account[0]).balance == 2  # CREDITS_PER_IMAGE x 2, reserved

    run_burst("isolated")  # the worker runs it on its predictor
    answer = api.post(f"/api/v6/images/fetch/{queued['id']}")
    assert answer["status"] == "success" and len(answer["output"]) == 2
    assert (answer["meta"]["color"], answer["meta"]["W"], answer["meta"]["H"]) == ("#ff0000", 64, 64)
    image = Image.open(io.BytesIO(download(answer["output"][0])))
    assert image.convert("RGB").getpixel((10, 10)) == (255, 0, 0)
    assert Job.objects.get(pk=queued["id"]).kind == "swatch"
