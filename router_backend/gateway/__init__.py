"""The HTTP gateway: OpenAI's /v1 API and the original /inference API in front of Triton.

    pointsman gateway --triton-grpc 127.0.0.1:8001 --port 9000
    curl localhost:9000/v1/chat/completions -d '{"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}'
"""
