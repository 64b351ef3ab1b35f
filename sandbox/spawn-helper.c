/*
 * bldr-spawn: the native process runner (see process-runner.ts for the
 * protocol's other end and for why a runner exists at all).
 *
 * Why native: Node starts a child with fork(), and between fork and exec the
 * child pays for the parent's address space (copy-on-write faults, then
 * tearing it down at exec); in a bare Node process that is ~1.5 ms of CPU per
 * command, and the runner's own JavaScript (child_process, stdio streams, IPC)
 * ~1.5 ms more. For a build of 200 compiles on 2 cores that was ~0.75 s of CPU
 * taken from the compilers (bench/local-build). From this process, a few
 * hundred KiB, a fork costs tens of microseconds.
 *
 * It does what runner-main.ts does, and nothing more: commands wait in a FIFO
 * queue and at most argv[1] run at once; each starts in its own session and
 * process group, in its folder, with exactly the environment given, stdin
 * from /dev/null, stdout and stderr captured up to argv[2] bytes each; a
 * timeout or a kill request ends its whole group, and so does its own exit
 * (whatever it left running). When bldr goes away (stdin closes), every group
 * is killed and the runner exits at once, as runner-main.ts does.
 *
 * Frames, both ways: a little-endian u32 length, then that many bytes.
 *   request run    u8 1, u32 id, u32 timeout ms, u32 argc, u32 envc, then
 *                  NUL-terminated strings: cwd, argv[argc], env[envc]
 *   request kill   u8 2, u32 id
 *   reply started  u8 1, u32 id
 *   reply done     u8 2, u32 id, i32 exit code (-1: ended by a signal),
 *                  i32 signal, u8 timed out, u8 start failed (0: no,
 *                  1: entering cwd, 2: exec), i32 errno, f64 duration ms,
 *                  u32 stdout kept, u32 stdout dropped, u32 stderr kept,
 *                  u32 stderr dropped, stdout bytes, stderr bytes
 *   reply cancelled u8 3, u32 id (a queued command killed before it started)
 *   reply error    u8 4, u32 id, message (the command could not be started)
 *
 * `bldr-spawn --in-sandbox <capture limit>` is the runner inside a warm
 * sandbox (bwrap or a container: warm-pool.ts), in place of the Node one
 * (container-runner.ts), whose start cost ~0.1 s before a sandbox's first
 * command and whose every spawn cost a fork of a Node process. It does what
 * that one does: one command at a time; the command's OOM score raised, so a
 * memory limit kills it rather than the runner; after each command, every
 * other process of the sandbox killed and /tmp emptied (but for the folder
 * `keep` and the folders on the way to it). It adds to the protocol:
 *   request run    ... then one more string: keep (empty: none)
 *   reply done     ... then u8 OOM-killed (the cgroup's OOM-kill count rose
 *                  and the command died of SIGKILL, not a timeout), f64 CPU
 *                  ms of the command and what it waited for
 *   reply ready    u8 5, u32 0, once, when the runner is up
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* As in run-process.ts (the capture limit is argv[2], from there). */
#define PIPE_GRACE_MS 200.0
#define MAX_FRAME (64u * 1024u * 1024u)

typedef struct {
  int fd;
  char *data;
  uint32_t len, cap, dropped;
} Capture;

typedef struct Job {
  uint32_t id, timeout_ms;
  char *payload; /* owns the strings argv, envp and cwd point into */
  char **argv, **envp;
  char *cwd;
  char *keep; /* --in-sandbox: the folder /tmp's emptying leaves (NULL: none) */
  long oom_before;
  double cpu_before_ms;
  pid_t pid;
  int exited, status, timed_out, start_failed, start_errno;
  double started_ms, deadline_ms, grace_until_ms;
  Capture out, err;
  struct Job *next;
} Job;

static Job *queue_head, *queue_tail, *running;
static int n_running, max_running = 1;
static uint32_t max_capture = 4u * 1024u * 1024u;
static int sig_pipe[2];
static int in_sandbox;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "bldr-spawn: %s: %s\n", what, strerror(errno));
  exit(70);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static void write_all(const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) exit(0); /* bldr is gone */
    p += w;
    n -= (size_t)w;
  }
}

/* Replies are built in one buffer and written with one call. */
typedef struct {
  char *data;
  size_t len, cap;
} Out;

static void out_put(Out *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    o->cap = (o->len + n) * 2;
    char *d = realloc(o->data, o->cap);
    if (!d) die("out of memory");
    o->data = d;
  }
  memcpy(o->data + o->len, p, n);
  o->len += n;
}
static void out_u8(Out *o, uint8_t v) { out_put(o, &v, 1); }
static void out_u32(Out *o, uint32_t v) {
  uint8_t b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
  out_put(o, b, 4);
}
static void out_f64(Out *o, double v) { out_put(o, &v, 8); /* x86-64 and arm64: little-endian */ }

static void send_frame(Out *o) {
  uint32_t len = (uint32_t)(o->len - 4);
  uint8_t b[4] = {len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff};
  memcpy(o->data, b, 4);
  write_all(o->data, o->len);
  free(o->data);
}

static Out frame(uint8_t type, uint32_t id) {
  Out o = {0};
  out_u32(&o, 0); /* length, filled in by send_frame */
  out_u8(&o, type);
  out_u32(&o, id);
  return o;
}

static void reply_simple(uint8_t type, uint32_t id) {
  Out o = frame(type, id);
  send_frame(&o);
}

static void reply_error(uint32_t id, const char *msg) {
  Out o = frame(4, id);
  out_put(&o, msg, strlen(msg));
  send_frame(&o);
}

/* The sandbox cgroup's OOM-kill count (cgroup v1, then v2); 0 where neither is readable. */
static long oom_kills(void) {
  static const char *files[] = {"/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    FILE *f = fopen(files[i], "re");
    if (!f) continue;
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "oom_kill %ld", &n) == 1) break;
    fclose(f);
    if (n >= 0) return n;
  }
  return 0;
}

/* CPU time (user + system, ms) of the children that ended and were waited for, and theirs. */
static double children_cpu_ms(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_CHILDREN, &ru) < 0) return 0;
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* Every process of the sandbox but this one and its init (a command may have left some outside its group). */
static void kill_leftovers(void) {
  DIR *d = opendir("/proc");
  if (!d) return;
  pid_t self = getpid();
  for (struct dirent *e; (e = readdir(d));) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid == self) continue;
    kill((pid_t)pid, SIGKILL);
  }
  closedir(d);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* Empty `dir` (/tmp) but for the folder `keep` and the folders on the way to it. */
static void empty_tmp(const char *keep, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return; /* no /tmp (writeTmp is off) */
  size_t n = 0, cap = 16;
  char **paths = xmalloc(cap * sizeof *paths);
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap && !(paths = realloc(paths, (cap *= 2) * sizeof *paths))) die("out of memory");
    paths[n] = xmalloc(strlen(dir) + strlen(e->d_name) + 2);
    sprintf(paths[n++], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(paths[i]);
    if (keep && !strcmp(keep, paths[i])) {
    } else if (keep && !strncmp(keep, paths[i], len) && keep[len] == '/') {
      empty_tmp(keep, paths[i]);
    } else {
      nftw(paths[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(paths[i]);
  }
  free(paths);
}

static void reply_done(Job *j, double ended_ms) {
  Out o = frame(2, j->id);
  int code = -1, sig = 0;
  if (WIFEXITED(j->status)) code = WEXITSTATUS(j->status);
  else if (WIFSIGNALED(j->status)) sig = WTERMSIG(j->status);
  out_u32(&o, (uint32_t)code);
  out_u32(&o, (uint32_t)sig);
  out_u8(&o, (uint8_t)j->timed_out);
  out_u8(&o, (uint8_t)j->start_failed);
  out_u32(&o, (uint32_t)j->start_errno);
  out_f64(&o, ended_ms - j->started_ms);
  out_u32(&o, j->out.len);
  out_u32(&o, j->out.dropped);
  out_u32(&o, j->err.len);
  out_u32(&o, j->err.dropped);
  out_put(&o, j->out.data, j->out.len);
  out_put(&o, j->err.data, j->err.len);
  if (in_sandbox) {
    int killed = WIFSIGNALED(j->status) && WTERMSIG(j->status) == SIGKILL && !j->timed_out && oom_kills() > j->oom_before;
    out_u8(&o, (uint8_t)killed);
    out_f64(&o, children_cpu_ms() - j->cpu_before_ms);
  }
  send_frame(&o);
}

static void capture_close(Capture *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

/* Read what the pipe has now; 0 at end of file. */
static void capture_read(Capture *c) {
  char buf[65536];
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    capture_close(c);
    return;
  }
  uint32_t room = max_capture - c->len;
  uint32_t keep = (uint32_t)n < room ? (uint32_t)n : room;
  if (keep > 0) {
    if (c->len + keep > c->cap) {
      c->cap = c->len + keep > 2 * c->cap ? c->len + keep : 2 * c->cap;
      char *d = realloc(c->data, c->cap);
      if (!d) die("out of memory");
      c->data = d;
    }
    memcpy(c->data + c->len, buf, keep);
    c->len += keep;
  }
  c->dropped += (uint32_t)n - keep;
}

static void free_job(Job *j) {
  capture_close(&j->out);
  capture_close(&j->err);
  free(j->out.data);
  free(j->err.data);
  free(j->argv);
  free(j->envp);
  free(j->payload);
  free(j);
}

static void kill_group(Job *j) {
  if (j->pid > 0) kill(-j->pid, SIGKILL);
}

static void child_fail(int fd, int stage) {
  int e[2] = {stage, errno};
  ssize_t w = write(fd, e, sizeof e);
  (void)w;
  _exit(127);
}

/* Start a job; false if it could not (reported, job freed). */
static int start(Job *j) {
  int outp[2], errp[2], ep[2];
  if (pipe2(outp, O_CLOEXEC) < 0) goto fail0;
  if (pipe2(errp, O_CLOEXEC) < 0) goto fail1;
  if (pipe2(ep, O_CLOEXEC) < 0) goto fail2;
  j->started_ms = now_ms();
  if (in_sandbox) {
    j->oom_before = oom_kills();
    j->cpu_before_ms = children_cpu_ms();
  }
  pid_t pid = fork();
  if (pid < 0) goto fail3;
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (in_sandbox) {
      /* A memory limit kills the command, not the runner: raising one's own OOM score needs no privilege. */
      int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        ssize_t w = write(fd, "1000", 4);
        (void)w;
        close(fd);
      }
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0) child_fail(ep[1], 2);
    if (chdir(j->cwd) < 0) child_fail(ep[1], 1);
    environ = j->envp;
    execvp(j->argv[0], j->argv);
    child_fail(ep[1], 2);
  }
  close(outp[1]);
  close(errp[1]);
  close(ep[1]);
  /* Until the command is running (the pipe closes at its exec) or has failed to start. */
  int e[2];
  ssize_t n;
  do n = read(ep[0], e, sizeof e);
  while (n < 0 && errno == EINTR);
  close(ep[0]);
  if (n == (ssize_t)sizeof e) {
    j->start_failed = e[0];
    j->start_errno = e[1];
  }
  j->pid = pid;
  fcntl(outp[0], F_SETFL, O_NONBLOCK);
  fcntl(errp[0], F_SETFL, O_NONBLOCK);
  j->out.fd = outp[0];
  j->err.fd = errp[0];
  j->deadline_ms = j->started_ms + j->timeout_ms;
  j->next = running;
  running = j;
  n_running++;
  reply_simple(1, j->id);
  return 1;
fail3:
  close(ep[0]);
  close(ep[1]);
fail2:
  close(errp[0]);
  close(errp[1]);
fail1:
  close(outp[0]);
  close(outp[1]);
fail0:;
  char msg[256];
  snprintf(msg, sizeof msg, "could not start %s: %s", j->argv[0], strerror(errno));
  reply_error(j->id, msg);
  free_job(j);
  return 0;
}

static void pump(void) {
  while (n_running < max_running && queue_head) {
    Job *j = queue_head;
    queue_head = j->next;
    if (!queue_head) queue_tail = NULL;
    j->next = NULL;
    start(j);
  }
}

static uint32_t get_u32(const uint8_t *p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24); }

/* One request frame (payload of `len` bytes; copied, the caller's buffer is reused). */
static void handle(const uint8_t *p, uint32_t len) {
  if (len < 5) return;
  uint8_t type = p[0];
  uint32_t id = get_u32(p + 1);
  if (type == 2) {
    for (Job *j = running; j; j = j->next)
      if (j->id == id) {
        kill_group(j);
        return;
      }
    for (Job **q = &queue_head, *prev = NULL; *q; prev = *q, q = &(*q)->next)
      if ((*q)->id == id) {
        Job *j = *q;
        *q = j->next;
        if (queue_tail == j) queue_tail = prev;
        free_job(j);
        reply_simple(3, id);
        return;
      }
    return;
  }
  if (type != 1 || len < 17) return;
  Job *j = xmalloc(sizeof *j);
  memset(j, 0, sizeof *j);
  j->id = id;
  j->timeout_ms = get_u32(p + 5);
  uint32_t argc = get_u32(p + 9), envc = get_u32(p + 13);
  uint32_t slen = len - 17;
  j->payload = xmalloc(slen + 1);
  memcpy(j->payload, p + 17, slen);
  j->payload[slen] = 0;
  j->out.fd = j->err.fd = -1;
  if (argc == 0 || argc > slen || envc > slen) {
    reply_error(id, "malformed request");
    free_job(j);
    return;
  }
  j->argv = xmalloc((argc + 1) * sizeof(char *));
  j->envp = xmalloc((envc + 1) * sizeof(char *));
  char *s = j->payload, *end = j->payload + slen;
  j->cwd = s;
  s += strlen(s) + 1;
  for (uint32_t i = 0; i < argc + envc + (uint32_t)in_sandbox; i++) {
    if (s >= end) {
      reply_error(id, "malformed request");
      free_job(j);
      return;
    }
    if (i < argc) j->argv[i] = s;
    else if (i < argc + envc) j->envp[i - argc] = s;
    else j->keep = *s ? s : NULL;
    s += strlen(s) + 1;
  }
  j->argv[argc] = NULL;
  j->envp[envc] = NULL;
  if (queue_tail) queue_tail->next = j;
  else queue_head = j;
  queue_tail = j;
  pump();
}

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  ssize_t w = write(sig_pipe[1], "x", 1);
  (void)w;
  errno = saved;
}

static void reap(void) {
  char buf[64];
  while (read(sig_pipe[0], buf, sizeof buf) > 0) {
  }
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (Job *j = running; j; j = j->next)
      if (j->pid == pid && !j->exited) {
        j->exited = 1;
        j->status = status;
        kill_group(j); /* anything it left running in its group */
        /* A process that left the group may hold stdout or stderr open for ever: read what is there, then stop waiting. */
        j->grace_until_ms = now_ms() + PIPE_GRACE_MS;
        break;
      }
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--in-sandbox")) in_sandbox = 1;
  else if (argc > 1) max_running = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
  if (argc > 2) max_capture = (uint32_t)strtoul(argv[2], NULL, 10);
  signal(SIGPIPE, SIG_IGN);
  if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) die("pipe");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  if (in_sandbox) reply_simple(5, 0);

  uint8_t *in = xmalloc(65536);
  size_t in_len = 0, in_cap = 65536;
  struct pollfd *fds = NULL;
  Job **owners = NULL;
  size_t fds_cap = 0;

  for (;;) {
    /* Finished jobs: exited, and both pipes at end of file or past the grace. */
    double now = now_ms();
    for (Job **q = &running; *q;) {
      Job *j = *q;
      if (j->exited && ((j->out.fd < 0 && j->err.fd < 0) || now >= j->grace_until_ms)) {
        *q = j->next;
        n_running--;
        if (in_sandbox) {
          /* Nothing of this command may meet the next: what it left running, what it left in /tmp. */
          kill_leftovers();
          empty_tmp(j->keep, "/tmp");
        }
        reply_done(j, now);
        free_job(j);
        continue;
      }
      if (!j->exited && !j->timed_out && now >= j->deadline_ms) {
        j->timed_out = 1;
        kill_group(j);
      }
      q = &j->next;
    }
    pump();

    size_t need = 2 + 2 * (size_t)n_running;
    if (need > fds_cap) {
      fds_cap = need * 2;
      fds = realloc(fds, fds_cap * sizeof *fds);
      owners = realloc(owners, fds_cap * sizeof *owners);
      if (!fds || !owners) die("out of memory");
    }
    size_t nf = 0;
    fds[nf] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
    owners[nf++] = NULL;
    fds[nf] = (struct pollfd){.fd = 0, .events = POLLIN};
    owners[nf++] = NULL;
    double wake = -1;
    for (Job *j = running; j; j = j->next) {
      if (j->out.fd >= 0) {
        fds[nf] = (struct pollfd){.fd = j->out.fd, .events = POLLIN};
        owners[nf++] = j;
      }
      if (j->err.fd >= 0) {
        fds[nf] = (struct pollfd){.fd = j->err.fd, .events = POLLIN};
        owners[nf++] = j;
      }
      double at = j->exited ? j->grace_until_ms : (j->timed_out ? -1 : j->deadline_ms);
      if (at >= 0 && (wake < 0 || at < wake)) wake = at;
    }
    /* At most a day at a time (a timeout of up to 2^32 ms does not fit an int). */
    int timeout = wake < 0 ? -1 : (wake <= now ? 0 : (wake - now > 86400000.0 ? 86400000 : (int)(wake - now) + 1));
    int r = poll(fds, nf, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    for (size_t i = 0; i < nf; i++) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == sig_pipe[0]) {
        reap();
      } else if (owners[i]) {
        Job *j = owners[i];
        capture_read(fds[i].fd == j->out.fd ? &j->out : &j->err);
      } else {
        if (in_len == in_cap) {
          in_cap *= 2;
          in = realloc(in, in_cap);
          if (!in) die("out of memory");
        }
        ssize_t n = read(0, in + in_len, in_cap - in_len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          /* bldr is gone (or closed the runner): end every command; queued ones never start. */
          for (Job *j = running; j; j = j->next) kill_group(j);
          return 0;
        }
        in_len += (size_t)n;
        size_t off = 0;
        while (in_len - off >= 4) {
          uint32_t flen = get_u32(in + off);
          if (flen > MAX_FRAME) {
            fprintf(stderr, "bldr-spawn: a request of %u bytes is over the limit\n", flen);
            exit(70);
          }
          if (in_len - off - 4 < flen) {
            if (flen + 4 > in_cap) {
              in_cap = flen + 4;
              in = realloc(in, in_cap);
              if (!in) die("out of memory");
            }
            break;
          }
          handle(in + off + 4, flen);
          off += 4 + flen;
        }
        memmove(in, in + off, in_len - off);
        in_len -= off;
      }
    }
  }
}
