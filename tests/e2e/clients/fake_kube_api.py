#!/usr/bin/env python3
"""A fake Kubernetes API server for the pod watcher's e2e test (stdlib only, 127.0.0.1).

Answers what `egressd daemon --kubernetes` asks, as the real API server does:

  GET /api/v1/pods?fieldSelector=spec.nodeName%3DNODE          the PodList the test set
  GET ...&watch=1&allowWatchBookmarks=true&resourceVersion=RV    a chunked stream of the watch
                                                                 events the test pushes, one
                                                                 JSON document per line

A request without `Authorization: Bearer <--token>` gets 401, one for another node's pods 400
(both as Status objects). The test drives it on the same port:

  POST /__test/pods         body {"resourceVersion": RV, "items": [pod, ...]}: the next lists
  POST /__test/push         body: one watch event, sent on the open watch (or the next one)
  POST /__test/end-watch    the open watch ends (as at its timeoutSeconds)
  POST /__test/gone         the next watch gets one ERROR 410 event and ends (an expired RV)

Every API request is logged, before it is answered, as one JSON line to --log: {"path",
"query" (parsed, single values), "auth" (true when the token matched)}. Once listening, the
port is written atomically to --ready. Exits on SIGTERM/SIGINT.
"""

import argparse
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import urllib.parse


class State:
    def __init__(self):
        self.cond = threading.Condition()
        self.list = {"resourceVersion": "1", "items": []}
        self.queue = []
        self.end_watch = False
        self.gone_next = False


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "egressd-test-kube-api"
    sys_version = ""

    def log_message(self, *_args):
        pass

    def send_json(self, code, body):
        data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with state.cond:
            if self.path == "/__test/pods":
                state.list = json.loads(body)
            elif self.path == "/__test/push":
                state.queue.append(json.loads(body))
            elif self.path == "/__test/end-watch":
                state.end_watch = True
            elif self.path == "/__test/gone":
                state.gone_next = True
            else:
                self.send_json(404, status_body(404, "NotFound", self.path))
                return
            state.cond.notify_all()
        self.send_json(200, {"ok": True})

    def do_GET(self):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        auth = self.headers.get("Authorization") == "Bearer " + self.server.token
        with open(self.server.log, "a") as log:
            log.write(json.dumps({"path": url.path, "query": query, "auth": auth}) + "\n")
        if not auth:
            self.send_json(401, status_body(401, "Unauthorized", "Unauthorized"))
            return
        if url.path != "/api/v1/pods":
            self.send_json(404, status_body(404, "NotFound", "the server could not find the "
                                            "requested resource"))
            return
        if query.get("fieldSelector") != "spec.nodeName=" + self.server.node:
            self.send_json(400, status_body(400, "BadRequest", "this fake serves node " +
                                            self.server.node + " only"))
            return
        if query.get("watch") not in ("1", "true"):
            with state.cond:
                body = {"kind": "PodList", "apiVersion": "v1",
                        "metadata": {"resourceVersion": state.list["resourceVersion"]},
                        "items": state.list["items"]}
            self.send_json(200, body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with state.cond:
            gone = state.gone_next
            state.gone_next = False
            state.end_watch = False
        if gone:
            rv = query.get("resourceVersion", "")
            self.chunk((json.dumps({"type": "ERROR", "object": status_body(
                410, "Expired", "too old resource version: %s (%s)" % (rv, int(rv or 0) + 1000))})
                + "\n").encode())
            self.chunk(b"")
            return
        while True:
            with state.cond:
                state.cond.wait_for(lambda: state.queue or state.end_watch, timeout=1.0)
                events, state.queue = state.queue, []
                end = state.end_watch
                state.end_watch = False
            try:
                for event in events:
                    self.chunk((json.dumps(event, separators=(",", ":")) + "\n").encode())
                if end:
                    self.chunk(b"")
                    return
            except OSError:
                with state.cond:  # the watcher went: keep the events for its next watch
                    state.queue = events + state.queue
                return


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.state = State()
    server.token = args.token
    server.node = args.node
    server.log = args.log
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.ready)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
