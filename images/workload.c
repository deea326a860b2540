/* skiff's test workload: one static binary that the end-to-end tests run in pods (image
 * skiff/test-workload, FROM scratch). Its arguments are a list of steps run in order:
 *
 *   echo TEXT                       print TEXT and a newline to stdout
 *   write PATH TEXT                 write TEXT to the file PATH
 *   cat PATH                        print the contents of PATH
 *   fetch HOST PORT URLPATH OUT     HTTP GET until it answers 200 (60 s), body to file OUT
 *   connect HOST PORT               open a TCP connection until one succeeds (60 s), print
 *                                     "workload: connected to HOST:PORT" and close it
 *
 * HOST is an IPv4 address or a name, resolved by the C library (/etc/resolv.conf: the
 * cluster DNS tests' search domains and ndots).
 *   sleep SECONDS                   sleep
 *   ignore-term                     ignore SIGTERM from now on (tests of the grace period)
 *   exit CODE                       exit with CODE
 *   pause                           wait forever
 *   udp-echo PORT                   in the background, answer every UDP datagram to PORT with
 *                                     the same bytes (the Service tests' UDP round trip)
 *   spin                            in the background, keep one CPU busy (kubectl top tests)
 *   serve PORT DIR                  serve HTTP on 0.0.0.0:PORT forever:
 *                                     GET /healthz -> "ok"
 *                                     GET /file/NAME -> contents of DIR/NAME
 *                                     GET /env/NAME -> the value of environment variable NAME
 *
 * Without steps it waits forever. SIGTERM ends it with status 143 unless ignored (PID 1
 * would otherwise not react to SIGTERM at all). Any failing step exits with 1. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    static const char msg[] = "workload: SIGTERM, exiting\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(143);
}

static void fail(const char *what) {
    fprintf(stdout, "workload: %s failed: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    int rc = write_all(fd, data, len);
    close(fd);
    return rc;
}

/* Reads a whole file into a malloc'd buffer; NULL on error. */
static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0) {
            if (errno == EINTR) continue;
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0) break;
        used += (size_t)n;
    }
    close(fd);
    *len = used;
    return buf;
}

/* A TCP connection to HOST (an IPv4 address or a name) and PORT; -1 when none opens. */
static int connect_to(const char *host, int port) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        struct addrinfo hints = {0}, *found = NULL;
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, NULL, &hints, &found) != 0 || found == NULL) return -1;
        addr.sin_addr = ((struct sockaddr_in *)found->ai_addr)->sin_addr;
        freeaddrinfo(found);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One HTTP/1.0 GET; returns the body (malloc'd) when the status is 200, else NULL. */
static char *http_get(const char *host, int port, const char *path, size_t *body_len) {
    int fd = connect_to(host, port);
    if (fd < 0) return NULL;
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (n < 0 || (size_t)n >= sizeof req || write_all(fd, req, (size_t)n) != 0) {
        close(fd);
        return NULL;
    }
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + used, cap - used);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        used += (size_t)got;
    }
    close(fd);
    buf[used] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || used < 12 || strncmp(buf + 9, "200", 3) != 0 ||
        body == NULL) {
        free(buf);
        return NULL;
    }
    body += 4;
    *body_len = used - (size_t)(body - buf);
    memmove(buf, body, *body_len);
    return buf;
}

static void respond(int fd, const char *status, const char *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, len);
    if (n > 0 && write_all(fd, head, (size_t)n) == 0) {
        (void)write_all(fd, body, len);
    }
}

static void serve_one(int fd, const char *dir) {
    char req[2048];
    size_t used = 0;
    while (used < sizeof req - 1) {
        ssize_t n = read(fd, req + used, sizeof req - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += (size_t)n;
        req[used] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    req[used] = 0;
    char method[16], path[1024];
    if (sscanf(req, "%15s %1023s", method, path) != 2) {
        respond(fd, "400 Bad Request", "bad request\n", 12);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        respond(fd, "200 OK", "ok", 2);
    } else if (strncmp(path, "/file/", 6) == 0 && strstr(path, "..") == NULL) {
        char file[2048];
        snprintf(file, sizeof file, "%s/%s", dir, path + 6);
        size_t len = 0;
        char *data = read_file(file, &len);
        if (data) {
            respond(fd, "200 OK", data, len);
            free(data);
        } else {
            respond(fd, "404 Not Found", "no such file\n", 13);
        }
    } else if (strncmp(path, "/env/", 5) == 0) {
        const char *value = getenv(path + 5);
        if (value) {
            respond(fd, "200 OK", value, strlen(value));
        } else {
            respond(fd, "404 Not Found", "no such variable\n", 17);
        }
    } else {
        respond(fd, "404 Not Found", "not found\n", 10);
    }
}

static void serve(int port, const char *dir) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fail("bind");
    if (listen(fd, 64) != 0) fail("listen");
    printf("workload: serving %s on port %d\n", dir, port);
    fflush(stdout);
    for (;;) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR) continue;
            fail("accept");
        }
        serve_one(conn, dir);
        close(conn);
    }
}

static void udp_echo(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) fail("udp socket");
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fail("udp bind");
    printf("workload: echoing UDP on port %d\n", port);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child > 0) {
        close(fd);
        return;
    }
    char buf[2048];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t peer_len = sizeof peer;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &peer_len);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        (void)!sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, peer_len);
    }
}

static void fetch(const char *host, int port, const char *path, const char *out) {
    struct timespec pause_time = {0, 200 * 1000 * 1000};
    for (int attempt = 0; attempt < 300; attempt++) {
        size_t len = 0;
        char *body = http_get(host, port, path, &len);
        if (body) {
            if (write_file(out, body, len) != 0) fail("write");
            printf("workload: fetched http://%s:%d%s into %s\n", host, port, path, out);
            fflush(stdout);
            free(body);
            return;
        }
        nanosleep(&pause_time, NULL);
    }
    printf("workload: fetch http://%s:%d%s did not succeed in 60 s\n", host, port, path);
    fflush(stdout);
    exit(1);
}

static void connect_step(const char *host, int port) {
    struct timespec pause_time = {0, 200 * 1000 * 1000};
    for (int attempt = 0; attempt < 300; attempt++) {
        int fd = connect_to(host, port);
        if (fd >= 0) {
            close(fd);
            printf("workload: connected to %s:%d\n", host, port);
            fflush(stdout);
            return;
        }
        nanosleep(&pause_time, NULL);
    }
    printf("workload: connect to %s:%d did not succeed in 60 s\n", host, port);
    fflush(stdout);
    exit(1);
}

/* A child process that burns one CPU until the container ends. */
static void spin(void) {
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child > 0) {
        printf("workload: spinning in process %d\n", (int)child);
        fflush(stdout);
        return;
    }
    signal(SIGTERM, SIG_DFL);
    volatile unsigned long counter = 0;
    for (;;) counter++;
}

static void need(int argc, int i, int count, const char *step) {
    if (i + count >= argc) {
        printf("workload: step %s needs %d argument(s)\n", step, count);
        fflush(stdout);
        exit(2);
    }
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        const char *step = argv[i];
        if (strcmp(step, "echo") == 0) {
            need(argc, i, 1, step);
            printf("%s\n", argv[++i]);
            fflush(stdout);
        } else if (strcmp(step, "write") == 0) {
            need(argc, i, 2, step);
            if (write_file(argv[i + 1], argv[i + 2], strlen(argv[i + 2])) != 0) fail("write");
            i += 2;
        } else if (strcmp(step, "cat") == 0) {
            need(argc, i, 1, step);
            size_t len = 0;
            char *data = read_file(argv[++i], &len);
            if (!data) fail("cat");
            fwrite(data, 1, len, stdout);
            printf("\n");
            fflush(stdout);
            free(data);
        } else if (strcmp(step, "fetch") == 0) {
            need(argc, i, 4, step);
            fetch(argv[i + 1], atoi(argv[i + 2]), argv[i + 3], argv[i + 4]);
            i += 4;
        } else if (strcmp(step, "connect") == 0) {
            need(argc, i, 2, step);
            connect_step(argv[i + 1], atoi(argv[i + 2]));
            i += 2;
        } else if (strcmp(step, "sleep") == 0) {
            need(argc, i, 1, step);
            sleep((unsigned)atoi(argv[++i]));
        } else if (strcmp(step, "ignore-term") == 0) {
            signal(SIGTERM, SIG_IGN);
        } else if (strcmp(step, "exit") == 0) {
            need(argc, i, 1, step);
            fflush(stdout);
            exit(atoi(argv[++i]));
        } else if (strcmp(step, "pause") == 0) {
            for (;;) pause();
        } else if (strcmp(step, "udp-echo") == 0) {
            need(argc, i, 1, step);
            udp_echo(atoi(argv[++i]));
        } else if (strcmp(step, "spin") == 0) {
            spin();
        } else if (strcmp(step, "serve") == 0) {
            need(argc, i, 2, step);
            serve(atoi(argv[i + 1]), argv[i + 2]);
        } else {
            printf("workload: unknown step %s\n", step);
            fflush(stdout);
            exit(2);
        }
    }
    for (;;) pause();
}
