// imach_tun: a minimal Linux TUN device for Node, written against node_api.h only.
//
//   open(name, onPackets) -> handle   onPackets(err, packets: Uint8Array[] | null)
//   write(handle, packet) -> bytes     throws an Error with .code (EAGAIN, EINVAL, ...)
//   close(handle)                      idempotent; the kernel removes the device
//   ref(handle, bool)                  whether an open device keeps the event loop alive
//
// The fd is non-blocking and watched with a uv_poll_t: each readable event reads what is
// queued (at most MAX_BATCH packets, so a flood cannot starve the loop) and hands the
// batch to JavaScript in one call. Packets are read straight into a slab (an external
// ArrayBuffer) and handed out as Uint8Array views of it: no copy and no allocation per
// packet. A slab is freed when the last view of it is collected.

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define MAX_PACKET 65536
#define MAX_BATCH 64
#define SLAB_SIZE (1024 * 1024)

typedef struct {
  napi_env env;
  int fd;
  int closed;
  int busy;      // inside on_readable: a finalizer must leave the struct to it
  int finalized; // the JS handle is gone: free once not busy
  uv_poll_t *poll;
  napi_ref callback;
  napi_async_context async;
  napi_ref slab_ref; // the current slab's ArrayBuffer (NULL: none yet)
  unsigned char *slab;
  size_t slab_off;
  char name[IFNAMSIZ];
} tun_dev;

static napi_value make_errno_error(napi_env env, int err, const char *syscall, const char *detail) {
  const char *code = uv_err_name(-err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s%s%s: %s (%s)", syscall, detail ? " " : "", detail ? detail : "", code,
           strerror(err));
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  napi_throw(env, make_errno_error(env, err, syscall, detail));
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static void free_poll(uv_handle_t *h) { free(h); }

static void dev_shutdown(tun_dev *dev) {
  if (dev->closed) return;
  dev->closed = 1;
  if (dev->poll) {
    uv_poll_stop(dev->poll);
    uv_close((uv_handle_t *)dev->poll, free_poll);
    dev->poll = NULL;
  }
  if (dev->fd >= 0) {
    close(dev->fd);
    dev->fd = -1;
  }
  if (dev->callback) {
    napi_delete_reference(dev->env, dev->callback);
    dev->callback = NULL;
  }
  if (dev->async) {
    napi_async_destroy(dev->env, dev->async);
    dev->async = NULL;
  }
  if (dev->slab_ref) {
    napi_delete_reference(dev->env, dev->slab_ref);
    dev->slab_ref = NULL;
  }
  dev->slab = NULL;
}

static void free_slab(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

// Make sure the current slab has room for a packet of MAX_PACKET bytes; *ab is its ArrayBuffer.
static int slab_room(tun_dev *dev, napi_value *ab) {
  napi_env env = dev->env;
  if (dev->slab != NULL && SLAB_SIZE - dev->slab_off >= MAX_PACKET) {
    return *ab != NULL || napi_get_reference_value(env, dev->slab_ref, ab) == napi_ok ? 0 : -1;
  }
  unsigned char *mem = malloc(SLAB_SIZE);
  if (mem == NULL) return -1;
  napi_value fresh;
  if (napi_create_external_arraybuffer(env, mem, SLAB_SIZE, free_slab, NULL, &fresh) != napi_ok) {
    free(mem);
    return -1;
  }
  if (dev->slab_ref) napi_delete_reference(env, dev->slab_ref);
  dev->slab_ref = NULL;
  if (napi_create_reference(env, fresh, 1, &dev->slab_ref) != napi_ok) {
    dev->slab = NULL;
    return -1;
  }
  dev->slab = mem;
  dev->slab_off = 0;
  *ab = fresh;
  return 0;
}

static void dev_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tun_dev *dev = data;
  dev_shutdown(dev);
  if (dev->busy)
    dev->finalized = 1;
  else
    free(dev);
}

static void deliver(tun_dev *dev, napi_value err, napi_value packets) {
  if (dev->closed) return;
  napi_env env = dev->env;
  napi_value cb, recv, result;
  if (napi_get_reference_value(env, dev->callback, &cb) != napi_ok || cb == NULL) return;
  // napi_make_callback converts recv to an object: undefined would throw
  napi_get_global(env, &recv);
  napi_value argv[2] = {err, packets};
  napi_status st = napi_make_callback(env, dev->async, recv, cb, 2, argv, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void read_batch(tun_dev *dev, int status, int events) {
  napi_env env = dev->env;
  napi_value null_v;
  napi_get_null(env, &null_v);
  if (status < 0) {
    uv_poll_stop(dev->poll);
    deliver(dev, make_errno_error(env, -status, "poll", dev->name), null_v);
    return;
  }
  if (!(events & UV_READABLE)) return;

  napi_value batch;
  napi_create_array(env, &batch);
  uint32_t count = 0;
  int read_errno = 0;
  napi_value ab = NULL;
  while (count < MAX_BATCH) {
    if (slab_room(dev, &ab) != 0) {
      read_errno = ENOMEM;
      break;
    }
    ssize_t n = read(dev->fd, dev->slab + dev->slab_off, MAX_PACKET);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) read_errno = errno;
      break;
    }
    if (n == 0) break;
    napi_value pkt;
    if (napi_create_typedarray(env, napi_uint8_array, (size_t)n, ab, dev->slab_off, &pkt) != napi_ok) break;
    // the next packet starts 8-byte aligned
    dev->slab_off += ((size_t)n + 7) & ~(size_t)7;
    if (SLAB_SIZE - dev->slab_off < MAX_PACKET) ab = NULL;
    napi_set_element(env, batch, count++, pkt);
  }
  if (count > 0) deliver(dev, null_v, batch);
  if (read_errno != 0 && !dev->closed) {
    uv_poll_stop(dev->poll);
    deliver(dev, make_errno_error(env, read_errno, "read", dev->name), null_v);
  }
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  tun_dev *dev = poll->data;
  if (dev == NULL || dev->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(dev->env, &scope) != napi_ok) return;
  napi_env env = dev->env;
  dev->busy = 1;
  read_batch(dev, status, events);
  dev->busy = 0;
  if (dev->finalized) free(dev);
  napi_close_handle_scope(env, scope);
}

static tun_dev *unwrap(napi_env env, napi_value obj) {
  void *data = NULL;
  if (napi_unwrap(env, obj, &data) != napi_ok) return NULL;
  return data;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "open(name, onPackets) needs two arguments");

  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_string) return throw_type(env, "name must be a string");
  char name[IFNAMSIZ + 1];
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len);
  if (len == 0 || len >= IFNAMSIZ) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "interface name must have 1 to 15 bytes");
    return NULL;
  }
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "onPackets must be a function");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", "/dev/net/tun");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "ioctl", "TUNSETIFF");
  }

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    napi_throw_error(env, "ERR_TUN", "no event loop");
    return NULL;
  }

  tun_dev *dev = calloc(1, sizeof *dev);
  uv_poll_t *poll = malloc(sizeof *poll);
  if (dev == NULL || poll == NULL) {
    free(dev);
    free(poll);
    close(fd);
    return throw_errno(env, ENOMEM, "malloc", NULL);
  }
  dev->env = env;
  dev->fd = fd;
  memcpy(dev->name, ifr.ifr_name, IFNAMSIZ);
  dev->name[IFNAMSIZ - 1] = '\0';

  int rc = uv_poll_init(loop, poll, fd);
  if (rc < 0) {
    free(poll);
    dev_shutdown(dev);
    free(dev);
    return throw_errno(env, -rc, "uv_poll_init", NULL);
  }
  poll->data = dev;
  dev->poll = poll;

  napi_create_reference(env, argv[1], 1, &dev->callback);
  napi_value resource, resource_name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "imach.TunDevice", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, resource, resource_name, &dev->async);

  napi_value handle, name_v, fd_v;
  napi_create_object(env, &handle);
  napi_create_string_utf8(env, dev->name, NAPI_AUTO_LENGTH, &name_v);
  napi_set_named_property(env, handle, "name", name_v);
  napi_create_int32(env, fd, &fd_v);
  napi_set_named_property(env, handle, "fd", fd_v);
  if (napi_wrap(env, handle, dev, dev_finalize, NULL, NULL) != napi_ok) {
    dev_shutdown(dev);
    free(dev);
    napi_throw_error(env, "ERR_TUN", "napi_wrap failed");
    return NULL;
  }

  rc = uv_poll_start(poll, UV_READABLE, on_readable);
  if (rc < 0) {
    dev_shutdown(dev);
    return throw_errno(env, -rc, "uv_poll_start", NULL);
  }
  return handle;
}

static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "write(handle, packet) needs two arguments");
  tun_dev *dev = unwrap(env, argv[0]);
  if (dev == NULL) return throw_type(env, "handle is not a TUN device");
  if (dev->closed) return throw_errno(env, EBADF, "write", dev->name);

  bool is_ta = false;
  napi_is_typedarray(env, argv[1], &is_ta);
  if (!is_ta) return throw_type(env, "packet must be a Uint8Array");
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL);
  if (type != napi_uint8_array) return throw_type(env, "packet must be a Uint8Array");

  ssize_t n;
  do {
    n = write(dev->fd, data, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "write", dev->name);
  napi_value out;
  napi_create_int64(env, (int64_t)n, &out);
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_type(env, "close(handle) needs one argument");
  tun_dev *dev = unwrap(env, argv[0]);
  if (dev == NULL) return throw_type(env, "handle is not a TUN device");
  dev_shutdown(dev);
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "ref(handle, bool) needs two arguments");
  tun_dev *dev = unwrap(env, argv[0]);
  if (dev == NULL) return throw_type(env, "handle is not a TUN device");
  bool on = true;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return throw_type(env, "ref flag must be a boolean");
  if (dev->poll != NULL) {
    if (on)
      uv_ref((uv_handle_t *)dev->poll);
    else
      uv_unref((uv_handle_t *)dev->poll);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
