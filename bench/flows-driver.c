/*
 * The flows phase's driver and destination in C (bench/compare.ts `--flows-driver c`): the bench
 * process's own CPU per GiB (a Node source or sink plus Node SOCKS5 clients: 500-800 ms/GiB) shares
 * the two cores with the proxies measured, and is the same for every stack, so the cheaper it is,
 * the less it dilutes the ratio between two stacks (docs/benchmarks.md, session 17).
 *
 *   flows-driver SOCKS_PORT FLOWS BYTES_PER_FLOW download|upload
 *
 * Listens on 127.0.0.1 (an ephemeral port), then FLOWS threads each open a SOCKS5 connection
 * through 127.0.0.1:SOCKS_PORT to it (greeting, CONNECT 127.0.0.1:port) and send the 8-byte
 * big-endian count; the destination side (a thread per accepted connection) then sends that many
 * bytes (download) or reads them and answers one byte (upload). Blocking sockets, 64 KiB reads
 * and writes (the Node driver's sizes). Output, on standard output, one line:
 * "WALL_NS USER_US SYS_US": from the first connection's start to the last one's end, and this
 * process's CPU (getrusage) over the same span. Exit status 1 with a message on any error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kIo = 64 * 1024, kMaxFlows = 64 };

static int g_listener;
static int g_socks_port;
static int g_dest_port;
static uint64_t g_bytes;
static int g_upload;

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void write_all(int fd, const void* p, size_t n) {
  const char* c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) die("write");
    c += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, void* p, size_t n) {
  char* c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r <= 0) die("read");
    c += r;
    n -= (size_t)r;
  }
}

/* Reads (and drops) n bytes. */
static void drain(int fd, uint64_t n, char* buf) {
  while (n > 0) {
    ssize_t r = read(fd, buf, n < kIo ? (size_t)n : kIo);
    if (r <= 0) die("read");
    n -= (uint64_t)r;
  }
}

static void pump(int fd, uint64_t n, const char* buf) {
  while (n > 0) {
    size_t k = n < kIo ? (size_t)n : kIo;
    write_all(fd, buf, k);
    n -= k;
  }
}

static void* dest_conn(void* arg) {
  int fd = (int)(intptr_t)arg;
  char* buf = calloc(1, kIo);
  unsigned char head[8];
  read_all(fd, head, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n = n << 8 | head[i];
  if (g_upload) {
    drain(fd, n, buf);
    write_all(fd, "\x06", 1);
  } else {
    pump(fd, n, buf);
  }
  shutdown(fd, SHUT_WR);
  while (read(fd, buf, kIo) > 0) {
  }
  close(fd);
  free(buf);
  return NULL;
}

static void* dest_accept(void* arg) {
  int flows = (int)(intptr_t)arg;
  for (int i = 0; i < flows; i++) {
    int fd = accept(g_listener, NULL, NULL);
    if (fd < 0) die("accept");
    pthread_t t;
    if (pthread_create(&t, NULL, dest_conn, (void*)(intptr_t)fd) != 0) die("pthread_create");
    pthread_detach(t);
  }
  return NULL;
}

static void* flow(void* arg) {
  (void)arg;
  char* buf = calloc(1, kIo);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_socks_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr*)&a, sizeof(a)) != 0) die("connect to the SOCKS5 port");
  const unsigned char greet[3] = {5, 1, 0};
  const unsigned char req[10] = {5, 1, 0, 1, 127, 0, 0, 1, (unsigned char)(g_dest_port >> 8), (unsigned char)g_dest_port};
  unsigned char rep[10];
  write_all(fd, greet, sizeof(greet));
  read_all(fd, rep, 2);
  if (rep[1] != 0) {
    fprintf(stderr, "flows-driver: the proxy refused the greeting (%d)\n", rep[1]);
    exit(1);
  }
  write_all(fd, req, sizeof(req));
  read_all(fd, rep, sizeof(rep));
  if (rep[1] != 0) {
    fprintf(stderr, "flows-driver: the proxy refused the CONNECT (%d)\n", rep[1]);
    exit(1);
  }
  unsigned char head[8];
  for (int i = 0; i < 8; i++) head[i] = (unsigned char)(g_bytes >> (56 - 8 * i));
  write_all(fd, head, 8);
  if (g_upload) {
    pump(fd, g_bytes, buf);
    read_all(fd, head, 1);
  } else {
    drain(fd, g_bytes, buf);
  }
  close(fd);
  free(buf);
  return NULL;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t us(struct timeval t) { return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_usec; }

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: flows-driver SOCKS_PORT FLOWS BYTES_PER_FLOW download|upload\n");
    return 2;
  }
  g_socks_port = atoi(argv[1]);
  int flows = atoi(argv[2]);
  g_bytes = strtoull(argv[3], NULL, 10);
  g_upload = strcmp(argv[4], "upload") == 0;
  if (flows < 1 || flows > kMaxFlows || (!g_upload && strcmp(argv[4], "download") != 0)) {
    fprintf(stderr, "flows-driver: FLOWS 1..%d, download or upload\n", kMaxFlows);
    return 2;
  }
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (g_listener < 0 || bind(g_listener, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(g_listener, 128) != 0 ||
      getsockname(g_listener, (struct sockaddr*)&a, &len) != 0) {
    die("listen");
  }
  g_dest_port = ntohs(a.sin_port);
  pthread_t acc, t[kMaxFlows];
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  const uint64_t t0 = now_ns();
  if (pthread_create(&acc, NULL, dest_accept, (void*)(intptr_t)flows) != 0) die("pthread_create");
  for (int i = 0; i < flows; i++) {
    if (pthread_create(&t[i], NULL, flow, NULL) != 0) die("pthread_create");
  }
  for (int i = 0; i < flows; i++) pthread_join(t[i], NULL);
  const uint64_t t1 = now_ns();
  getrusage(RUSAGE_SELF, &r1);
  printf("%llu %llu %llu\n", (unsigned long long)(t1 - t0), (unsigned long long)(us(r1.ru_utime) - us(r0.ru_utime)),
         (unsigned long long)(us(r1.ru_stime) - us(r0.ru_stime)));
  return 0;
}
