"""Python client and command line for Switchyard, over tritonclient HTTP and gRPC.

    from client import SwitchyardClient
    print(SwitchyardClient("127.0.0.1:8000").generate("def add(a, b):", prefer="codegen").text)
"""

from client.aio import AsyncGenerationStream, AsyncSwitchyardClient
from client.request import FALLBACK_MODES, GenerateRequest
from client.sync import GenerationStream, SwitchyardClient
from client.types import Alternative, GenerationResponse, ModelInfo, Recommendation, SwitchyardClientError

__all__ = [
    "FALLBACK_MODES", "Alternative", "AsyncGenerationStream", "AsyncSwitchyardClient", "GenerateRequest",
    "GenerationResponse", "GenerationStream", "ModelInfo", "Recommendation", "SwitchyardClient",
    "SwitchyardClientError",
]
