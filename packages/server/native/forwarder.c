/*
 * ccp wire forwarder: the data plane of the Postgres wire endpoint.
 *
 * After ccpd has done a session's start-up and SCRAM authentication in
 * JavaScript (wire/proxy.ts), it hands the two sockets of the session (the
 * client's TCP socket and the instance's unix socket) to this addon, which
 * forwards bytes untouched in both directions from one worker thread
 * (io_uring, or epoll where io_uring is unavailable or refused), the way
 * PgBouncer's event loop does, but without parsing packets (session pooling
 * needs none) and without waking the JavaScript thread for every message.
 *
 * JavaScript API (see wire/forwarder.ts):
 *   init(onClose: (id: number) => void, engine: "auto" | "epoll"): "io_uring" | "epoll"
 *       starts the worker thread; "epoll" refuses io_uring; returns the engine in use.
 *   forward(clientFd, backendFd, toClient: Buffer, toBackend: Buffer): number
 *       dups both fds (close-on-exec; the caller then closes its own copies),
 *       queues the given bytes ahead of anything forwarded, returns a session id.
 *   shutdown(id): boolean   ends a session (both sockets see EOF); onClose follows.
 *   active(): number        sessions being forwarded.
 *
 * Each direction has at most one pending buffer: while bytes for a socket wait
 * for it to become writable, the opposite socket is not read (back-pressure,
 * memory bounded by one read per direction). A read EOF is passed on as a
 * write shutdown once the pending bytes are out; the session ends when both
 * directions have ended, or at the first error. Only the worker thread frees
 * sessions; the JavaScript thread registers sessions and shuts sockets down
 * under the same mutex the worker holds while it handles a batch of events.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define MAX_EVENTS 256

struct session;

struct endpoint {
  struct session *s;
  int side; /* 0 = client, 1 = backend */
};

struct session {
  uint32_t id;
  int fd[2];
  struct endpoint ep[2];
  char *out[2];      /* bytes waiting to be written to fd[i] */
  size_t out_len[2];
  size_t out_off[2];
  int eof[2];        /* read EOF seen on fd[i] */
  int shut[2];       /* write side of fd[i] shut down */
  int gone[2];       /* fd[i] hung up: out of epoll, nothing more to read or write */
  uint32_t events[2];
  int dead;
  /* io_uring engine */
  char *in[2];        /* receive buffer for fd[i] */
  size_t sending[2];  /* length of the send in flight to fd[i] */
  int pending;        /* operations in flight; freed at 0 once dead */
  struct session *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
enum engine { ENGINE_NONE, ENGINE_EPOLL, ENGINE_URING };
static enum engine engine = ENGINE_NONE;
static int epfd = -1;
static struct session *sessions = NULL; /* live sessions */
static uint32_t next_id = 1;
static uint32_t live = 0;
static napi_threadsafe_function on_close = NULL;
static char buffer[READ_CHUNK];

static uint32_t wanted(struct session *s, int side) {
  int other = 1 - side;
  uint32_t ev = 0;
  /* read side while the bytes for the other socket are out */
  if (!s->eof[side] && s->out_len[other] == 0) ev |= EPOLLIN;
  if (s->out_len[side] > 0) ev |= EPOLLOUT;
  return ev;
}

static int update(struct session *s, int side) {
  if (s->gone[side]) return 0;
  uint32_t ev = wanted(s, side);
  if (ev == s->events[side]) return 0;
  struct epoll_event e = {.events = ev, .data.ptr = &s->ep[side]};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd[side], &e) != 0) return -1;
  s->events[side] = ev;
  return 0;
}

static void kill_session(struct session *s) {
  if (s->dead) return;
  s->dead = 1;
  for (int i = 0; i < 2; i++) {
    if (!s->gone[i]) epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd[i], NULL);
    close(s->fd[i]);
    s->fd[i] = -1;
  }
}

/* Write pending bytes to fd[side]; -1 on a fatal error. */
static int flush(struct session *s, int side) {
  while (s->out_len[side] > s->out_off[side]) {
    ssize_t w = send(s->fd[side], s->out[side] + s->out_off[side], s->out_len[side] - s->out_off[side], MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    s->out_off[side] += (size_t)w;
  }
  free(s->out[side]);
  s->out[side] = NULL;
  s->out_len[side] = s->out_off[side] = 0;
  /* the other side ended while these bytes waited: pass its EOF on now */
  if (s->eof[1 - side] && !s->shut[side]) {
    shutdown(s->fd[side], SHUT_WR);
    s->shut[side] = 1;
  }
  return 0;
}

/* Read once from fd[side] and write it to the other socket; -1 on a fatal error. */
static int pump(struct session *s, int side) {
  int other = 1 - side;
  ssize_t r;
  do r = recv(s->fd[side], buffer, sizeof buffer, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  if (r == 0) {
    s->eof[side] = 1;
    if (s->out_len[other] == 0 && !s->shut[other]) {
      shutdown(s->fd[other], SHUT_WR);
      s->shut[other] = 1;
    }
    return 0;
  }
  size_t done = 0;
  while (done < (size_t)r) {
    ssize_t w = send(s->fd[other], buffer + done, (size_t)r - done, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    done += (size_t)w;
  }
  if (done < (size_t)r) {
    size_t rest = (size_t)r - done;
    s->out[other] = malloc(rest);
    if (!s->out[other]) return -1;
    memcpy(s->out[other], buffer + done, rest);
    s->out_len[other] = rest;
    s->out_off[other] = 0;
  }
  return 0;
}

/*
 * fd[side] hung up: what is left in its receive queue is bounded, so read all of
 * it (regardless of back-pressure) for the other socket, then drop it from epoll.
 */
static int hang_up(struct session *s, int side) {
  int other = 1 - side;
  for (;;) {
    ssize_t r = recv(s->fd[side], buffer, sizeof buffer, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (s->gone[other]) continue;
    char *grown = realloc(s->out[other], s->out_len[other] + (size_t)r);
    if (!grown) return -1;
    memcpy(grown + s->out_len[other], buffer, (size_t)r);
    s->out[other] = grown;
    s->out_len[other] += (size_t)r;
  }
  s->eof[side] = 1;
  s->gone[side] = 1;
  if (!s->gone[other] && s->out_len[other] == 0 && !s->shut[other]) {
    shutdown(s->fd[other], SHUT_WR);
    s->shut[other] = 1;
  }
  free(s->out[side]);
  s->out[side] = NULL;
  s->out_len[side] = s->out_off[side] = 0;
  epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd[side], NULL);
  return 0;
}

/* Both directions are over: read to EOF and written out, or their destination is gone. */
static int finished(struct session *s) {
  for (int side = 0; side < 2; side++) {
    int other = 1 - side;
    if (!s->gone[other] && !(s->eof[side] && s->out_len[other] == 0)) return 0;
  }
  return 1;
}

static void notify_closed(uint32_t id) {
  uint32_t *data = malloc(sizeof *data);
  if (!data) return;
  *data = id;
  if (napi_call_threadsafe_function(on_close, data, napi_tsfn_nonblocking) != napi_ok) free(data);
}

static void epoll_loop(void) {
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) {
      struct endpoint *e = events[i].data.ptr;
      struct session *s = e->s;
      if (s->dead) continue;
      int side = e->side;
      uint32_t ev = events[i].events;
      int failed = 0;
      if (ev & EPOLLERR) failed = 1;
      if (!failed && (ev & EPOLLOUT) && !s->gone[side] && flush(s, side) < 0) failed = 1;
      if (!failed && !s->gone[side]) {
        if (ev & EPOLLHUP) {
          if (hang_up(s, side) < 0) failed = 1;
        } else if ((ev & EPOLLIN) && !s->eof[side] && s->out_len[1 - side] == 0 && pump(s, side) < 0) {
          failed = 1;
        }
      }
      /* a hung-up socket's last bytes may now wait for the other one: try at once */
      if (!failed && s->out_len[1 - side] > 0 && !s->gone[1 - side] && flush(s, 1 - side) < 0) failed = 1;
      if (!failed && finished(s)) failed = 1;
      if (!failed && (update(s, 0) < 0 || update(s, 1) < 0)) failed = 1;
      if (failed) kill_session(s);
    }
    /* free ended sessions only after the whole batch: later events may name them */
    struct session **link = &sessions;
    while (*link) {
      struct session *s = *link;
      if (!s->dead) {
        link = &s->next;
        continue;
      }
      *link = s->next;
      live--;
      notify_closed(s->id);
      free(s->out[0]);
      free(s->out[1]);
      free(s);
    }
    pthread_mutex_unlock(&lock);
  }
}


/*
 * --- io_uring engine ---
 *
 * The same forwarding with a third of the system calls: epoll costs
 * epoll_wait + recv + send per message, this costs one io_uring_enter, which
 * submits the send of what was just received, linked to the next receive on
 * the same socket, and waits for the next completion. Receives land in a
 * per-direction buffer that is sent from directly, and the next receive starts
 * only when that send is complete (IOSQE_IO_LINK): back-pressure for free.
 * Sends use MSG_WAITALL, so the kernel finishes short sends itself; a send that
 * still comes up short is a broken connection and ends the session.
 * Used when the kernel allows it (container seccomp profiles often do not);
 * otherwise the epoll engine above.
 */
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define RING_ENTRIES 1024
#define RECV_BUFFER (32 * 1024)
enum op { OP_RECV0, OP_RECV1, OP_SEND0, OP_SEND1, OP_WAKE, OP_CANCEL };

static struct {
  int fd;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, sq_entries;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
} ring = {.fd = -1};
static int wake_fd = -1;
static uint64_t wake_value;
static struct session *arriving = NULL; /* registered by JavaScript, not yet armed */

/* Submit every queued entry (the kernel's head says how many it took so far), waiting for `wait` completions. */
static int ring_enter(unsigned wait) {
  unsigned queued = *ring.sq_tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
  return (int)syscall(__NR_io_uring_enter, ring.fd, queued, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
}

static int ring_setup(void) {
  struct io_uring_params p;
  unsigned flag_sets[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SUBMIT_ALL, 0};
  int fd = -1;
  for (unsigned i = 0; i < sizeof flag_sets / sizeof flag_sets[0] && fd < 0; i++) {
    memset(&p, 0, sizeof p);
    p.flags = flag_sets[i];
    fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0 && errno != EINVAL) return -1; /* ENOSYS, EPERM: not allowed here */
  }
  if (fd < 0) return -1;
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_SINGLE_MMAP)) {
    close(fd);
    return -1;
  }
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  size_t size = sq_size > cq_size ? sq_size : cq_size;
  char *rings = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (rings == MAP_FAILED) {
    close(fd);
    return -1;
  }
  struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) {
    munmap(rings, size);
    close(fd);
    return -1;
  }
  ring.fd = fd;
  ring.sq_head = (unsigned *)(rings + p.sq_off.head);
  ring.sq_tail = (unsigned *)(rings + p.sq_off.tail);
  ring.sq_mask = (unsigned *)(rings + p.sq_off.ring_mask);
  ring.sq_array = (unsigned *)(rings + p.sq_off.array);
  ring.sq_entries = p.sq_entries;
  ring.cq_head = (unsigned *)(rings + p.cq_off.head);
  ring.cq_tail = (unsigned *)(rings + p.cq_off.tail);
  ring.cq_mask = (unsigned *)(rings + p.cq_off.ring_mask);
  ring.cqes = (struct io_uring_cqe *)(rings + p.cq_off.cqes);
  ring.sqes = sqes;
  return 0;
}

/* The next submission slot; submits what is queued when the ring is full. */
static struct io_uring_sqe *ring_sqe(void) {
  for (;;) {
    unsigned tail = *ring.sq_tail;
    unsigned head = __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    if (tail - head < ring.sq_entries) {
      unsigned index = tail & *ring.sq_mask;
      struct io_uring_sqe *sqe = &ring.sqes[index];
      memset(sqe, 0, sizeof *sqe);
      ring.sq_array[index] = index;
      __atomic_store_n(ring.sq_tail, tail + 1, __ATOMIC_RELEASE);
      return sqe;
    }
    ring_enter(0);
  }
}

static uint64_t tag(struct session *s, enum op op) { return (uint64_t)(uintptr_t)s | (uint64_t)op; }

static void arm_recv(struct session *s, int side, unsigned flags) {
  struct io_uring_sqe *sqe = ring_sqe();
  sqe->opcode = IORING_OP_RECV;
  /* Wait for data before trying: right after a send, the answer is not there yet (kernel 5.19+, ignored before). */
  sqe->ioprio = IORING_RECVSEND_POLL_FIRST;
  sqe->fd = s->fd[side];
  sqe->addr = (uint64_t)(uintptr_t)s->in[side];
  sqe->len = RECV_BUFFER;
  sqe->flags = flags;
  sqe->user_data = tag(s, side == 0 ? OP_RECV0 : OP_RECV1);
  s->pending++;
}

/* Send to fd[to], then (linked) receive again on the other socket. */
static void send_then_recv(struct session *s, int to, const char *data, size_t len) {
  struct io_uring_sqe *sqe = ring_sqe();
  sqe->opcode = IORING_OP_SEND;
  sqe->fd = s->fd[to];
  sqe->addr = (uint64_t)(uintptr_t)data;
  sqe->len = (unsigned)len;
  sqe->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
  sqe->flags = IOSQE_IO_LINK;
  sqe->user_data = tag(s, to == 0 ? OP_SEND0 : OP_SEND1);
  s->sending[to] = len;
  s->pending++;
  arm_recv(s, 1 - to, 0);
}

static void uring_kill(struct session *s) {
  if (s->dead) return;
  s->dead = 1;
  for (int i = 0; i < 2; i++) shutdown(s->fd[i], SHUT_RDWR);
  if (s->pending == 0) return;
  /* Shutting down wakes the operations in flight; cancelling makes sure. Submitted now,
     while the descriptors are still this session's (they close when the last completes). */
  for (int i = 0; i < 2; i++) {
    struct io_uring_sqe *sqe = ring_sqe();
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = s->fd[i];
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = OP_CANCEL;
  }
  ring_enter(0);
}

static void arm_wake(void) {
  struct io_uring_sqe *sqe = ring_sqe();
  sqe->opcode = IORING_OP_READ;
  sqe->fd = wake_fd;
  sqe->addr = (uint64_t)(uintptr_t)&wake_value;
  sqe->len = sizeof wake_value;
  sqe->user_data = OP_WAKE;
}

/* Sessions JavaScript registered: send what start-up left for each socket, then start receiving. */
static void arm_arrivals(void) {
  while (arriving) {
    struct session *s = arriving;
    arriving = s->next;
    s->next = sessions;
    sessions = s;
    for (int to = 0; to < 2; to++) {
      if (s->out_len[to] > 0) send_then_recv(s, to, s->out[to], s->out_len[to]);
      else arm_recv(s, 1 - to, 0);
    }
  }
}

static void uring_complete(uint64_t user_data, int res) {
  enum op op = (enum op)(user_data & 7);
  if (op == OP_CANCEL) return;
  if (op == OP_WAKE) {
    arm_wake();
    arm_arrivals();
    return;
  }
  struct session *s = (struct session *)(uintptr_t)(user_data & ~(uint64_t)7);
  s->pending--;
  if (!s->dead) {
    if (op == OP_RECV0 || op == OP_RECV1) {
      int side = op == OP_RECV0 ? 0 : 1;
      if (res > 0) {
        send_then_recv(s, 1 - side, s->in[side], (size_t)res);
      } else if (res == 0) {
        s->eof[side] = 1;
        if (s->eof[1 - side]) uring_kill(s);
        else shutdown(s->fd[1 - side], SHUT_WR);
      } else if (res != -ECANCELED) { /* -ECANCELED: its linked send failed, which says why */
        uring_kill(s);
      }
    } else {
      int to = op == OP_SEND0 ? 0 : 1;
      if (res < 0 || (size_t)res != s->sending[to]) uring_kill(s);
    }
  }
  if (s->dead && s->pending == 0) {
    struct session **link = &sessions;
    while (*link && *link != s) link = &(*link)->next;
    if (*link) *link = s->next;
    live--;
    notify_closed(s->id);
    for (int i = 0; i < 2; i++) {
      close(s->fd[i]);
      free(s->out[i]);
      free(s->in[i]);
    }
    free(s);
  }
}

static void uring_loop(void) {
  arm_wake();
  for (;;) {
    if (ring_enter(1) < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) return;
    pthread_mutex_lock(&lock);
    unsigned head = *ring.cq_head;
    unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    while (head != tail) {
      struct io_uring_cqe *cqe = &ring.cqes[head & *ring.cq_mask];
      uint64_t user_data = cqe->user_data;
      int res = cqe->res;
      head++;
      __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
      uring_complete(user_data, res);
      tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    }
    pthread_mutex_unlock(&lock);
  }
}

/* --- the worker thread: picks an engine, tells init() which, runs it --- */

static pthread_mutex_t started_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t started = PTHREAD_COND_INITIALIZER;
static int allow_uring = 1;
static int worker_failed = 0;

/*
 * The engine's wait failed for good (not seen in practice): end every session so its
 * client sees a closed connection instead of a hang, and refuse new ones (JavaScript
 * then forwards them itself). Buffers are left allocated: the kernel may still hold them.
 */
static void abandon(void) {
  pthread_mutex_lock(&lock);
  engine = ENGINE_NONE;
  struct session *lists[2] = {sessions, arriving};
  for (int l = 0; l < 2; l++) {
    for (struct session *s = lists[l]; s; s = s->next) {
      if (s->dead) continue;
      s->dead = 1;
      for (int i = 0; i < 2; i++) {
        shutdown(s->fd[i], SHUT_RDWR);
        close(s->fd[i]);
      }
      notify_closed(s->id);
    }
  }
  sessions = arriving = NULL;
  live = 0;
  pthread_mutex_unlock(&lock);
}

static void *worker(void *arg) {
  (void)arg;
  enum engine chosen = ENGINE_EPOLL;
  if (allow_uring && ring_setup() == 0) {
    wake_fd = eventfd(0, EFD_CLOEXEC);
    if (wake_fd >= 0) chosen = ENGINE_URING;
  }
  if (chosen == ENGINE_EPOLL) epfd = epoll_create1(EPOLL_CLOEXEC);
  pthread_mutex_lock(&started_lock);
  engine = (chosen == ENGINE_EPOLL && epfd < 0) ? ENGINE_NONE : chosen;
  worker_failed = engine == ENGINE_NONE;
  pthread_cond_signal(&started);
  pthread_mutex_unlock(&started_lock);
  if (engine == ENGINE_URING) uring_loop();
  else if (engine == ENGINE_EPOLL) epoll_loop();
  abandon();
  return NULL;
}

/* --- N-API glue --- */

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "ccp forwarder: " #call " failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static void call_on_close(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  uint32_t id = *(uint32_t *)data;
  free(data);
  if (env == NULL || js_cb == NULL) return;
  napi_value undefined, arg;
  napi_get_undefined(env, &undefined);
  napi_create_uint32(env, id, &arg);
  napi_call_function(env, undefined, js_cb, 1, &arg, NULL);
}

static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (on_close != NULL) {
    napi_throw_error(env, NULL, "ccp forwarder: already initialised");
    return NULL;
  }
  char wanted_engine[16] = "auto";
  if (argc > 1) {
    size_t n;
    CHECK(napi_get_value_string_utf8(env, argv[1], wanted_engine, sizeof wanted_engine, &n));
  }
  allow_uring = strcmp(wanted_engine, "epoll") != 0;
  napi_value name;
  CHECK(napi_create_string_utf8(env, "ccp-forwarder-close", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_on_close, &on_close));
  /* the worker must not keep ccpd alive by itself */
  CHECK(napi_unref_threadsafe_function(env, on_close));
  pthread_t thread;
  if (pthread_create(&thread, NULL, worker, NULL) != 0) {
    napi_throw_error(env, NULL, "ccp forwarder: pthread_create failed");
    return NULL;
  }
  pthread_setname_np(thread, "ccp-forwarder");
  pthread_detach(thread);
  pthread_mutex_lock(&started_lock);
  while (engine == ENGINE_NONE && !worker_failed) pthread_cond_wait(&started, &started_lock);
  pthread_mutex_unlock(&started_lock);
  if (engine == ENGINE_NONE) {
    napi_throw_error(env, NULL, "ccp forwarder: neither io_uring nor epoll is available");
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_string_utf8(env, engine == ENGINE_URING ? "io_uring" : "epoll", NAPI_AUTO_LENGTH, &result));
  return result;
}

static int copy_buffer(napi_env env, napi_value value, char **out, size_t *len) {
  void *data;
  size_t n;
  if (napi_get_buffer_info(env, value, &data, &n) != napi_ok) return -1;
  *out = NULL;
  *len = 0;
  if (n == 0) return 0;
  *out = malloc(n);
  if (!*out) return -1;
  memcpy(*out, data, n);
  *len = n;
  return 0;
}

static napi_value forward(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || engine == ENGINE_NONE) {
    napi_throw_error(env, NULL, "ccp forwarder: forward(clientFd, backendFd, toClient, toBackend) after init()");
    return NULL;
  }
  int32_t fds[2];
  CHECK(napi_get_value_int32(env, argv[0], &fds[0]));
  CHECK(napi_get_value_int32(env, argv[1], &fds[1]));
  struct session *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, NULL, "ccp forwarder: out of memory");
    return NULL;
  }
  s->fd[0] = s->fd[1] = -1;
  if (copy_buffer(env, argv[2], &s->out[0], &s->out_len[0]) < 0 || copy_buffer(env, argv[3], &s->out[1], &s->out_len[1]) < 0) {
    free(s->out[0]);
    free(s->out[1]);
    free(s);
    napi_throw_error(env, NULL, "ccp forwarder: toClient and toBackend must be Buffers");
    return NULL;
  }
  const char *failure = NULL;
  for (int i = 0; i < 2 && !failure; i++) {
    s->fd[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (s->fd[i] < 0) failure = "ccp forwarder: cannot duplicate a socket";
    else if (fcntl(s->fd[i], F_SETFL, fcntl(s->fd[i], F_GETFL) | O_NONBLOCK) != 0) failure = "ccp forwarder: cannot make a socket non-blocking";
    s->ep[i].s = s;
    s->ep[i].side = i;
  }
  if (!failure && engine == ENGINE_URING) {
    for (int i = 0; i < 2 && !failure; i++)
      if (!(s->in[i] = malloc(RECV_BUFFER))) failure = "ccp forwarder: out of memory";
  }
  pthread_mutex_lock(&lock);
  if (!failure && engine == ENGINE_NONE) failure = "ccp forwarder: its thread has stopped";
  int added = 0;
  if (!failure && engine == ENGINE_EPOLL) {
    for (; added < 2; added++) {
      s->events[added] = wanted(s, added);
      struct epoll_event e = {.events = s->events[added], .data.ptr = &s->ep[added]};
      if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd[added], &e) != 0) {
        failure = "ccp forwarder: epoll_ctl failed";
        break;
      }
    }
  }
  if (failure) {
    for (int i = 0; i < added; i++) epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd[i], NULL);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 2; i++) {
      if (s->fd[i] >= 0) close(s->fd[i]);
      free(s->out[i]);
      free(s->in[i]);
    }
    free(s);
    napi_throw_error(env, NULL, failure);
    return NULL;
  }
  s->id = next_id++;
  if (next_id == 0) next_id = 1;
  live++;
  uint32_t id = s->id;
  if (engine == ENGINE_URING) {
    /* the worker owns the ring: it arms the session when woken */
    s->next = arriving;
    arriving = s;
    uint64_t one = 1;
    ssize_t w = write(wake_fd, &one, sizeof one);
    (void)w; /* cannot fail short of a full counter, which also wakes the worker */
  } else {
    s->next = sessions;
    sessions = s;
  }
  pthread_mutex_unlock(&lock);
  napi_value result;
  CHECK(napi_create_uint32(env, id, &result));
  return result;
}

static napi_value shutdown_session(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &id));
  int found = 0;
  pthread_mutex_lock(&lock);
  struct session *lists[2] = {sessions, arriving};
  for (int l = 0; l < 2 && !found; l++) {
    for (struct session *s = lists[l]; s; s = s->next) {
      if (s->id == id && !s->dead) {
        /* the worker sees EOF/HUP on both sockets and ends the session */
        shutdown(s->fd[0], SHUT_RDWR);
        shutdown(s->fd[1], SHUT_RDWR);
        found = 1;
        break;
      }
    }
  }
  pthread_mutex_unlock(&lock);
  napi_value result;
  CHECK(napi_get_boolean(env, found, &result));
  return result;
}

static napi_value active(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&lock);
  uint32_t n = live;
  pthread_mutex_unlock(&lock);
  napi_value result;
  CHECK(napi_create_uint32(env, n, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"init", NULL, init, NULL, NULL, NULL, napi_default, NULL},
      {"forward", NULL, forward, NULL, NULL, NULL, napi_default, NULL},
      {"shutdown", NULL, shutdown_session, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, active, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
