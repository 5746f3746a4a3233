"""candela-client: the Python SDK of the Candela platform, over HTTP only.

Search published results (STAC API), read rasters in place (windows from ``file://`` or
``s3://``), run a processing service (OGC API – Processes) or a workflow (Airflow REST API) and
follow it with a progress bar, open results (xarray when rioxarray is installed, rasterio
otherwise), and query the knowledge base (SPARQL). See :class:`Client`.
"""

from candela_client.client import CHANGE_DETECTION, CandelaError, Client, Job, Run
from candela_client.config import ClientConfig, S3Config
from candela_client.progress import poll_with_backoff
from candela_client.rasters import Raster, RasterError, open_raster, read

__all__ = [
    "CHANGE_DETECTION",
    "CandelaError",
    "Client",
    "ClientConfig",
    "Job",
    "Raster",
    "RasterError",
    "Run",
    "S3Config",
    "open_raster",
    "poll_with_backoff",
    "read",
]
