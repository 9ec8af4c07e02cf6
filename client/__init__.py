"""Python client and command line for Pointsman, over tritonclient HTTP and gRPC.

    from pointsman.client import PointsmanClient
    print(PointsmanClient("127.0.0.1:8000").generate("def add(a, b):", prefer="codegen").text)
"""

from pointsman.client.aio import AsyncGenerationStream, AsyncPointsmanClient
from pointsman.client.request import FALLBACK_MODES, GenerateRequest
from pointsman.client.sync import GenerationStream, PointsmanClient
from pointsman.client.types import Alternative, GenerationResponse, ModelInfo, PointsmanClientError, Recommendation

__all__ = [
    "FALLBACK_MODES", "Alternative", "AsyncGenerationStream", "AsyncPointsmanClient", "GenerateRequest",
    "GenerationResponse", "GenerationStream", "ModelInfo", "Recommendation", "PointsmanClient",
    "PointsmanClientError",
]
