/*
 * The short-connection driver and destination of bench/web.ts and bench/web-hops.ts
 * (`--driver c`, `--driver curl`), in C so that the harness's own CPU per connection, which is on
 * every sequential connection's critical path and the same for every stack measured, is a few
 * system calls instead of Node's event loop, streams and promises (docs/benchmarks.md, "what
 * <= 0.5x would take": the Node driver and echo cost more than either Ladder process).
 *
 *   short-driver socks SOCKS_PORT N [HOST]   N connections in a row through the SOCKS5 proxy
 *       to this process's echo server (greeting, CONNECT to HOST:echo port, 64 bytes echoed,
 *       close); HOST is 127.0.0.1 (ATYP 1) unless given (a name: ATYP 3).
 *   short-driver curl N -- CURL ARGS...      this process serves HTTP/1.1 (every request
 *       answered with 64 bytes and `Connection: close`) and runs CURL ARGS with "{url}" replaced
 *       by http://127.0.0.1:PORT/[1-N] (curl's URL glob: N requests, one connection each), its
 *       standard output (one `-w` line per request) passed on.
 *
 * Output, on standard output: per connection "each_ns socks_ns" (socks mode), then one line
 * "cpu SELF_USER_US SELF_SYS_US CHILD_USER_US CHILD_SYS_US TOTAL_NS": this process's CPU (the
 * driver and the destination thread) and curl's (wait4) over the measured connections.
 * Blocking sockets with TCP_NODELAY; the destination thread uses epoll, so a connection whose close
 * has not reached it yet does not hold up the next one's accept (some proxies close the
 * destination side well after the client side).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
static int listen_fd;
static int http_mode;
/* How long one read may wait (SHORT_DRIVER_TIMEOUT_S, default 10 s: proxies under valgrind are slow). */
static int timeout_s = 10;
static const char HTTP_REPLY[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\nConnection: close\r\n\r\n"
    "0123456789012345678901234567890123456789012345678901234567890123";

static void die(const char *what) {
  fprintf(stderr, "short-driver: %s: %s\n", what, strerror(errno));
  exit(1);
}

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The destination: echo (socks mode) or one HTTP answer per connection (curl mode). */
static void *serve(void *arg) {
  (void)arg;
  static unsigned char seen[MAX_FD]; /* curl mode: bytes of "\r\n\r\n" matched so far, per fd */
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) < 0) die("epoll_ctl");
  struct epoll_event evs[64];
  char buf[4096];
  for (;;) {
    int k = epoll_wait(ep, evs, 64, -1);
    if (k < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd;
      if (fd == listen_fd) {
        int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (c >= MAX_FD) {
          close(c);
          continue;
        }
        nodelay(c);
        seen[c] = 0;
        struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) < 0) die("epoll_ctl");
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      int done = r <= 0;
      if (r > 0 && !http_mode) {
        if (write(fd, buf, (size_t)r) != r) done = 1;
      } else if (r > 0) {
        for (ssize_t j = 0; j < r && seen[fd] < 4; j++)
          seen[fd] = buf[j] == "\r\n\r\n"[seen[fd]] ? seen[fd] + 1 : (buf[j] == '\r' ? 1 : 0);
        if (seen[fd] == 4) {
          if (write(fd, HTTP_REPLY, sizeof HTTP_REPLY - 1) < 0) { /* the peer left: close */ }
          done = 1;
        }
      }
      if (done) close(fd); /* closing removes it from the epoll set */
    }
  }
  return NULL;
}

static int start_destination(void) {
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(listen_fd, 128) < 0) die("listen");
  if (getsockname(listen_fd, (struct sockaddr *)&a, &len) < 0) die("getsockname");
  pthread_t t;
  if (pthread_create(&t, NULL, serve, NULL) != 0) die("pthread_create");
  return ntohs(a.sin_port);
}

static void read_exactly(int fd, unsigned char *p, size_t n, const char *what) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) {
      fprintf(stderr, "short-driver: %s: %s\n", what, r == 0 ? "closed by the proxy" : strerror(errno));
      exit(1);
    }
    p += r;
    n -= (size_t)r;
  }
}

static void write_all(int fd, const unsigned char *p, size_t n) {
  if (write(fd, p, n) != (ssize_t)n) die("write");
}

/* One short connection through SOCKS5 port `socks`; its SOCKS5 phase in *socks_ns. */
static long long one(int socks, const unsigned char *req, size_t req_len, long long *socks_ns) {
  long long t0 = now_ns();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct timeval tv = {.tv_sec = timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  nodelay(fd);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(socks), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect to the proxy");
  static const unsigned char greet[] = {5, 1, 0};
  unsigned char r[262];
  write_all(fd, greet, sizeof greet);
  read_exactly(fd, r, 2, "SOCKS5 greeting");
  if (r[0] != 5 || r[1] != 0) {
    fprintf(stderr, "short-driver: the proxy refused the greeting (%d %d)\n", r[0], r[1]);
    exit(1);
  }
  write_all(fd, req, req_len);
  read_exactly(fd, r, 5, "SOCKS5 reply");
  if (r[1] != 0) {
    fprintf(stderr, "short-driver: the proxy answered CONNECT with %d\n", r[1]);
    exit(1);
  }
  size_t rest = r[3] == 1 ? 5 : r[3] == 4 ? 17 : (size_t)r[4] + 2; /* after the 5 read: address + port */
  read_exactly(fd, r, rest, "SOCKS5 reply address");
  *socks_ns = now_ns() - t0;
  unsigned char body[64], back[64];
  memset(body, 7, sizeof body);
  write_all(fd, body, sizeof body);
  read_exactly(fd, back, sizeof back, "echo");
  close(fd);
  return now_ns() - t0;
}

static long long tv_us(struct timeval t) { return (long long)t.tv_sec * 1000000LL + t.tv_usec; }

int main(int argc, char **argv) {
  const char *t = getenv("SHORT_DRIVER_TIMEOUT_S");
  if (t && atoi(t) > 0) timeout_s = atoi(t);
  if (argc >= 4 && strcmp(argv[1], "socks") == 0) {
    int socks = atoi(argv[2]);
    int n = atoi(argv[3]);
    const char *host = argc >= 5 ? argv[4] : "127.0.0.1";
    int port = start_destination();
    unsigned char req[262 + 7] = {5, 1, 0};
    size_t len = 3;
    struct in_addr ip;
    if (inet_pton(AF_INET, host, &ip) == 1) {
      req[len++] = 1;
      memcpy(req + len, &ip, 4);
      len += 4;
    } else {
      size_t h = strlen(host);
      if (h == 0 || h > 255) {
        fprintf(stderr, "short-driver: host must be 1..255 bytes\n");
        return 2;
      }
      req[len++] = 3;
      req[len++] = (unsigned char)h;
      memcpy(req + len, host, h);
      len += h;
    }
    req[len++] = (unsigned char)(port >> 8);
    req[len++] = (unsigned char)port;
    long long *each = calloc((size_t)n, sizeof *each), *socks_ns = calloc((size_t)n, sizeof *socks_ns);
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    long long t0 = now_ns();
    for (int i = 0; i < n; i++) each[i] = one(socks, req, len, &socks_ns[i]);
    long long total = now_ns() - t0;
    getrusage(RUSAGE_SELF, &u1);
    for (int i = 0; i < n; i++) printf("%lld %lld\n", each[i], socks_ns[i]);
    printf("cpu %lld %lld 0 0 %lld\n", tv_us(u1.ru_utime) - tv_us(u0.ru_utime),
           tv_us(u1.ru_stime) - tv_us(u0.ru_stime), total);
    return 0;
  }
  if (argc >= 5 && strcmp(argv[1], "curl") == 0 && strcmp(argv[3], "--") == 0) {
    int n = atoi(argv[2]);
    http_mode = 1;
    int port = start_destination();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/[1-%d]", port, n);
    char **args = calloc((size_t)argc, sizeof *args);
    for (int i = 4; i < argc; i++) args[i - 4] = strcmp(argv[i], "{url}") == 0 ? url : argv[i];
    fflush(stdout);
    struct rusage u0, u1, child;
    getrusage(RUSAGE_SELF, &u0);
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      execvp(args[0], args);
      die("exec");
    }
    int status;
    if (wait4(pid, &status, 0, &child) < 0) die("wait4");
    long long total = now_ns() - t0;
    getrusage(RUSAGE_SELF, &u1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "short-driver: %s exited with %d\n", args[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      return 1;
    }
    printf("cpu %lld %lld %lld %lld %lld\n", tv_us(u1.ru_utime) - tv_us(u0.ru_utime),
           tv_us(u1.ru_stime) - tv_us(u0.ru_stime), tv_us(child.ru_utime), tv_us(child.ru_stime), total);
    return 0;
  }
  fprintf(stderr, "usage: short-driver socks SOCKS_PORT N [HOST] | short-driver curl N -- CURL ARGS ({url})\n");
  return 2;
}
