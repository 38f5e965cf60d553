/*
 * ccp-jail: start one Postgres server in its own sandbox, the Firecracker
 * jailer's way (README "Isolation"). Run by ccpd as root:
 *
 *   ccp-jail --uid N --gid N --root DIR [--cgroup DIR]... [--ro PATH]... [--rw PATH]...
 *            [--user NAME:UID:GID]... [--lock FILE] [--restore-dir DIR] [--probe] -- /abs/postgres ARGS...
 *
 * 1. join each --cgroup (own pid into cgroup.procs) before anything forks, so
 *    every process of the server is accounted and limited there;
 * 2. new mount, pid, ipc and net namespaces (the net namespace has no
 *    interface: Postgres only listens on its unix socket, reached by path);
 * 3. a private root: a tmpfs on --root with only the --ro paths (read-only)
 *    and --rw paths (read-write) bound at their host paths, /dev/{null,zero,
 *    random,urandom}, a private /tmp and /dev/shm, a fresh /proc and an
 *    /etc/passwd+group of the --user lines; pivot_root into it;
 * 4. drop to --uid/--gid (no supplementary groups, no new privileges) and exec.
 *
 * Three processes stay: this one (in ccpd's pid namespace: ccpd's child, so
 * ccpd sees the server exit), an init (pid 1 of the new namespace: reaps
 * orphans; when it exits the kernel ends everything left in the namespace)
 * and the postmaster. Both relay SIGINT/SIGTERM/SIGQUIT/SIGHUP/SIGUSR1/SIGUSR2
 * down and pass the postmaster's exit status up (a signal death as itself).
 * All three run as --uid once set up; the init dies with this process
 * (PR_SET_PDEATHSIG), so a SIGKILL to it takes the whole sandbox down.
 *
 * Exit status 125 (and a message on stderr): the sandbox could not be made.
 * --probe makes it, drops privileges, prints "ok" and exits 0: ccpd runs it
 * once at start-up to report what is really in force.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAIL 125
#define MAX_ITEMS 64

static const char *paths_ro[MAX_ITEMS], *paths_rw[MAX_ITEMS], *cgroups[MAX_ITEMS], *users[MAX_ITEMS];
static int n_ro, n_rw, n_cg, n_users;
static const char *root_dir, *lock_file, *restore_dir;
static uid_t uid = (uid_t)-1;
static gid_t gid = (gid_t)-1;
static int probe;
static const char *oom_value = "0";
static volatile pid_t relay_to;
static volatile sig_atomic_t pending_sig;
static const int relayed[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};

static void die(const char *fmt, ...) {
  va_list ap;
  int saved = errno;
  fputs("ccp-jail: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (saved) fprintf(stderr, ": %s", strerror(saved));
  fputc('\n', stderr);
  _exit(FAIL);
}

static void add(const char **list, int *n, const char *value) {
  if (*n >= MAX_ITEMS) {
    errno = 0;
    die("too many items (at most %d of each option)", MAX_ITEMS);
  }
  list[(*n)++] = value;
}

static void write_file(const char *file, const char *text) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", file);
  ssize_t len = (ssize_t)strlen(text);
  if (write(fd, text, (size_t)len) != len) die("write %s to %s", text, file);
  close(fd);
}

/* mkdir -p inside the new root (no symlinks there: every component is made by us). */
static void mkdirs(const char *dir, mode_t mode) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) die("path too long: %s", dir);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) die("mkdir %s", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) die("mkdir %s", buf);
}

static void inside(char *out, const char *path) {
  if (path[0] != '/') {
    errno = 0;
    die("not an absolute path: %s", path);
  }
  if (snprintf(out, PATH_MAX, "%s%s", root_dir, path) >= PATH_MAX) die("path too long: %s", path);
}

/* Bind a host path at the same path inside the new root: read-only, or read-write (devices stay usable). */
static void bind(const char *path, int readonly, int devices) {
  char target[PATH_MAX];
  struct stat st;
  inside(target, path);
  if (stat(path, &st) < 0) die("stat %s", path);
  if (S_ISDIR(st.st_mode)) {
    mkdirs(target, 0755);
  } else {
    char parent[PATH_MAX];
    memcpy(parent, target, sizeof parent);
    *strrchr(parent, '/') = 0;
    mkdirs(parent, 0755);
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) die("create %s", target);
    close(fd);
  }
  if (mount(path, target, NULL, MS_BIND, NULL) < 0) die("bind %s", path);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (readonly ? MS_RDONLY : 0) | (devices ? 0 : MS_NODEV);
  if (mount(NULL, target, NULL, flags, NULL) < 0) die("remount %s", path);
}

static void write_etc(void) {
  char dir[PATH_MAX], file[PATH_MAX];
  inside(dir, "/etc");
  mkdirs(dir, 0755);
  FILE *passwd, *group;
  if (snprintf(file, sizeof file, "%s/passwd", dir) >= (int)sizeof file) die("path too long: %s", dir);
  if (!(passwd = fopen(file, "we"))) die("create %s", file);
  if (snprintf(file, sizeof file, "%s/group", dir) >= (int)sizeof file) die("path too long: %s", dir);
  if (!(group = fopen(file, "we"))) die("create %s", file);
  for (int i = 0; i < n_users; i++) {
    char name[64];
    unsigned long u, g;
    if (sscanf(users[i], "%63[^:]:%lu:%lu", name, &u, &g) != 3) {
      errno = 0;
      die("--user wants NAME:UID:GID, got %s", users[i]);
    }
    fprintf(passwd, "%s:x:%lu:%lu::/nonexistent:/nonexistent\n", name, u, g);
    fprintf(group, "%s:x:%lu:\n", name, g);
  }
  if (fclose(passwd) || fclose(group)) die("write /etc");
}

static void make_root(void) {
  char p[PATH_MAX];
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
  if (mount("tmpfs", root_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0) die("mount tmpfs on %s", root_dir);
  inside(p, "/tmp");
  mkdirs(p, 01777);
  if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) die("mount /tmp");
  inside(p, "/dev/shm");
  mkdirs(p, 01777);
  if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) die("mount /dev/shm");
  static const char *devices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) bind(devices[i], 0, 1);
  for (int i = 0; i < n_ro; i++) bind(paths_ro[i], 1, 0);
  for (int i = 0; i < n_rw; i++) bind(paths_rw[i], 0, 0);
  if (restore_dir) {
    /* A recovery start: Postgres runs restore_command through /bin/sh, which is this program (sh_main). */
    char self[PATH_MAX], target[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) die("readlink /proc/self/exe");
    self[n] = 0;
    bind(restore_dir, 1, 0);
    inside(target, "/bin/sh");
    char parent[PATH_MAX];
    inside(parent, "/bin");
    mkdirs(parent, 0755);
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    if (fd < 0) die("create %s", target);
    close(fd);
    if (mount(self, target, NULL, MS_BIND, NULL) < 0) die("bind %s", self);
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) die("remount %s", target);
  }
  write_etc();
  inside(p, "/proc");
  mkdirs(p, 0555);
  if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
  inside(p, "/.old");
  mkdirs(p, 0700);
  if (syscall(SYS_pivot_root, root_dir, p) < 0) die("pivot_root");
  if (chdir("/") < 0) die("chdir /");
  if (umount2("/.old", MNT_DETACH) < 0) die("detach the host's root");
  if (rmdir("/.old") < 0) die("rmdir /.old");
  if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) die("make / read-only");
}

static void drop_privileges(void) {
  if (setgroups(0, NULL) < 0) die("setgroups");
  if (setgid(gid) < 0) die("setgid %u", (unsigned)gid);
  if (setuid(uid) < 0) die("setuid %u", (unsigned)uid);
  if (getuid() != uid || geteuid() != uid || getgid() != gid) {
    errno = 0;
    die("identity did not change");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
}

static void on_signal(int sig) {
  pid_t to = relay_to;
  if (to > 0) kill(to, sig);
  else pending_sig = sig;
}

static void relay_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
}

static void default_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
}

static void set_relay(pid_t to) {
  relay_to = to;
  if (pending_sig) kill(to, pending_sig);
}

/* Exit as the child did: its code, or (passed up as 128+N by the init) its signal. */
static void exit_like(int status) {
  int sig;
  if (WIFSIGNALED(status)) sig = WTERMSIG(status);
  else if (WEXITSTATUS(status) > 128 && WEXITSTATUS(status) < 128 + NSIG) sig = WEXITSTATUS(status) - 128;
  else _exit(WEXITSTATUS(status));
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  _exit(128 + sig);
}

static int init_main(char **argv, int parent_alive) {
  make_root();
  if (probe) {
    drop_privileges();
    printf("ok%s\n", strcmp(oom_value, "0") ? "" : " oom-shield");
    fflush(stdout);
    return 0;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pg = fork();
  if (pg < 0) die("fork");
  if (pg == 0) {
    default_signals();
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(parent_alive);
    drop_privileges();
    /* Each child the postmaster forks sets its own (see oom_value above). */
    setenv("PG_OOM_ADJUST_FILE", "/proc/self/oom_score_adj", 1);
    setenv("PG_OOM_ADJUST_VALUE", oom_value, 1);
    if (restore_dir) setenv("CCP_JAIL_RESTORE_DIR", restore_dir, 1);
    execv(argv[0], argv);
    die("exec %s", argv[0]);
  }
  drop_privileges();
  /* Set after the identity change (which clears it): this init, and so the namespace, ends with its parent. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) die("pdeathsig");
  struct pollfd pfd = {.fd = parent_alive, .events = POLLIN};
  if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR))) _exit(FAIL);
  relay_signals();
  set_relay(pg);
  sigprocmask(SIG_SETMASK, &old, NULL);
  for (;;) {
    int status;
    pid_t done = wait(&status);
    if (done < 0) {
      if (errno == EINTR) continue;
      die("wait");
    }
    if (done != pg) continue; /* an orphan reaped */
    if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
    _exit(WEXITSTATUS(status));
  }
}

/*
 * Run as /bin/sh inside the sandbox of a recovery start: the one command it
 * knows is `ccp-restore NAME DEST` (the restore_command ccpd sets), copying an
 * archived WAL file out of --restore-dir. Anything else (COPY ... PROGRAM) finds no shell.
 */
static int sh_main(int argc, char **argv) {
  const char *dir = getenv("CCP_JAIL_RESTORE_DIR");
  char name[256], dest[PATH_MAX], extra, src[PATH_MAX];
  if (argc != 3 || strcmp(argv[1], "-c") || !dir || sscanf(argv[2], "ccp-restore %255s %4095s %c", name, dest, &extra) != 2) {
    fputs("sh: there is no shell in this sandbox (ccp)\n", stderr);
    return 127;
  }
  for (const char *c = name; *c; c++) {
    if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '.' || *c == '_') || name[0] == '.') {
      fprintf(stderr, "ccp-restore: not a WAL file name: %s\n", name);
      return 2;
    }
  }
  if (snprintf(src, sizeof src, "%s/%s", dir, name) >= (int)sizeof src) return 2;
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return 1; /* not archived: the end of the archive, for Postgres */
  int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    fprintf(stderr, "ccp-restore: %s: %s\n", dest, strerror(errno));
    return 2;
  }
  char buf[65536];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) != 0;) {
    if (n < 0 || write(out, buf, (size_t)n) != n) {
      fprintf(stderr, "ccp-restore: copying %s: %s\n", name, strerror(errno));
      return 2;
    }
  }
  if (close(out) < 0) return 2;
  close(in);
  return 0;
}

int main(int argc, char **argv) {
  const char *base = strrchr(argv[0], '/');
  if (!strcmp(base ? base + 1 : argv[0], "sh")) return sh_main(argc, argv);
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--probe")) {
      probe = 1;
      continue;
    }
    if (i + 1 >= argc) {
      errno = 0;
      die("%s wants a value", a);
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--uid")) uid = (uid_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--gid")) gid = (gid_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--root")) root_dir = v;
    else if (!strcmp(a, "--lock")) lock_file = v;
    else if (!strcmp(a, "--restore-dir")) restore_dir = v;
    else if (!strcmp(a, "--ro")) add(paths_ro, &n_ro, v);
    else if (!strcmp(a, "--rw")) add(paths_rw, &n_rw, v);
    else if (!strcmp(a, "--cgroup")) add(cgroups, &n_cg, v);
    else if (!strcmp(a, "--user")) add(users, &n_users, v);
    else {
      errno = 0;
      die("unknown option %s", a);
    }
  }
  errno = 0;
  if (uid == (uid_t)-1 || gid == (gid_t)-1 || uid == 0 || gid == 0) die("--uid and --gid (not 0) are required");
  if (!root_dir || root_dir[0] != '/') die("--root (an absolute path to an empty directory) is required");
  if (!probe && i >= argc) die("no program to run after --");
  if (!probe && argv[i][0] != '/') die("the program must be an absolute path: %s", argv[i]);

  if (lock_file) {
    int fd = open(lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die("open %s", lock_file);
    /* Held (inherited by the init) until the sandbox is gone: a second server on the same data dir would not see the first. */
    /* A server being stopped may hold it a moment longer (its init exits after it): wait up to 10 s. */
    for (int tries = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; tries++) {
      if (errno != EWOULDBLOCK || tries >= 1000) die("another sandboxed server holds %s", lock_file);
      usleep(10000);
    }
  }
  for (int c = 0; c < n_cg; c++) {
    char file[PATH_MAX], pid[32];
    if (snprintf(file, sizeof file, "%s/cgroup.procs", cgroups[c]) >= (int)sizeof file) die("path too long: %s", cgroups[c]);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    write_file(file, pid);
  }
  /*
   * The OOM killer (inside the memory cgroup too) must take a backend, never the
   * postmaster: -1000 (inherited by the init and the postmaster) where we may
   * lower it (CAP_SYS_RESOURCE); else every child of the postmaster raises its
   * own to 1000 (raising needs no privilege), which makes them the OOM killer's
   * first picks. See PG_OOM_ADJUST_* below.
   */
  int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  int shielded = oom >= 0 && write(oom, "-1000", 5) == 5;
  if (oom >= 0) close(oom);
  oom_value = shielded ? "0" : "1000";
  if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET) < 0) die("unshare");

  int alive[2];
  if (pipe2(alive, O_CLOEXEC) < 0) die("pipe");
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t init = fork();
  if (init < 0) die("fork");
  if (init == 0) {
    close(alive[1]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    _exit(init_main(argv + i, alive[0]));
  }
  close(alive[0]);
  relay_signals();
  set_relay(init);
  sigprocmask(SIG_SETMASK, &old, NULL);
  /* Nothing left to do as root: relaying signals to the init (same uid) and waiting need none. */
  drop_privileges();
  for (;;) {
    int status;
    pid_t done = waitpid(init, &status, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      die("wait");
    }
    exit_like(status);
  }
}
