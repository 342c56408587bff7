"""The worker's code: the only package that imports torch, diffusers and transformers.

Two library warnings that tell an operator nothing are dropped here, before those libraries load:
transformers' "requires torchvision (not installed)" (its PIL image processors are what we use) and
diffusers' "modules ... that should be kept in float32: []" (printed with an empty list whenever a
pipeline is derived with `from_pipe`)."""

import logging


def _drop(logger_name: str, text: str):
    logging.getLogger(logger_name).addFilter(lambda record: text not in record.getMessage())


_drop("transformers.utils.import_utils", "requires torchvision (not installed)")
_drop("diffusers.models.modeling_utils", "that should be kept in float32: []")
