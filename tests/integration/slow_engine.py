"""A Docker engine that answers some calls late: a unix-socket relay in front of the real engine
that holds back requests whose request line matches a pattern. Used to prove that the engine-call
budgets (`docker.timeouts.*`) end the calls they bound."""
import os
import re
import socket
import threading
import time

ENGINE = "/var/run/docker.sock"


class SlowEngine:
    def __init__(self, path, pattern, delay):
        self.path = str(path)
        self.pattern = re.compile(pattern.encode())
        self.delay = delay
        self.held = []  # request lines that were held back
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self):
        return f"unix://{self.path}"

    def accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(ENGINE)
            threading.Thread(target=self.pipe, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(engine, client, False), daemon=True).start()

    def pipe(self, source, target, from_client):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and self.pattern.match(data):
                    self.held.append(data.split(b"\r\n", 1)[0].decode(errors="replace"))
                    time.sleep(self.delay)
                target.sendall(data)
        except OSError:
            pass
        finally:
            # A half-close, as the engine's hijacked streams use it: stdin's end must not end
            # the output that is still coming the other way.
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
