// HTTPS load for scripts/bench where wrk does not fit: connection per request with a new
// TLS handshake each time, full or resumed (wrk keeps its connections; `openssl s_time`
// sends no SNI and does not look at the answer), and keep-alive bulk downloads (wrk reads
// TLS in 8 KiB pieces and is the bottleneck at ~300 MiB/s on this machine's cores).
// Built by scripts/bench with `cc -O2 tls_conns.c -lssl -lcrypto -lpthread`.
//
// Usage: tls_conns ADDR PORT SNI PATH EXPECTED_BODY CONNS SECONDS new|resume|keepalive
//   ADDR, PORT     where to connect (an IPv4 literal; no name lookup)
//   SNI            server name sent in the ClientHello and as the Host header ("-": none,
//                  and Host is ADDR)
//   EXPECTED_BODY  file every response body must equal; a status other than 2xx counts
//                  as non2xx, a different body as bad_body
//   CONNS          parallel connections (one thread each, blocking I/O)
//   new            a new connection per request, every handshake a full one (no session
//                  is ever offered)
//   resume         a new connection per request, offering the session (TLS 1.3 ticket or
//                  1.2 id/ticket) of the thread's previous connection; "resumed" counts
//                  the handshakes the server accepted it for
//   keepalive      requests one after the other on a persistent connection
//
// The server certificate is not verified (scripts/bench's preflight checks who issued it).
// ALPN offers http/1.1. Each request is
//   GET PATH HTTP/1.1 / Host: SNI[:PORT] / User-Agent / (new, resume:) Connection: close
// and a connection ends with a close_notify once a body is in, so its session stays
// resumable. Prints one line in the format of scripts/bench.d/wrk.lua's done(), plus
// counters of its own:
//   BENCH_RESULT requests=.. duration_us=.. bytes=.. p50_us=.. p99_us=.. max_us=.. non2xx=..
//   connect_errors=.. read_errors=.. write_errors=.. timeouts=.. tls_errors=.. bad_body=..
//   resumed=.. handshakes=..
// Latency is from the start of the connect (new, resume) or of the request's write
// (keepalive) to the last byte of the body.
#define _GNU_SOURCE  // memmem
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in g_addr;
static const char* g_sni;
static char g_request[1024];
static size_t g_request_len;
static char* g_expected;
static size_t g_expected_len;
static int g_resume;
static int g_keepalive;
static SSL_CTX* g_ctx;
static uint64_t g_deadline_ns;

struct counters {
  uint64_t requests, bytes, non2xx, connect_errors, read_errors, write_errors, timeouts;
  uint64_t tls_errors, bad_body, resumed, handshakes;
  uint32_t* lat_us;
  size_t nlat, cap;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void add_latency(struct counters* c, uint64_t ns) {
  if (c->nlat == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 4096;
    c->lat_us = realloc(c->lat_us, c->cap * sizeof(uint32_t));
    if (!c->lat_us) {
      perror("realloc");
      exit(1);
    }
  }
  uint64_t us = ns / 1000;
  c->lat_us[c->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

// Classifies a failed SSL_read/SSL_write/SSL_connect.
// The first failure of each kind goes to stderr (scripts/bench keeps it in its logs), so a
// counted error can be told apart: reset, EOF, alert, timeout.
static void note_first(int kind, const char* phase, const char* what) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static unsigned seen;
  pthread_mutex_lock(&lock);
  if (!(seen & (1u << kind))) {
    seen |= 1u << kind;
    fprintf(stderr, "tls_conns: first %s error: %s\n", phase, what);
  }
  pthread_mutex_unlock(&lock);
}

enum { K_CONNECT, K_TIMEOUT, K_TLS, K_WRITE, K_READ, K_EOF };

// Classifies a failed SSL_read/SSL_write/SSL_connect.
static void count_ssl_failure(struct counters* c, SSL* ssl, int ret, const char* phase) {
  int saved_errno = errno;
  int err = SSL_get_error(ssl, ret);
  char what[256];
  unsigned long e = ERR_peek_error();
  if (e) {
    ERR_error_string_n(e, what, sizeof what);
  } else {
    snprintf(what, sizeof what, "SSL error %d, %s", err,
             saved_errno ? strerror(saved_errno) : "EOF");
  }
  // A blocking socket's SO_RCVTIMEO/SO_SNDTIMEO shows up as "want read/write".
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
      (err == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))) {
    c->timeouts++;
    note_first(K_TIMEOUT, phase, "no progress for 10 s");
  } else if (err == SSL_ERROR_SSL) {
    c->tls_errors++;
    note_first(K_TLS, phase, what);
  } else if (strcmp(phase, "write") == 0) {
    c->write_errors++;
    note_first(K_WRITE, phase, what);
  } else {
    c->read_errors++;
    note_first(K_READ, phase, what);
  }
  ERR_clear_error();
}

// Reads the whole response; returns 0 when it was complete (status in *status).
static int read_response(struct counters* c, SSL* ssl, char* buf, size_t cap, size_t* len,
                         int* status, char** body, size_t* body_len, int* closes) {
  size_t got = 0;
  char* head_end = NULL;
  long content_length = -1;
  for (;;) {
    if (got == cap) {
      c->read_errors++;  // larger than anything the origin serves
      note_first(K_READ, "read", "response larger than expected");
      return -1;
    }
    int n = SSL_read(ssl, buf + got, (int)(cap - got));
    if (n <= 0) {
      int err = SSL_get_error(ssl, n);
      if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify, or EOF (IGNORE_UNEXPECTED_EOF)
        // The peer closed: complete only if the body had no length or all of it came.
        ERR_clear_error();
        if (head_end && content_length < 0) {
          *closes = 1;
          break;
        }
        c->read_errors++;
        note_first(K_EOF, "read", head_end ? "closed within the body" : "closed before a response");
        return -1;
      }
      count_ssl_failure(c, ssl, n, "read");
      return -1;
    }
    got += (size_t)n;
    buf[got] = '\0';  // for the header scan
    if (!head_end) {
      char* end = memmem(buf, got, "\r\n\r\n", 4);
      if (!end)
        continue;
      head_end = end + 4;
      if (sscanf(buf, "HTTP/%*d.%*d %d", status) != 1) {
        c->read_errors++;
        note_first(K_READ, "read", "not an HTTP response");
        return -1;
      }
      for (char* line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) {
          content_length = strtol(line + 17, NULL, 10);
        } else if (strncasecmp(line + 2, "connection:", 11) == 0 &&
                   strncasecmp(line + 2 + 11 + strspn(line + 13, " "), "close", 5) == 0) {
          *closes = 1;
        }
      }
    }
    if (content_length >= 0 && (size_t)(buf + got - head_end) >= (size_t)content_length)
      break;
  }
  *len = got;
  *body = head_end;
  *body_len = (size_t)(buf + got - head_end);
  return 0;
}

// The first unexpected answer's head goes to stderr (scripts/bench keeps it in its logs).
static void report_once(const char* head, const char* body) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static int reported;
  pthread_mutex_lock(&lock);
  if (!reported) {
    reported = 1;
    const char* eol = strstr(head, "\r\n");
    fprintf(stderr, "tls_conns: first unexpected answer: %.*s\n%.*s\n",
            (int)(eol && eol < body ? eol - head : 0), head, (int)(body - head), head);
  }
  pthread_mutex_unlock(&lock);
}

static void drop(SSL** ssl, int* fd, SSL_SESSION** session, int clean) {
  if (*ssl) {
    if (clean) {
      if (g_resume) {
        // After a response the TLS 1.3 tickets are in.
        SSL_SESSION* next = SSL_get1_session(*ssl);
        if (next) {
          if (*session)
            SSL_SESSION_free(*session);
          *session = next;
        }
      }
      SSL_shutdown(*ssl);  // close_notify: the session stays resumable
    }
    SSL_free(*ssl);
    *ssl = NULL;
  }
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void* worker(void* arg) {
  struct counters* c = arg;
  size_t cap = g_expected_len + 65536;
  char* buf = malloc(cap + 1);
  SSL_SESSION* session = NULL;
  SSL* ssl = NULL;
  int fd = -1;
  struct timeval tv = {10, 0};  // wrk's --timeout 10s
  while (now_ns() < g_deadline_ns) {
    uint64_t start = now_ns();
    if (!ssl) {
      fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) {
        c->connect_errors++;
        note_first(K_CONNECT, "socket", strerror(errno));
        usleep(1000);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (connect(fd, (struct sockaddr*)&g_addr, sizeof g_addr) != 0) {
        c->connect_errors++;
        note_first(K_CONNECT, "connect", strerror(errno));
        drop(&ssl, &fd, &session, 0);
        usleep(1000);
        continue;
      }
      ssl = SSL_new(g_ctx);
      SSL_set_fd(ssl, fd);
      if (g_sni)
        SSL_set_tlsext_host_name(ssl, g_sni);
      if (g_resume && session)
        SSL_set_session(ssl, session);
      int ret = SSL_connect(ssl);
      c->handshakes++;
      if (ret != 1) {
        count_ssl_failure(c, ssl, ret, "handshake");
        drop(&ssl, &fd, &session, 0);
        continue;
      }
      if (SSL_session_reused(ssl))
        c->resumed++;
    }
    int ret = SSL_write(ssl, g_request, (int)g_request_len);
    if (ret <= 0) {
      count_ssl_failure(c, ssl, ret, "write");
      drop(&ssl, &fd, &session, 0);
      continue;
    }
    size_t len = 0, body_len = 0;
    int status = 0, closes = 0;
    char* body = NULL;
    if (read_response(c, ssl, buf, cap, &len, &status, &body, &body_len, &closes) != 0) {
      drop(&ssl, &fd, &session, 0);
      continue;
    }
    c->requests++;
    c->bytes += len;
    add_latency(c, now_ns() - start);
    if (status < 200 || status > 299) {
      if (c->non2xx++ == 0)
        report_once(buf, body);
    } else if (body_len != g_expected_len || memcmp(body, g_expected, body_len) != 0) {
      if (c->bad_body++ == 0)
        report_once(buf, body);
    }
    if (!g_keepalive || closes)
      drop(&ssl, &fd, &session, 1);
  }
  drop(&ssl, &fd, &session, 1);
  if (session)
    SSL_SESSION_free(session);
  free(buf);
  return NULL;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 9) {
    fprintf(stderr,
            "usage: %s ADDR PORT SNI PATH EXPECTED_BODY CONNS SECONDS new|resume|keepalive\n",
            argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  memset(&g_addr, 0, sizeof g_addr);
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_addr.sin_addr) != 1) {
    fprintf(stderr, "tls_conns: ADDR must be an IPv4 literal\n");
    return 2;
  }
  g_sni = strcmp(argv[3], "-") == 0 ? NULL : argv[3];
  if (strcmp(argv[8], "resume") == 0) {
    g_resume = 1;
  } else if (strcmp(argv[8], "keepalive") == 0) {
    g_keepalive = 1;
  } else if (strcmp(argv[8], "new") != 0) {
    fprintf(stderr, "tls_conns: mode is new, resume or keepalive\n");
    return 2;
  }
  // Host carries the port unless it is 443, as browsers and curl send it (squid's bumped
  // requests go to the Host's port: without it, to 443).
  char port_suffix[16] = "";
  if (atoi(argv[2]) != 443)
    snprintf(port_suffix, sizeof port_suffix, ":%d", atoi(argv[2]));
  g_request_len = (size_t)snprintf(
      g_request, sizeof g_request,
      "GET %s HTTP/1.1\r\nHost: %s%s\r\nUser-Agent: egressd-bench\r\n%s\r\n", argv[4],
      g_sni ? g_sni : argv[1], port_suffix, g_keepalive ? "" : "Connection: close\r\n");
  FILE* f = fopen(argv[5], "rb");
  if (!f) {
    perror(argv[5]);
    return 2;
  }
  fseek(f, 0, SEEK_END);
  g_expected_len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  g_expected = malloc(g_expected_len + 1);
  if (fread(g_expected, 1, g_expected_len, f) != g_expected_len) {
    perror(argv[5]);
    return 2;
  }
  fclose(f);
  int conns = atoi(argv[6]);
  int seconds = atoi(argv[7]);
  if (conns < 1 || seconds < 1) {
    fprintf(stderr, "tls_conns: CONNS and SECONDS must be positive\n");
    return 2;
  }

  g_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
  // A server that closes after the body without close_notify is not an error.
  SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof alpn - 1);
  // Sessions are kept by hand (one per thread), never looked up in a cache.
  SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);

  struct counters* c = calloc((size_t)conns, sizeof *c);
  pthread_t* threads = calloc((size_t)conns, sizeof *threads);
  uint64_t start = now_ns();
  g_deadline_ns = start + (uint64_t)seconds * 1000000000u;
  for (int i = 0; i < conns; i++)
    pthread_create(&threads[i], NULL, worker, &c[i]);
  struct counters t = {0};
  for (int i = 0; i < conns; i++) {
    pthread_join(threads[i], NULL);
    t.requests += c[i].requests;
    t.bytes += c[i].bytes;
    t.non2xx += c[i].non2xx;
    t.connect_errors += c[i].connect_errors;
    t.read_errors += c[i].read_errors;
    t.write_errors += c[i].write_errors;
    t.timeouts += c[i].timeouts;
    t.tls_errors += c[i].tls_errors;
    t.bad_body += c[i].bad_body;
    t.resumed += c[i].resumed;
    t.handshakes += c[i].handshakes;
    for (size_t j = 0; j < c[i].nlat; j++)
      add_latency(&t, (uint64_t)c[i].lat_us[j] * 1000);
  }
  uint64_t duration_us = (now_ns() - start) / 1000;
  uint32_t p50 = 0, p99 = 0, max = 0;
  if (t.nlat) {
    qsort(t.lat_us, t.nlat, sizeof(uint32_t), cmp_u32);
    p50 = t.lat_us[t.nlat / 2];
    p99 = t.lat_us[(size_t)((double)(t.nlat - 1) * 0.99)];
    max = t.lat_us[t.nlat - 1];
  }
  printf(
      "BENCH_RESULT requests=%llu duration_us=%llu bytes=%llu p50_us=%u p99_us=%u max_us=%u "
      "non2xx=%llu connect_errors=%llu read_errors=%llu write_errors=%llu timeouts=%llu "
      "tls_errors=%llu bad_body=%llu resumed=%llu handshakes=%llu\n",
      (unsigned long long)t.requests, (unsigned long long)duration_us, (unsigned long long)t.bytes,
      p50, p99, max, (unsigned long long)t.non2xx, (unsigned long long)t.connect_errors,
      (unsigned long long)t.read_errors, (unsigned long long)t.write_errors,
      (unsigned long long)t.timeouts, (unsigned long long)t.tls_errors,
      (unsigned long long)t.bad_body, (unsigned long long)t.resumed,
      (unsigned long long)t.handshakes);
  return 0;
}
