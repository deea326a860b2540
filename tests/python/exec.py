"""The official Kubernetes Python client's `stream` (websocket-client, `v4.channel.k8s.io`)
running a command in a pod, as its users do.

Usage: exec.py <kubeconfig> <pod> <container>. Prints the command's output and exit code,
then OK; exits non-zero with the reason otherwise.
"""

import sys

from kubernetes import client, config
from kubernetes.stream import stream


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    pod, container = sys.argv[2], sys.argv[3]

    # The simple form: the output as one string.
    out = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        container=container,
        command=["sh", "-c", "echo simple"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    if out != "simple\n":
        sys.exit(f"FAILED: simple exec output {out!r}")
    print("simple exec done", flush=True)

    # Streams and the exit code, with input.
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        container=container,
        command=["sh", "-c", "read line; echo got $line; echo oops >&2; exit 4"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("hello\n")
    stdout, stderr = "", ""
    while resp.is_open():
        resp.update(timeout=5)
        if resp.peek_stdout():
            stdout += resp.read_stdout()
        if resp.peek_stderr():
            stderr += resp.read_stderr()
    code = resp.returncode
    if stdout != "got hello\n" or stderr != "oops\n" or code != 4:
        sys.exit(f"FAILED: stdout {stdout!r} stderr {stderr!r} exit code {code!r}")
    print("OK")


if __name__ == "__main__":
    main()
