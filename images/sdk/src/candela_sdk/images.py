"""Container image names: the one rule, in Python (``infra/images.sh`` builds the same names).

* a service image: ``<registry>/candela-<service>:<tag>`` (its :attr:`Service.image`), one per
  service package; services that declare GPUs (:attr:`Resources.gpu`) also have a GPU variant,
  the same name tagged ``<tag>-gpu`` (CUDA from the lock);
* the SDK base ``<registry>/candela-sdk:<tag>``, the platform ``<registry>/candela-platform:<tag>``.

The Kubernetes runner pulls :func:`service_image` for each step (the GPU variant only for a step
whose model runs on a GPU); :func:`all_images` is what ``infra/images.sh list`` must print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from candela_sdk.contract import Service

GPU_SUFFIX = "-gpu"
PREFIX = "candela-"


def image(name: str, registry: str, tag: str, *, gpu: bool = False) -> str:
    """``<registry>/<name>:<tag>`` (``<tag>-gpu`` for the GPU variant)."""
    return f"{registry.rstrip('/')}/{name}:{tag}{GPU_SUFFIX if gpu else ''}"


def image_name(service: Service) -> str:
    """A service's image name without registry and tag (``candela-<service>``)."""
    return service.image or f"{PREFIX}{service.name}"


def service_image(service: Service, registry: str, tag: str, *, gpu: bool = False) -> str:
    """The image a step of ``service`` runs in; ``gpu`` picks the GPU variant, which only a
    service that declares GPUs has."""
    if gpu and not service.resources.gpu:
        raise ValueError(f"service {service.name!r} declares no GPU: it has no GPU image")
    return image(image_name(service), registry, tag, gpu=gpu)


def all_images(registry: str, tag: str) -> dict[str, str]:
    """Role → image of every image the platform builds: ``sdk``, one per service image
    (``changedetect``…), ``<role>-gpu`` for the GPU variants, ``platform``."""
    from candela_sdk.services import all_services

    out = {"sdk": image(f"{PREFIX}sdk", registry, tag)}
    gpu_roles = set()
    for svc in all_services().values():
        name = image_name(svc)
        role = name.removeprefix(PREFIX)
        out[role] = image(name, registry, tag)
        if svc.resources.gpu:
            gpu_roles.add((role, name))
    for role, name in sorted(gpu_roles):
        out[f"{role}{GPU_SUFFIX}"] = image(name, registry, tag, gpu=True)
    out["platform"] = image(f"{PREFIX}platform", registry, tag)
    return out
