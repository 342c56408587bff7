"""The hosted training API's views: lora_fine_tune and fine_tune start a training, fine_tune_status,
finetune_list, cancel_training (also spelt cancle_training, as the hosted docs' example and client do)
and finetune/delete follow it. The same under /api/sandbox/v3/: free, capped to a few steps."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from generation import services
from generation.answers import training as answers
from generation.api.views import KEY_ONLY, V3View
from generation.inputs import storage
from generation.kinds.training import DREAMBOOTH, LORA, FineTuneSerializer, LoraFineTuneSerializer
from generation.web.throttling import GenerationRateThrottle


class TrainView(V3View):
    """Queue a training (never waited for: it takes minutes) and answer its id."""

    serializer_class = LoraFineTuneSerializer
    throttle_classes = [GenerationRateThrottle]

    def post(self, request, sandbox=False, **kwargs):
        serializer = self.serializer_class(data=request.data, context={"sandbox": sandbox})
        serializer.is_valid(raise_exception=True)
        submission = serializer.validated_data
        job = services.request_generation(
            user=request.user,
            api_key=request.auth,
            params=submission["params"],
            inputs=submission["inputs"],
            base_url=storage.base_url_for(request),
            idempotency_key=request.headers.get("Idempotency-Key", "") or submission["idempotency_key"],
            request_hash=services.request_hash(submission["params"].kind, request.data),
        )
        return Response(answers.submitted(job))


class DreamBoothView(TrainView):
    serializer_class = FineTuneSerializer


TRAINING_BODY = OpenApiTypes.OBJECT  # the hosted envelope: docs/api.md, "Training: your own LoRA"


@extend_schema(
    request=KEY_ONLY, responses=TRAINING_BODY, summary="Where a training stands: stage, progress, loss, samples"
)
class TrainingStatusView(V3View):
    def post(self, request, training_id, **kwargs):
        return Response(answers.status(services.own_training(request.user, training_id)))


@extend_schema(request=KEY_ONLY, responses=TRAINING_BODY, summary="This account's trainings, newest first")
class TrainingListView(V3View):
    def post(self, request, **kwargs):
        return Response(answers.listing(services.trainings(request.user)))


@extend_schema(request=KEY_ONLY, responses=TRAINING_BODY, summary="Stop a training, refunded")
class CancelTrainingView(V3View):
    def post(self, request, training_id, **kwargs):
        return Response(answers.canceled(services.cancel_training(request.user, training_id)))


@extend_schema(request=KEY_ONLY, responses=TRAINING_BODY, summary="Delete a training and the model it made")
class DeleteTrainingView(V3View):
    def post(self, request, training_id, **kwargs):
        services.delete_training(request.user, training_id)
        return Response(answers.deleted(training_id))


TRAINING_ID = r"(?P<training_id>[A-Za-z0-9_-]{1,100})"
ROUTES = {
    LORA.name: TrainView,
    DREAMBOOTH.name: DreamBoothView,
    f"fine_tune_status/{TRAINING_ID}": TrainingStatusView,
    "finetune_list": TrainingListView,
    f"cancel_training/{TRAINING_ID}": CancelTrainingView,
    f"cancle_training/{TRAINING_ID}": CancelTrainingView,
    f"finetune/delete/{TRAINING_ID}": DeleteTrainingView,
}
