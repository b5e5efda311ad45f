"""moto's server, with KMS signing by digest as AWS does it (kms_digest.py).

Usage: moto_server.py -H HOST -p PORT (as moto_server).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kms_digest  # noqa: E402,F401
from moto.server import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
