"""Lenient DRF fields for what real v3 clients send, with Laravel-style messages.

Numbers may be numbers or numeric strings; "", null and "null" mean "not given"; out-of-range values
are clamped, not rejected; booleans may be yes/no/true/false.
"""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from generation.infra import images

NOT_GIVEN = ("", "null", "none", "undefined")


def label(field) -> str:
    return (field.field_name or "value").replace("_", " ")


def refuse_invalid_text(field, data):
    """A string that is not valid Unicode (a lone surrogate such as "\\ud800", which JSON can carry) is a
    validation error for its field, before anything is stored: no database takes it."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise serializers.ValidationError(f"The {label(field)} must be valid Unicode text.") from exc


class LenientMixin:
    def validate_empty_values(self, data):
        refuse_invalid_text(self, data)
        if data is None or (isinstance(data, str) and data.strip().lower() in NOT_GIVEN):
            data = empty
        return super().validate_empty_values(data)


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string"}],
        "nullable": True,
        "description": "a number or a numeric string; out-of-range values are clamped",
    }
)
class LenientNumberField(LenientMixin, serializers.Field):
    """A clamped number. `integer=True` truncates to int; `multiple_of` rounds down. A JSON integer too
    large for a float (`1` and 400 zeros) is clamped exactly, not converted."""

    def __init__(self, *, minimum=None, maximum=None, integer=False, multiple_of=None, **kwargs):
        kwargs.setdefault("required", False)
        self.minimum, self.maximum, self.integer, self.multiple_of = minimum, maximum, integer, multiple_of
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self._fail()
        if isinstance(data, int):
            value = data
        else:
            try:
                value = float(data.strip() if isinstance(data, str) else data)
            except (TypeError, ValueError, OverflowError):
                self._fail()
            if not math.isfinite(value):
                self._fail()
        if self.minimum is not None:
            value = max(self.minimum, value)
        if self.maximum is not None:
            value = min(self.maximum, value)
        if self.integer:
            value = int(value)
            if self.multiple_of:
                value -= value % self.multiple_of
        return value

    def to_representation(self, value):
        return value

    def _fail(self):
        raise serializers.ValidationError(f"The {label(self)} must be a number.")


@extend_schema_field(
    {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["yes", "no", "true", "false"]}], "nullable": True}
)
class LenientBooleanField(LenientMixin, serializers.Field):
    TRUE = {"yes", "true", "1", "on", "y"}
    FALSE = {"no", "false", "0", "off", "n"}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = str(data).strip().lower() if not isinstance(data, bool) else ("true" if data else "false")
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise serializers.ValidationError(f"The {label(self)} field must be true or false.")

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "enum": ["yes", "no", "true", "false"]}, {"type": "number"}],
        "nullable": True,
        "description": '"yes" (2x) or a factor 2-4: the images are upscaled in the same job',
    }
)
class UpscaleField(LenientMixin, serializers.Field):
    """`upscale`: "yes"/"no" (or true/false) or a factor; 1 means no upscaling, factors clamp to 1..4."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", 1)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = str(data).strip().lower() if not isinstance(data, bool) else ("true" if data else "false")
        if text in LenientBooleanField.TRUE:
            return 2
        if text in LenientBooleanField.FALSE:
            return 1
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise serializers.ValidationError('The upscale must be "yes", "no" or a number from 2 to 4.')
        return int(min(4, max(1, value)))

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "string", "nullable": True})
class LenientTextField(LenientMixin, serializers.Field):
    """A string; numbers are accepted as their text. Required ones say "The x field is required."."""

    def __init__(self, *, max_length=None, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)
        self.error_messages["required"] = "The {label} field is required."

    def fail(self, key, **kwargs):
        if key == "required":
            raise serializers.ValidationError(f"The {label(self)} field is required.")
        super().fail(key, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            raise serializers.ValidationError(f"The {label(self)} must be a string.")
        text = str(data).replace("\x00", "")  # however it came (a form's field, say): no database stores a NUL
        if self.max_length and len(text) > self.max_length:
            raise serializers.ValidationError(
                f"The {label(self)} may not be greater than {self.max_length} characters."
            )
        return text

    def to_representation(self, value):
        return value


class LenientChoiceField(LenientTextField):
    """One of `choices` (compared in lower case; numbers as their text)."""

    def __init__(self, *, choices, **kwargs):
        self.choices = [str(choice) for choice in choices]
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", None)
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data).strip().lower()
        if text not in self.choices:
            raise serializers.ValidationError(f"The {label(self)} must be one of {', '.join(self.choices)}.")
        return text


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True})
class ScalarField(serializers.Field):
    """Any JSON scalar, kept with its type (track_id)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        refuse_invalid_text(self, data)
        if isinstance(data, (dict, list)):
            raise serializers.ValidationError(f"The {label(self)} must be a string or a number.")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "string", "description": "an image URL, a base64 string or a data: URL"})
class InputImageField(LenientMixin, serializers.Field):
    """An image by URL, base64 or data URL; yields an images.ImageSource (a URL is fetched later)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def fail(self, key, **kwargs):
        if key == "required":
            raise serializers.ValidationError(f"The {label(self)} field is required.")
        super().fail(key, **kwargs)

    def to_internal_value(self, data):
        try:
            return images.parse(data, self.field_name)
        except images.ImageInputError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "an image (URL, base64 or data: URL), or a list of them",
    }
)
class InputImageListField(InputImageField):
    """One image or a list of up to `max_items`; yields a list of images.ImageSource, the first named after
    the field and the others `<field>_2`, `<field>_3`, ... (as errors name them)."""

    def __init__(self, *, max_items: int, **kwargs):
        self.max_items = max_items
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        values = data if isinstance(data, list) else [data]
        if not values or len(values) > self.max_items:
            raise serializers.ValidationError(f"The {label(self)} must be one image or a list of 1-{self.max_items}.")
        names = [self.field_name] + [f"{self.field_name}_{index}" for index in range(2, len(values) + 1)]
        try:
            return [images.parse(value, name) for value, name in zip(values, names)]
        except images.ImageInputError as exc:
            raise serializers.ValidationError(str(exc)) from exc
