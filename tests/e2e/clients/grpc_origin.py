#!/usr/bin/env python3
"""A real gRPC server (python3-grpcio) over TLS for the egressd HTTP/2 e2e tests.

No generated code: a generic handler serves two methods with raw bytes as messages.
  /egressd.test.Echo/Unary   returns b"echo:" + request; the request's metadata comes back
                             as initial metadata "seen-<key>" and a trailing "x-trailer: done"
  /egressd.test.Echo/Chat    bidirectional stream: every message back as b"echo:" + message
  /egressd.test.Echo/Fail    aborts with NOT_FOUND and details "no such thing"

  --listen ADDR:PORT --cert FILE --key FILE --ready FILE
"""

import argparse
import os
import sys
import time
from concurrent import futures

import grpc


def unary(request, context):
    seen = [("seen-" + k, v) for k, v in context.invocation_metadata()
            if k.startswith("x-") and isinstance(v, str)]
    context.send_initial_metadata(seen)
    context.set_trailing_metadata((("x-trailer", "done"),))
    return b"echo:" + request


def chat(requests, context):
    for message in requests:
        yield b"echo:" + message


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    handler = grpc.method_handlers_generic_handler("egressd.test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    with open(args.cert, "rb") as f:
        cert = f.read()
    with open(args.key, "rb") as f:
        key = f.read()
    creds = grpc.ssl_server_credentials(((key, cert),))
    if server.add_secure_port(args.listen, creds) == 0:
        print("cannot listen on " + args.listen, file=sys.stderr)
        sys.exit(1)
    server.start()
    with open(args.ready + ".tmp", "w") as f:
        f.write("grpc " + args.listen + "\n")
    os.rename(args.ready + ".tmp", args.ready)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
