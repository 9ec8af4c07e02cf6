"""python -m pointsman.gateway --triton-grpc HOST:PORT [--host --port]: what `pointsman serve` runs."""

import sys

from pointsman.gateway.server import main

if __name__ == "__main__":
    sys.exit(main())
