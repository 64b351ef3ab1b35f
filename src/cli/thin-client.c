/*
 * bldr-thin-client: `bldr build --distributed` as a native thin client of the
 * folder's kept local mesh (hosted-build.ts is the same client in Node, and
 * mesh-daemon-serve.ts the other end).
 *
 * Why native: a kept mesh runs the build in its own process, so all the
 * client does is send the command line, relay the output and Ctrl-C, and exit
 * with the build's status. Node's start alone took ~45 ms of that client's
 * ~50 ms, in an incremental build of ~0.4 s where ninja takes ~0.25 s
 * (bench/ninja). This program starts in about a millisecond.
 *
 * It does only that, and hands everything else to the Node client by exec'ing
 * it with the same arguments (bin/bldr.mjs; after the mesh declined or died,
 * BLDR_NOT_HOSTED=1 tells it not to ask again): a command line it does not
 * read the way args.ts does
 * (the options come from there, thin-client-header.ts), --coordinator or
 * --help, no --distributed, a socket path too long for the folder's own (the
 * Node client hashes those into TMPDIR), code that is not the bundle (a tsc
 * newer than it: the mesh's version is then the Node client's to compute), no
 * mesh listening, a build the mesh declines, and a mesh that dies mid-build
 * (what it built is cached; the Node client builds the rest).
 *
 * The version it sends is the one codeVersion() computes for the bundle: the
 * package version (compiled in) and the bundle entry's mtime in ms, rounded.
 * A mesh of other code declines, and the Node client takes over.
 *
 * Messages are lines of JSON both ways; the daemon's are flat objects
 * (`out` {fd, text}, `exit` {code, stopping}, `declined` {why}), read by the
 * small parser below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "thin-client-options.h"

extern char **environ;

static char **g_argv;
static char g_root[PATH_MAX]; /* the repository: this program is <root>/dist/src/cli/bldr-thin-client */

/* Hand the command to the Node client (never returns); `asked`: the mesh declined the build or died running it, so that client does not ask it again. */
static void fallback(int asked) {
  char entry[PATH_MAX + 32];
  snprintf(entry, sizeof entry, "%s/bin/bldr.mjs", g_root);
  int n = 0;
  while (g_argv[n]) n++;
  char **args = calloc((size_t)n + 2, sizeof *args);
  if (!args) _exit(70);
  args[0] = "node";
  args[1] = entry;
  for (int i = 1; i < n; i++) args[i + 1] = g_argv[i];
  if (asked) setenv("BLDR_NOT_HOSTED", "1", 1);
  unsetenv("NODE_EXTRA_CA_CERTS");
  execvp("node", args);
  fprintf(stderr, "bldr: cannot run node (%s): %s\n", entry, strerror(errno));
  exit(127);
}

/* ---- a growable byte buffer ---- */
struct buf {
  char *p;
  size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) fallback(0);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* A JSON string literal of `s` (bytes as they are: the daemon decodes the line as UTF-8, as Node read them). */
static void buf_json(struct buf *b, const char *s) {
  buf_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    char esc[8];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*c;
      buf_put(b, esc, 2);
    } else if (*c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *c);
      buf_put(b, esc, 6);
    } else {
      buf_put(b, (const char *)c, 1);
    }
  }
  buf_put(b, "\"", 1);
}

/* ---- paths ---- */

/* `path` made absolute against `base` and normalized as Node's path.resolve does (no symlinks followed). */
static int resolve_path(const char *base, const char *path, char *out, size_t size) {
  char joined[PATH_MAX * 2];
  if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
  else snprintf(joined, sizeof joined, "%s/%s", base, path);
  size_t n = 0;
  out[0] = 0;
  for (char *seg = strtok(joined, "/"); seg; seg = strtok(NULL, "/")) {
    if (strcmp(seg, ".") == 0) continue;
    if (strcmp(seg, "..") == 0) {
      while (n > 0 && out[n - 1] != '/') n--;
      if (n > 0) n--;
      out[n] = 0;
      continue;
    }
    size_t l = strlen(seg);
    if (n + 1 + l + 1 > size) return -1;
    out[n++] = '/';
    memcpy(out + n, seg, l);
    n += l;
    out[n] = 0;
  }
  if (n == 0) snprintf(out, size, "/");
  return 0;
}

/* A file's mtime in ms as Node's Stats.mtimeMs (sec * 1e3 + nsec / 1e6), or -1. */
static double mtime_ms(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6;
}

/* ---- the command line, as parseArgs reads it with BUILD_OPTIONS (strict, positionals allowed) ---- */
struct parsed {
  const char *directory, *file;
  int distributed, coordinator, help;
};

static const struct build_option *long_option(const char *name, size_t len) {
  for (const struct build_option *o = BUILD_OPTIONS; o->name; o++)
    if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
  return NULL;
}

static const struct build_option *short_option(char c) {
  for (const struct build_option *o = BUILD_OPTIONS; o->name; o++)
    if (o->short_name == c) return o;
  return NULL;
}

static void take(struct parsed *p, const struct build_option *o, const char *value) {
  if (strcmp(o->name, "directory") == 0) p->directory = value;
  else if (strcmp(o->name, "file") == 0) p->file = value;
  else if (strcmp(o->name, "distributed") == 0) p->distributed = 1;
  else if (strcmp(o->name, "coordinator") == 0) p->coordinator = 1;
  else if (strcmp(o->name, "help") == 0) p->help = 1;
}

/* 0 if read; -1 if the Node client should read it (it explains what is wrong, or reads what this does not). */
static int parse_build_args(char **args, struct parsed *p) {
  for (int i = 0; args[i]; i++) {
    const char *a = args[i];
    if (strcmp(a, "--") == 0) return 0; /* the rest are targets */
    if (a[0] != '-' || a[1] == 0) continue; /* a target (or "-") */
    if (a[1] == '-') {
      const char *name = a + 2, *eq = strchr(name, '=');
      const struct build_option *o = long_option(name, eq ? (size_t)(eq - name) : strlen(name));
      if (!o) return -1;
      if (!o->takes_value) {
        if (eq) return -1;
        take(p, o, NULL);
      } else if (eq) {
        take(p, o, eq + 1);
      } else {
        const char *v = args[i + 1];
        if (!v || v[0] == '-') return -1; /* missing, or ambiguous to parseArgs */
        take(p, o, v);
        i++;
      }
      continue;
    }
    for (const char *c = a + 1; *c; c++) {
      const struct build_option *o = short_option(*c);
      if (!o) return -1;
      if (!o->takes_value) {
        take(p, o, NULL);
        continue;
      }
      if (c[1]) {
        take(p, o, c + 1);
      } else {
        const char *v = args[i + 1];
        if (!v || v[0] == '-') return -1;
        take(p, o, v);
        i++;
      }
      break;
    }
  }
  return 0;
}

/* ---- output ---- */
static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      return; /* a closed pipe: the output has nowhere to go */
    }
    s += w;
    n -= (size_t)w;
  }
}

/* ---- the daemon's messages: a flat JSON object ---- */
struct message {
  char op[16];
  int fd;
  long long code;
  long long stopping; /* -1: null */
  struct buf text;
};

static void put_utf8(struct buf *b, uint32_t cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    buf_put(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    buf_put(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    buf_put(b, u, 3);
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    buf_put(b, u, 4);
  }
}

static int hex4(const char *s, uint32_t *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    *v <<= 4;
    if (c >= '0' && c <= '9') *v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') *v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') *v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  return 0;
}

/* A string at *s (after its opening quote) into out (if given); *s past its closing quote. As Node writes one: a lone surrogate becomes U+FFFD. */
static int json_string(const char **s, struct buf *out) {
  const char *c = *s;
  struct buf ignored = {0};
  if (!out) out = &ignored;
  for (;;) {
    if (*c == 0) return -1;
    if (*c == '"') break;
    if (*c != '\\') {
      buf_put(out, c, 1);
      c++;
      continue;
    }
    c++;
    uint32_t cp;
    switch (*c) {
      case '"': case '\\': case '/': buf_put(out, c, 1); break;
      case 'b': buf_put(out, "\b", 1); break;
      case 'f': buf_put(out, "\f", 1); break;
      case 'n': buf_put(out, "\n", 1); break;
      case 'r': buf_put(out, "\r", 1); break;
      case 't': buf_put(out, "\t", 1); break;
      case 'u':
        if (hex4(c + 1, &cp) != 0) return -1;
        c += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          uint32_t lo;
          if (c[1] == '\\' && c[2] == 'u' && hex4(c + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            c += 6;
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          cp = 0xfffd;
        }
        put_utf8(out, cp);
        break;
      default: return -1;
    }
    c++;
  }
  free(ignored.p);
  *s = c + 1;
  return 0;
}

static void skip_ws(const char **s) {
  while (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n') (*s)++;
}

/* Skip any JSON value (the daemon's other messages carry objects this client does not read). */
static int skip_value(const char **s) {
  skip_ws(s);
  if (**s == '"') {
    (*s)++;
    return json_string(s, NULL);
  }
  if (**s == '{' || **s == '[') {
    char close = **s == '{' ? '}' : ']';
    (*s)++;
    for (;;) {
      skip_ws(s);
      if (**s == close) {
        (*s)++;
        return 0;
      }
      if (skip_value(s) != 0) return -1;
      skip_ws(s);
      if (**s == ':' || **s == ',') (*s)++;
      else if (**s != close) return -1;
    }
  }
  const char *start = *s;
  while (**s && strchr(",}] \t\r\n", **s) == NULL) (*s)++;
  return *s > start ? 0 : -1;
}

static int parse_message(const char *line, struct message *m) {
  memset(m->op, 0, sizeof m->op);
  m->fd = 0;
  m->code = 0;
  m->stopping = -1;
  m->text.len = 0;
  if (m->text.p) m->text.p[0] = 0;
  const char *s = line;
  skip_ws(&s);
  if (*s++ != '{') return -1;
  for (;;) {
    skip_ws(&s);
    if (*s == '}') return 0;
    if (*s++ != '"') return -1;
    struct buf key = {0};
    if (json_string(&s, &key) != 0) return -1;
    skip_ws(&s);
    if (*s++ != ':') {
      free(key.p);
      return -1;
    }
    skip_ws(&s);
    const char *k = key.p ? key.p : "";
    int rc = 0;
    if ((strcmp(k, "op") == 0 || strcmp(k, "text") == 0) && *s == '"') {
      s++;
      struct buf v = {0};
      rc = json_string(&s, strcmp(k, "text") == 0 ? &m->text : &v);
      if (rc == 0 && v.p) snprintf(m->op, sizeof m->op, "%s", v.p);
      free(v.p);
    } else if (strcmp(k, "fd") == 0 || strcmp(k, "code") == 0 || strcmp(k, "stopping") == 0) {
      char *end;
      if (strncmp(s, "null", 4) == 0) {
        s += 4;
      } else {
        long long v = strtoll(s, &end, 10);
        if (end == s) rc = -1;
        s = end;
        if (strcmp(k, "fd") == 0) m->fd = (int)v;
        else if (strcmp(k, "code") == 0) m->code = v;
        else m->stopping = v;
      }
    } else {
      rc = skip_value(&s);
    }
    free(key.p);
    if (rc != 0) return -1;
    skip_ws(&s);
    if (*s == ',') s++;
    else if (*s != '}') return -1;
  }
}

/* ---- signals ---- */
static int g_signal_pipe[2];

static void on_signal(int sig) {
  char c = (char)sig;
  int saved = errno;
  (void)!write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A daemon that stops after this build: wait (at most 30 s) for it to close the socket, then (5 s) to exit, as stoppedWith does. */
static void wait_stopped(int sock, pid_t pid) {
  long long end = now_ms() + 30000;
  char scratch[4096];
  for (;;) {
    long long left = end - now_ms();
    if (left <= 0) return;
    struct pollfd pfd = {sock, POLLIN, 0};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = read(sock, scratch, sizeof scratch);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  end = now_ms() + 5000;
  while ((kill(pid, 0) == 0 || errno == EPERM) && now_ms() < end) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int main(int argc, char **argv) {
  g_argv = argv;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fprintf(stderr, "bldr: cannot find where bldr is installed (/proc/self/exe): %s\n", strerror(errno));
    return 70;
  }
  self[n] = 0;
  if (resolve_path(self, "../../../..", g_root, sizeof g_root) != 0) return 70;
  if (argc < 2 || strcmp(argv[1], "build") != 0) fallback(0);

  struct parsed p = {0};
  if (parse_build_args(argv + 2, &p) != 0 || !p.distributed || p.coordinator || p.help) fallback(0);

  /* The code that runs: the bundle, unless tsc ran since (as bin/bldr.mjs chooses). */
  char bundle[PATH_MAX + 64], unbundled[PATH_MAX + 64];
  snprintf(bundle, sizeof bundle, "%s/dist/src/bundle/main.js", g_root);
  snprintf(unbundled, sizeof unbundled, "%s/dist/src/cli/main.js", g_root);
  double bundled_ms = mtime_ms(bundle);
  if (bundled_ms < 0 || bundled_ms < mtime_ms(unbundled)) fallback(0);
  char version[128];
  snprintf(version, sizeof version, "%s+%lld", BLDR_PKG_VERSION, (long long)llround(bundled_ms));

  char cwd[PATH_MAX], dir[PATH_MAX], build_file[PATH_MAX], socket_path[PATH_MAX + 64], mesh_dir[PATH_MAX + 16];
  if (!getcwd(cwd, sizeof cwd)) fallback(0);
  if (resolve_path(cwd, p.directory ? p.directory : ".", dir, sizeof dir) != 0) fallback(0);
  if (resolve_path(dir, p.file ? p.file : "BUILD.yaml", build_file, sizeof build_file) != 0) fallback(0);
  char *slash = strrchr(build_file, '/');
  if (slash == build_file) snprintf(mesh_dir, sizeof mesh_dir, "/.bldr/mesh");
  else snprintf(mesh_dir, sizeof mesh_dir, "%.*s/.bldr/mesh", (int)(slash - build_file), build_file);
  snprintf(socket_path, sizeof socket_path, "%s/daemon.sock", mesh_dir);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  /* mesh-daemon.ts daemonFiles: a longer path is named by its hash in TMPDIR, which the Node client computes. */
  if (strlen(socket_path) >= 100) fallback(0);
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) fallback(0);

  struct buf req = {0};
  buf_str(&req, "{\"op\":\"build\",\"argv\":[");
  for (int i = 2; i < argc; i++) {
    if (i > 2) buf_str(&req, ",");
    buf_json(&req, argv[i]);
  }
  buf_str(&req, "],\"cwd\":");
  buf_json(&req, cwd);
  buf_str(&req, ",\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    char *eq = strchr(*e, '=');
    if (!eq || strncmp(*e, "NODE_EXTRA_CA_CERTS=", 20) == 0) continue; /* as bin/bldr.mjs's shebang drops it */
    if (!first) buf_str(&req, ",");
    first = 0;
    *eq = 0;
    buf_json(&req, *e);
    *eq = '=';
    buf_str(&req, ":");
    buf_json(&req, eq + 1);
  }
  buf_str(&req, "},\"version\":");
  buf_json(&req, version);
  int tty = isatty(1);
  struct winsize ws = {0};
  if (tty) ioctl(1, TIOCGWINSZ, &ws);
  char tail[96];
  snprintf(tail, sizeof tail, ",\"columns\":%d,\"stdoutTty\":%s}\n", tty ? ws.ws_col : 0, tty ? "true" : "false");
  buf_str(&req, tail);

  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) fallback(0);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  for (size_t off = 0; off < req.len;) {
    ssize_t w = write(sock, req.p + off, req.len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fallback(0); /* it went away as we came: the Node client builds */
    off += (size_t)w;
  }

  int interrupted = 0;
  struct buf in = {0};
  struct message m = {0};
  char chunk[65536];
  for (;;) {
    struct pollfd pfds[2] = {{sock, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    if (poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfds[1].revents & POLLIN) {
      char sig;
      while (read(g_signal_pipe[0], &sig, 1) == 1) {
        /* The first Ctrl-C interrupts the build (its summary still comes); a second leaves at once. */
        if (interrupted) return 130;
        interrupted = 1;
        const char *msg = "{\"op\":\"signal\"}\n";
        (void)!write(sock, msg, strlen(msg));
      }
    }
    if (!(pfds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t r = read(sock, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    buf_put(&in, chunk, (size_t)r);
    char *start = in.p, *nl;
    while ((nl = memchr(start, '\n', in.len - (size_t)(start - in.p)))) {
      *nl = 0;
      if (parse_message(start, &m) == 0) {
        if (strcmp(m.op, "out") == 0) {
          write_all(m.fd == 1 ? 1 : 2, m.text.p ? m.text.p : "", m.text.len);
        } else if (strcmp(m.op, "exit") == 0) {
          /* A mesh that stops after this build (interrupted, or a worker lost) is gone when this process exits. */
          if (m.stopping >= 0) wait_stopped(sock, (pid_t)m.stopping);
          return (int)m.code;
        } else if (strcmp(m.op, "declined") == 0) {
          close(sock);
          fallback(1);
        }
      }
      start = nl + 1;
    }
    size_t rest = in.len - (size_t)(start - in.p);
    memmove(in.p, start, rest);
    in.len = rest;
  }
  if (interrupted) return 130;
  /* It died (killed, a crash): what it built is cached; the Node client builds the rest. */
  fprintf(stderr, "bldr: the local mesh running this build ended before it (see %s/daemon.log); this process builds what is left\n", mesh_dir);
  close(sock);
  fallback(1);
}
