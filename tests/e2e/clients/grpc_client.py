#!/usr/bin/env python3
"""A real gRPC client (python3-grpcio) for the egressd HTTP/2 e2e tests, run in a sandbox.

  --target ADDR:PORT --authority NAME --cafile FILE [--messages N] [--metadata K=V ...]
Calls Unary (with the metadata), Chat with N messages (a bidirectional stream whose replies
are read as they come) and Fail, and prints one JSON object: unary {ok, reply, initial,
trailing} or {code, details}; chat {ok, replies} or {code, details}; fail {code, details}.
"""

import argparse
import json

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument("--metadata", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    with open(args.cafile, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = (("grpc.ssl_target_name_override", args.authority),
               ("grpc.default_authority", args.authority))
    out = {}
    with grpc.secure_channel("ipv4:" + args.target, creds, options=options) as channel:
        metadata = tuple(tuple(m.split("=", 1)) for m in args.metadata)
        unary = channel.unary_unary("/egressd.test.Echo/Unary")
        try:
            reply, call = unary.with_call(b"hello", metadata=metadata, timeout=args.timeout)
            out["unary"] = {"ok": True, "reply": reply.decode(),
                            "initial": dict(call.initial_metadata()),
                            "trailing": dict(call.trailing_metadata())}
        except grpc.RpcError as e:
            out["unary"] = {"ok": False, "code": e.code().name, "details": e.details()}
        chat = channel.stream_stream("/egressd.test.Echo/Chat")
        try:
            replies = [r.decode() for r in chat(
                iter([("m%d" % i).encode() for i in range(args.messages)]), timeout=args.timeout)]
            out["chat"] = {"ok": True, "replies": replies}
        except grpc.RpcError as e:
            out["chat"] = {"ok": False, "code": e.code().name, "details": e.details()}
        failing = channel.unary_unary("/egressd.test.Echo/Fail")
        try:
            failing(b"x", timeout=args.timeout)
            out["fail"] = {"ok": True}
        except grpc.RpcError as e:
            out["fail"] = {"ok": False, "code": e.code().name, "details": e.details()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
