/* The pod sandbox's process: holds the pod's network and IPC namespaces open and does
 * nothing else. As PID 1 of its container it must handle SIGTERM/SIGINT itself (the kernel
 * ignores unhandled signals for PID 1), and it reaps zombies of processes that join its
 * namespaces. Built with `gcc -static` by node/build.rs into the skiff/pause image. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGCHLD, on_child);
    for (;;) {
        pause();
    }
}
