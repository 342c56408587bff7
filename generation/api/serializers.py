"""The serializers of the API's requests that make no job (those that do are the kinds':
generation/kinds/)."""

from rest_framework import serializers

from generation import services
from generation.kinds.fields import InputImageField, LenientNumberField


class Base64ToUrlSerializer(serializers.Serializer):
    init_image = InputImageField(help_text="The image as base64 (or a data URL).")

    def validate_init_image(self, source):
        if source.url:
            raise serializers.ValidationError("The init image must be base64 (it is already a URL).")
        return source


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(
        minimum=0,
        maximum=services.MAX_JOB_ID,
        integer=True,
        required=False,
        default=None,
        help_text="The job id (the path's id, for clients that send it in the body).",
    )
