// imach preload library: LD_PRELOAD into an unmodified program so that its AF_INET TCP
// sockets are carried over the host's TypeScript stack (hostfn/preload-host.ts).
//
// Every interposed socket stays a real file descriptor: it is an AF_UNIX SOCK_STREAM
// connection to the runtime's listener (IMACH_PRELOAD_SOCKET), so poll/epoll/select,
// fork, dup and close keep working unchanged. The first bytes on a connection are one
// fixed-size request and one fixed-size reply (struct below, hostfn/preload-wire.ts
// mirrors it); after that it carries the byte stream. A listening socket's connection
// carries one byte per pending overlay connection (so it polls readable); accept() reads
// that byte and opens a new connection asking for the oldest pending one.
// Loopback stays the kernel's: bind or connect to 127/8 swaps in a real AF_INET socket.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>

enum { OP_CONNECT = 1, OP_LISTEN = 2, OP_ACCEPT = 3, OP_RESOLVE = 4 };

// 16 and 20 bytes: ids little endian, addresses and ports in network order.
struct request {
  uint8_t op;
  uint8_t pad;
  uint16_t port; // network order
  uint32_t addr; // network order
  uint32_t arg;  // listen: backlog; accept: listener id; resolve: name length
  uint32_t pid;
};
struct reply {
  int32_t err; // 0 or a positive errno
  uint32_t id; // listen: listener id
  uint32_t local_addr;
  uint16_t local_port;
  uint16_t peer_port;
  uint32_t peer_addr;
};
_Static_assert(sizeof(struct request) == 16, "request is 16 bytes");
_Static_assert(sizeof(struct reply) == 20, "reply is 20 bytes");

enum { KIND_NONE = 0, KIND_FRESH, KIND_CONNECTED, KIND_LISTENING };

struct slot {
  uint8_t kind;
  uint8_t bound;
  uint32_t id;
  struct sockaddr_in local;
  struct sockaddr_in peer;
};

#define MAX_FDS 65536
static struct slot *slots;
static struct sockaddr_un runtime_addr;
static socklen_t runtime_len;
static uint32_t net_addr, net_mask;
static int egress_none;
static int enabled;
static int warned_ipv6, warned_udp;

static int (*real_socket)(int, int, int);
static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_listen)(int, int);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
static struct hostent *(*real_gethostbyname)(const char *);

static void say(const char *msg) {
  char line[256];
  int n = snprintf(line, sizeof line, "imach-preload[%d]: %s\n", (int)getpid(), msg);
  if (n > 0) (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

// Another library's constructor may call in before ours has run: every wrapper loads the
// real functions first.
static void load_symbols(void) {
  if (real_fcntl != NULL) return;
  real_socket = dlsym(RTLD_NEXT, "socket");
  real_bind = dlsym(RTLD_NEXT, "bind");
  real_listen = dlsym(RTLD_NEXT, "listen");
  real_accept = dlsym(RTLD_NEXT, "accept");
  real_accept4 = dlsym(RTLD_NEXT, "accept4");
  real_connect = dlsym(RTLD_NEXT, "connect");
  real_getsockname = dlsym(RTLD_NEXT, "getsockname");
  real_getpeername = dlsym(RTLD_NEXT, "getpeername");
  real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
  real_getsockopt = dlsym(RTLD_NEXT, "getsockopt");
  real_recvfrom = dlsym(RTLD_NEXT, "recvfrom");
  real_sendto = dlsym(RTLD_NEXT, "sendto");
  real_close = dlsym(RTLD_NEXT, "close");
  real_dup = dlsym(RTLD_NEXT, "dup");
  real_dup2 = dlsym(RTLD_NEXT, "dup2");
  real_dup3 = dlsym(RTLD_NEXT, "dup3");
  real_getaddrinfo = dlsym(RTLD_NEXT, "getaddrinfo");
  real_gethostbyname = dlsym(RTLD_NEXT, "gethostbyname");
  real_fcntl = dlsym(RTLD_NEXT, "fcntl");
}

__attribute__((constructor)) static void init(void) {
  load_symbols();
  const char *path = getenv("IMACH_PRELOAD_SOCKET");
  const char *net = getenv("IMACH_PRELOAD_NET");
  if (path == NULL || net == NULL) return;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof runtime_addr.sun_path) {
    say("IMACH_PRELOAD_SOCKET is empty or too long: sockets stay the machine's");
    return;
  }
  memset(&runtime_addr, 0, sizeof runtime_addr);
  runtime_addr.sun_family = AF_UNIX;
  memcpy(runtime_addr.sun_path, path, len);
  runtime_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  if (path[0] == '@') { // abstract namespace, the name zero-padded to the whole sun_path as Node binds it
    runtime_addr.sun_path[0] = '\0';
    runtime_len = sizeof runtime_addr;
  }

  char buf[64];
  snprintf(buf, sizeof buf, "%s", net);
  char *slash = strchr(buf, '/');
  int prefix = slash != NULL ? atoi(slash + 1) : 32;
  if (slash != NULL) *slash = '\0';
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1 || prefix < 0 || prefix > 32) {
    say("IMACH_PRELOAD_NET is not an IPv4 prefix: sockets stay the machine's");
    return;
  }
  net_mask = prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
  net_addr = a.s_addr & net_mask;
  const char *egress = getenv("IMACH_PRELOAD_EGRESS");
  egress_none = egress != NULL && strcmp(egress, "none") == 0;
  slots = calloc(MAX_FDS, sizeof *slots);
  if (slots == NULL) return;
  // The program's first process ends with the runtime that started it.
  const char *parent = getenv("IMACH_PRELOAD_PARENT");
  if (parent != NULL && atoi(parent) == (int)getppid()) prctl(PR_SET_PDEATHSIG, SIGKILL);
  enabled = 1;
}

static struct slot *slot_of(int fd) {
  if (!enabled || fd < 0 || fd >= MAX_FDS || slots[fd].kind == KIND_NONE) return NULL;
  return &slots[fd];
}

static void clear_slot(int fd) {
  if (enabled && fd >= 0 && fd < MAX_FDS) memset(&slots[fd], 0, sizeof slots[fd]);
}

static int is_overlay(uint32_t addr) { return (addr & net_mask) == net_addr; }
static int is_loopback(uint32_t addr) { return (ntohl(addr) >> 24) == 127; }

static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r == 0) return ECONNRESET;
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    put += (size_t)r;
  }
  return 0;
}

// Connect `fd` (an AF_UNIX stream socket) to the runtime and exchange one request/reply,
// blocking whatever the fd's O_NONBLOCK says. Returns 0 or an errno.
static int exchange(int fd, const struct request *req, const void *extra, size_t extra_len, struct reply *rep) {
  int flags = real_fcntl(fd, F_GETFL);
  if (flags < 0) return errno;
  if (flags & O_NONBLOCK) real_fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  int err = 0;
  if (real_connect(fd, (struct sockaddr *)&runtime_addr, runtime_len) < 0) err = errno == ENOENT || errno == ECONNREFUSED ? ENETDOWN : errno;
  if (err == 0) err = write_full(fd, req, sizeof *req);
  if (err == 0 && extra_len > 0) err = write_full(fd, extra, extra_len);
  if (err == 0) err = read_full(fd, rep, sizeof *rep);
  if (err == 0 && rep->err != 0) err = rep->err > 0 && rep->err < 4096 ? rep->err : EPROTO;
  if (flags & O_NONBLOCK) real_fcntl(fd, F_SETFL, flags);
  return err;
}

// Replace the interposed `fd` by a real kernel AF_INET socket (loopback, or egress).
static int become_real(int fd) {
  int flags = real_fcntl(fd, F_GETFL);
  int fdflags = real_fcntl(fd, F_GETFD);
  int real = real_socket(AF_INET, SOCK_STREAM, 0);
  if (real < 0) return -1;
  if (flags & O_NONBLOCK) real_fcntl(real, F_SETFL, O_NONBLOCK);
  int r = real_dup3(real, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
  int saved = errno;
  real_close(real);
  clear_slot(fd);
  if (r < 0) errno = saved;
  return r < 0 ? -1 : 0;
}

static void fill_addr(struct sockaddr *addr, socklen_t *len, const struct sockaddr_in *from) {
  if (addr == NULL || len == NULL) return;
  socklen_t n = *len < sizeof *from ? *len : (socklen_t)sizeof *from;
  memcpy(addr, from, n);
  *len = sizeof *from;
}

static void set_in(struct sockaddr_in *sin, uint32_t addr, uint16_t port) {
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = addr;
  sin->sin_port = port;
}

int socket(int domain, int type, int protocol) {
  load_symbols();
  if (!enabled) return real_socket(domain, type, protocol);
  int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (domain == AF_INET6 && !warned_ipv6) {
    warned_ipv6 = 1;
    say("IPv6 sockets are not carried over the overlay (limit): this one is the machine's");
  }
  if (domain != AF_INET) return real_socket(domain, type, protocol);
  if (base != SOCK_STREAM) {
    if (base == SOCK_DGRAM && !warned_udp) {
      warned_udp = 1;
      say("UDP sockets are not carried over the overlay yet (limit): this one is the machine's");
    }
    return real_socket(domain, type, protocol);
  }
  int fd = real_socket(AF_UNIX, type, 0);
  if (fd < 0) return fd;
  if (fd >= MAX_FDS) return fd; // not tracked: behaves as a broken socket, rare
  memset(&slots[fd], 0, sizeof slots[fd]);
  slots[fd].kind = KIND_FRESH;
  set_in(&slots[fd].local, 0, 0);
  return fd;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_bind(fd, addr, len);
  if (addr == NULL || len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET) {
    errno = EINVAL;
    return -1;
  }
  const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
  if (is_loopback(sin->sin_addr.s_addr)) {
    if (become_real(fd) < 0) return -1;
    return real_bind(fd, addr, len);
  }
  if (s->kind != KIND_FRESH || s->bound) {
    errno = EINVAL;
    return -1;
  }
  if (sin->sin_addr.s_addr != INADDR_ANY && !is_overlay(sin->sin_addr.s_addr)) {
    errno = EADDRNOTAVAIL;
    return -1;
  }
  s->bound = 1;
  set_in(&s->local, sin->sin_addr.s_addr, sin->sin_port);
  return 0;
}

int listen(int fd, int backlog) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_listen(fd, backlog);
  if (s->kind == KIND_LISTENING) return 0;
  if (s->kind != KIND_FRESH) {
    errno = EINVAL;
    return -1;
  }
  struct request req = {.op = OP_LISTEN, .port = s->local.sin_port, .addr = s->local.sin_addr.s_addr, .arg = (uint32_t)(backlog < 0 ? 0 : backlog), .pid = (uint32_t)getpid()};
  struct reply rep;
  int err = exchange(fd, &req, NULL, 0, &rep);
  if (err != 0) {
    errno = err;
    return -1;
  }
  s->kind = KIND_LISTENING;
  s->id = rep.id;
  set_in(&s->local, rep.local_addr, rep.local_port);
  return 0;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_accept4(fd, addr, len, flags);
  if (s->kind != KIND_LISTENING) {
    errno = EINVAL;
    return -1;
  }
  for (;;) {
    char ticket;
    ssize_t r = read(fd, &ticket, 1);
    if (r < 0) return -1; // EAGAIN on a non-blocking listener: nothing pending
    if (r == 0) {
      errno = EINVAL; // the runtime closed the listener
      return -1;
    }
    int conn = real_socket(AF_UNIX, SOCK_STREAM | (flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
    if (conn < 0) return -1;
    struct request req = {.op = OP_ACCEPT, .arg = s->id, .pid = (uint32_t)getpid()};
    struct reply rep;
    int err = exchange(conn, &req, NULL, 0, &rep);
    if (err == ECONNABORTED) { // another process took it, or the peer went: try the next
      real_close(conn);
      continue;
    }
    if (err != 0) {
      real_close(conn);
      errno = err;
      return -1;
    }
    if (conn < MAX_FDS) {
      struct slot *c = &slots[conn];
      memset(c, 0, sizeof *c);
      c->kind = KIND_CONNECTED;
      set_in(&c->local, rep.local_addr, rep.local_port);
      set_in(&c->peer, rep.peer_addr, rep.peer_port);
      fill_addr(addr, len, &c->peer);
    }
    return conn;
  }
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) { return do_accept(fd, addr, len, 0); }
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return do_accept(fd, addr, len, flags); }

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_connect(fd, addr, len);
  if (addr == NULL || len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET) {
    if (addr != NULL && addr->sa_family == AF_UNSPEC) {
      errno = EOPNOTSUPP;
      return -1;
    }
    errno = EAFNOSUPPORT;
    return -1;
  }
  if (s->kind == KIND_CONNECTED) {
    errno = EISCONN;
    return -1;
  }
  if (s->kind != KIND_FRESH) {
    errno = EINVAL;
    return -1;
  }
  const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
  if (!is_overlay(sin->sin_addr.s_addr)) {
    if (!is_loopback(sin->sin_addr.s_addr) && egress_none) {
      errno = ENETUNREACH;
      return -1;
    }
    if (become_real(fd) < 0) return -1;
    return real_connect(fd, addr, len);
  }
  // Connect waits for the overlay's answer even on a non-blocking socket: it then
  // succeeds at once (0, as POSIX allows) or fails with the reason; SO_ERROR stays 0.
  struct request req = {.op = OP_CONNECT, .port = sin->sin_port, .addr = sin->sin_addr.s_addr, .pid = (uint32_t)getpid()};
  struct reply rep;
  int err = exchange(fd, &req, NULL, 0, &rep);
  if (err != 0) {
    // the Unix socket is spent: a fresh one, so the program may retry or close it
    int flags = real_fcntl(fd, F_GETFL), fdflags = real_fcntl(fd, F_GETFD);
    int fresh = real_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fresh >= 0) {
      if (flags & O_NONBLOCK) real_fcntl(fresh, F_SETFL, O_NONBLOCK);
      real_dup3(fresh, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
      real_close(fresh);
    }
    errno = err;
    return -1;
  }
  s->kind = KIND_CONNECTED;
  set_in(&s->local, rep.local_addr, rep.local_port);
  set_in(&s->peer, rep.peer_addr, rep.peer_port);
  return 0;
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_getsockname(fd, addr, len);
  fill_addr(addr, len, &s->local);
  return 0;
}

int getpeername(int fd, struct sockaddr *addr, socklen_t *len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_getpeername(fd, addr, len);
  if (s->kind != KIND_CONNECTED) {
    errno = ENOTCONN;
    return -1;
  }
  fill_addr(addr, len, &s->peer);
  return 0;
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_setsockopt(fd, level, name, value, len);
  if (level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF || name == SO_RCVTIMEO || name == SO_SNDTIMEO || name == SO_RCVLOWAT))
    return real_setsockopt(fd, level, name, value, len);
  // TCP and IP options, SO_REUSEADDR, SO_KEEPALIVE...: the stack decides; accepted.
  return 0;
}

int getsockopt(int fd, int level, int name, void *value, socklen_t *len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  if (s == NULL) return real_getsockopt(fd, level, name, value, len);
  int v;
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_TYPE: v = SOCK_STREAM; break;
    case SO_DOMAIN: v = AF_INET; break;
    case SO_PROTOCOL: v = IPPROTO_TCP; break;
    case SO_ACCEPTCONN: v = s->kind == KIND_LISTENING; break;
    case SO_ERROR: case SO_SNDBUF: case SO_RCVBUF: case SO_RCVTIMEO: case SO_SNDTIMEO: case SO_RCVLOWAT:
      return real_getsockopt(fd, level, name, value, len);
    default: v = 0;
    }
  } else if (level == IPPROTO_TCP && name == TCP_MAXSEG) v = 1460;
  else v = 0;
  if (value == NULL || len == NULL) {
    errno = EFAULT;
    return -1;
  }
  socklen_t n = *len < sizeof v ? *len : (socklen_t)sizeof v;
  memcpy(value, &v, n);
  *len = n;
  return 0;
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len) {
  load_symbols();
  struct slot *s = slot_of(fd);
  ssize_t r = real_recvfrom(fd, buf, n, flags, s != NULL ? NULL : addr, s != NULL ? NULL : len);
  if (s != NULL && r >= 0 && addr != NULL) fill_addr(addr, len, &s->peer);
  return r;
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len) {
  load_symbols();
  // a connected stream ignores the address, as TCP does
  if (slot_of(fd) != NULL) return real_sendto(fd, buf, n, flags, NULL, 0);
  return real_sendto(fd, buf, n, flags, addr, len);
}

int close(int fd) {
  load_symbols();
  clear_slot(fd);
  return real_close(fd);
}

static void copy_slot(int from, int to, int r) {
  if (r < 0 || !enabled || to < 0 || to >= MAX_FDS || from == to) return;
  if (from >= 0 && from < MAX_FDS) slots[to] = slots[from];
  else memset(&slots[to], 0, sizeof slots[to]);
}

int dup(int fd) {
  load_symbols();
  int r = real_dup(fd);
  copy_slot(fd, r, r);
  return r;
}

int dup2(int fd, int to) {
  load_symbols();
  int r = real_dup2(fd, to);
  copy_slot(fd, to, r);
  return r;
}

int dup3(int fd, int to, int flags) {
  load_symbols();
  int r = real_dup3(fd, to, flags);
  copy_slot(fd, to, r);
  return r;
}

int fcntl(int fd, int cmd, ...) {
  load_symbols();
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *); // every fcntl argument fits a pointer
  va_end(ap);
  int r = real_fcntl(fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) copy_slot(fd, r, r);
  return r;
}

// glibc >= 2.28 binaries call fcntl64.
int fcntl64(int fd, int cmd, ...) {
  load_symbols();
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  int r = real_fcntl(fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) copy_slot(fd, r, r);
  return r;
}

// ---- names: overlay host names are asked of the runtime (the relay's DNS) ----

static int resolve_overlay(const char *name, uint32_t *addr) {
  size_t n = strlen(name);
  if (n == 0 || n > 253 || strcmp(name, "localhost") == 0) return -1;
  struct in6_addr tmp;
  if (inet_pton(AF_INET, name, &tmp) == 1 || inet_pton(AF_INET6, name, &tmp) == 1) return -1; // numeric: libc's
  int fd = real_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct request req = {.op = OP_RESOLVE, .arg = (uint32_t)n, .pid = (uint32_t)getpid()};
  struct reply rep;
  int err = exchange(fd, &req, name, n, &rep);
  real_close(fd);
  if (err != 0) return -1;
  *addr = rep.peer_addr;
  return 0;
}

struct gai_block {
  struct addrinfo ai;
  struct sockaddr_in sin;
};

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  load_symbols();
  uint32_t addr;
  int family = hints != NULL ? hints->ai_family : AF_UNSPEC;
  if (!enabled || node == NULL || (family != AF_UNSPEC && family != AF_INET) || resolve_overlay(node, &addr) != 0)
    return real_getaddrinfo(node, service, hints, res);
  // Let libc parse the service (and the hints) on the numeric address.
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, text, sizeof text);
  struct addrinfo h;
  if (hints != NULL) h = *hints;
  else memset(&h, 0, sizeof h);
  h.ai_family = AF_INET;
  h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~AI_CANONNAME;
  return real_getaddrinfo(text, service, &h, res);
}

struct hostent *gethostbyname(const char *name) {
  static __thread struct hostent he;
  static __thread uint32_t addr;
  static __thread char *list[2];
  static __thread char namebuf[256];
  load_symbols();
  if (!enabled || name == NULL || resolve_overlay(name, &addr) != 0) return real_gethostbyname(name);
  snprintf(namebuf, sizeof namebuf, "%s", name);
  list[0] = (char *)&addr;
  list[1] = NULL;
  he.h_name = namebuf;
  he.h_aliases = &list[1];
  he.h_addrtype = AF_INET;
  he.h_length = 4;
  he.h_addr_list = list;
  return &he;
}
