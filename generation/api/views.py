"""v3 API views: validate with a serializer, call a service, render a body from responses."""

from django.conf import settings
from rest_framework.response import Response
from rest_framework.views import APIView

from generation import selectors, services
from generation.api import responses
from generation.api.authentication import ApiKeyAuthentication
from generation.api.serializers import FetchSerializer, Text2ImgSerializer


def base_url(request) -> str:
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


class V3View(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = []


class GenerationView(V3View):
    kind = None
    serializer_class = None

    def post(self, request):
        serializer = self.serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.request_generation(
            api_key=request.auth, kind=self.kind, params=serializer.validated_data, base_url=base_url(request)
        )
        return Response(responses.for_request(job))


class Text2ImgView(GenerationView):
    kind = "text2img"
    serializer_class = Text2ImgSerializer


class FetchView(V3View):
    def post(self, request, job_id=None):
        serializer = FetchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.fetch_job(user=request.user, job_id=job_id or serializer.validated_data["request_id"])
        return Response(responses.for_fetch(job))


class SystemLoadView(V3View):
    def post(self, request):
        return Response(selectors.system_load())
