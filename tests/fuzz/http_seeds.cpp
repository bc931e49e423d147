#include "http_seeds.h"

namespace egressd::http::fuzz {

std::vector<std::string> requestSeeds() {
  return {
      "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
      "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n"
      "Accept: */*\r\n\r\n",
      "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
      "DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      "PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
      "GET http://a.test:8080/p?q HTTP/1.1\r\nHost: a.test:8080\r\n\r\n",
      "GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\nGET / HTTP/1.0\r\n\r\n",
      "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: "
      "websocket\r\n\r\n\x81\x02hi",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3;a=b\rc\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "DESCRIBE / RTSP/1.0\r\nHost: a\r\n\r\n",
      "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
}

std::vector<std::string> responseSeeds() {
  return {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\nX-Sum: 1\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>until close",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
      "0\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
      "Upgrade\r\n\r\n\x81\x02hi",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree",
      "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
  };
}

std::vector<std::string> dictionary() {
  return {"\r\n",
          "\n",
          "\r",
          " ",
          "\t",
          ":",
          ",",
          ";",
          "\r\n\r\n",
          "0\r\n\r\n",
          "Content-Length: 5\r\n",
          "Content-Length: 0\r\n",
          "Transfer-Encoding: chunked\r\n",
          "Transfer-Encoding: gzip\r\n",
          "Connection: close\r\n",
          "Connection: keep-alive\r\n",
          "Connection: Upgrade\r\nUpgrade: websocket\r\n",
          "Host: a.test\r\n",
          "Expect: 100-continue\r\n",
          "HTTP/1.1",
          "HTTP/1.0",
          "HTTP/1.1 200 OK\r\n",
          "HTTP/1.1 100 Continue\r\n\r\n",
          "GET / HTTP/1.1\r\n",
          "HEAD",
          "http://a.test",
          "ffffffffffffffff\r\n",
          std::string("\0", 1),
          "\x7f",
          "\xff"};
}

}  // namespace egressd::http::fuzz
