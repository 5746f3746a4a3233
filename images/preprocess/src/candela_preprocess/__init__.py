"""candela_preprocess: Sentinel-2 bands resampled onto the B02 10 m grid and stacked into one COG.

The core is :func:`candela_preprocess.core.preprocess`; the CLI (``candela-preprocess``) is the
service contract of :mod:`candela_sdk.contract` around it (see :mod:`candela_preprocess.service`).
"""

from __future__ import annotations


def code_version() -> str:
    """The installed version of this package (``0+unknown`` when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("candela-preprocess")
    except PackageNotFoundError:
        return "0+unknown"
