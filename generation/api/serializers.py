"""The serializers of the API's requests that make no job (those that do are the kinds':
generation/kinds/)."""

from rest_framework import serializers

from generation import services
from generation.kinds.fields import InputImageField, LenientNumberField, LenientTextField

ALIASES = ("init_image", "base64_string", "base64_image")


class Base64ToUrlSerializer(serializers.Serializer):
    """The image to keep, under the name each client gives it: image editing's `init_image`, v6's
    `base64_string`, the enterprise SDK's `base64_image`."""

    init_image = InputImageField(required=False, default=None, help_text="The image as base64 (or a data URL).")
    base64_string = InputImageField(required=False, default=None, help_text="An alias of init_image.")
    base64_image = InputImageField(required=False, default=None, help_text="An alias of init_image.")

    def validate(self, data):
        given = next(((name, data[name]) for name in ALIASES if data[name] is not None), None)
        if given is None:
            raise serializers.ValidationError({"init_image": ["The init image field is required."]})
        name, source = given
        if source.url:
            label = name.replace("_", " ")
            raise serializers.ValidationError({name: [f"The {label} must be base64 (it is already a URL)."]})
        return {"init_image": source}


class VerifyModelSerializer(serializers.Serializer):
    model_id = LenientTextField(max_length=200, help_text="A library model id.")


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(
        minimum=0,
        maximum=services.MAX_JOB_ID,
        integer=True,
        required=False,
        default=None,
        help_text="The job id (the path's id, for clients that send it in the body).",
    )
