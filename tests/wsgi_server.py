"""A plain WSGI server for the test that checks streams are refused under WSGI."""

import sys
from wsgiref.simple_server import make_server

from tests.wsgi import application

if __name__ == "__main__":
    port = int(sys.argv[1])
    with make_server("127.0.0.1", port, application) as server:
        print(f"Serving on {port}", flush=True)
        server.serve_forever()
