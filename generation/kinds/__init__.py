"""The registry of the kinds of job and the API operations that ask for them: everything that depends on
which kinds there are is derived from here (Job.kind's choices, the serializers, every API family's
routes, the image-editing operations, the worker's predictors, the playground's forms). A kind is one
module of this package; docs/adding-a-kind.md says how to add one."""

from generation.kinds import (
    base64_crop,
    controlnet,
    img2img,
    img_mixer,
    inpaint,
    outpaint,
    removebg_mask,
    super_resolution,
    text2img,
    training,
)
from generation.kinds.base import JobParams, Kind, Operation

KINDS: dict[str, Kind] = {}
OPERATIONS: dict[str, Operation] = {}
OWNER: dict[str, Kind] = {}  # operation name -> the kind it makes


def register(kind: Kind):
    """Add a kind and its operations (the kinds below, and a test's throw-away kind)."""
    KINDS[kind.name] = kind
    for operation in kind.operations:
        OPERATIONS[operation.name] = operation
        OWNER[operation.name] = kind


def unregister(kind: Kind):
    KINDS.pop(kind.name, None)
    for operation in kind.operations:
        OPERATIONS.pop(operation.name, None)
        OWNER.pop(operation.name, None)


for _module in (
    text2img,
    img2img,
    inpaint,
    controlnet,
    outpaint,
    img_mixer,
    removebg_mask,
    super_resolution,
    training,
    base64_crop,
):
    register(_module.KIND)


def get(name: str) -> Kind:
    return KINDS[name]


def predictors_serving(queues: list[str], generation_queues: list[str]) -> set[str]:
    """The predictors a worker that serves `queues` needs: those of the kinds with a queue of their own
    among them (training), and every other kind's when it serves a generation queue."""
    generation = bool(set(queues) & set(generation_queues))
    return {
        kind.predictor
        for kind in KINDS.values()
        if (kind.params.queue in queues) or (kind.params.queue is None and generation)
    }


def own_queues() -> set[str]:
    """The queues kinds have to themselves (training's): long background work."""
    return {kind.params.queue for kind in KINDS.values() if kind.params.queue}


def parameters(kind: str, data: dict) -> JobParams:
    """A job's stored parameters, typed."""
    return KINDS[kind].params.from_dict(data)


def cost(params: JobParams) -> int:
    """Credits a job with these parameters costs."""
    return KINDS[params.kind].cost(params)


def serializer(operation: str, family: str = "") -> type | None:
    """The serializer that reads a request for `operation` (in `family`, when one reads it its own way)."""
    found = OPERATIONS.get(operation)
    return found and found.family_serializers.get(family, found.serializer)


def routes() -> list[tuple[str, str, Operation]]:
    """(API family, path in it, operation) for every operation of every kind."""
    return [(family, path, operation) for operation in OPERATIONS.values() for family, path in operation.routes.items()]


def offered(family: str) -> list[str]:
    """The operations `family` serves, by name."""
    return [operation.name for operation in OPERATIONS.values() if family in operation.routes]


def playground() -> list[Operation]:
    """The operations the playground offers, in the registry's order."""
    return [operation for operation in OPERATIONS.values() if operation.form]


def form_sections() -> dict[str, str]:
    """Each playground form section with the operations that show it (space-separated, as the page's
    `data-for` attributes take them)."""
    sections: dict[str, list[str]] = {}
    for operation in playground():
        for section in operation.form:
            sections.setdefault(section, []).append(operation.name)
    return {section: " ".join(names) for section, names in sections.items()}
