"""Python client of the Ctrl-GenAug REST API, sync (`Client`) and async (`AsyncClient`), on httpx.

Requests and responses are the API's own pydantic models (`api.schemas`): what the client sends is
validated by the same declarations the service validates it with.
"""

from client.aio import AsyncClient
from client.errors import ApiError, ClientError, DownloadError, MissingSetting
from client.sync import Client
from client.transfer import Download

__all__ = ["ApiError", "AsyncClient", "Client", "ClientError", "Download", "DownloadError", "MissingSetting"]
