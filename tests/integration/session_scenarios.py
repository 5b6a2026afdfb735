"""Scenarios that every container backend must pass the same way, shared by the Docker and
Kubernetes tests."""
import time


def pty_size_then_window_change(client, timeout=60):
    """Runs tput under a 97x31 terminal, resizes it to 120x40 and returns the four sizes seen
    and the exit status."""
    channel = client.get_transport().open_session()
    channel.get_pty(term="xterm", width=97, height=31)
    channel.exec_command("tput cols; tput lines; read line; tput cols; tput lines")
    channel.settimeout(timeout)
    output = b""
    while output.count(b"\n") < 2:
        output += channel.recv(1024)
    channel.resize_pty(width=120, height=40)
    time.sleep(1)
    channel.send(b"go\n")
    while not channel.exit_status_ready() or channel.recv_ready():
        chunk = channel.recv(1024)
        if not chunk:
            break
        output += chunk
    numbers = [line for line in output.replace(b"\r", b"").decode().split("\n") if line.isdigit()]
    return numbers, channel.recv_exit_status()
