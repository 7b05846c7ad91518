"""A small client for primed's HTTP/JSON API, with the standard library only.

    from primed_client import Client
    client = Client.from_env()            # the daemon's HTTP socket, as `primed serve` makes it
    jobs = client.submit(["97", "91"])    # [{"id": 1, "n": "97"}, {"id": 2, "n": "91"}]
    answers = client.wait([job["id"] for job in jobs])
    # {1: {"id": 1, "n": "97", "prime": True, "attempts": 1}, 2: {... "prime": False ...}}

It speaks HTTP/1.1 on the daemon's Unix socket (no token: the kernel vouches for the peer),
or on its TCP listener with the bearer token from the data dir's `http.token`. Every error
the daemon answers is raised as `PrimedError` with its status and message.
"""

import http.client
import json
import os
import socket
from urllib.parse import urlencode, urlsplit

__all__ = ["Client", "PrimedError", "default_socket"]


class PrimedError(Exception):
    """The daemon refused a request: `status` is the HTTP status, `message` its sentence."""

    def __init__(self, status, message, body=None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body or {}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("primed", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def default_socket():
    """Where `primed serve` puts its HTTP socket by default (beside the CLI's socket)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "primed", "primed.http.sock")
    return os.path.join("/tmp", f"primed-{os.getuid()}", "primed.http.sock")


class Client:
    """One daemon's API. Each call opens a connection of its own, so a client is safe to
    share between threads."""

    def __init__(self, socket_path=None, url=None, token=None, timeout=60.0):
        if url is None and socket_path is None:
            socket_path = default_socket()
        self._socket = socket_path
        self._url = urlsplit(url) if url else None
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_env(cls):
        """PRIMED_URL (with PRIMED_TOKEN, or PRIMED_TOKEN_FILE) for the TCP listener, else
        PRIMED_HTTP_SOCKET, else the default socket."""
        url = os.environ.get("PRIMED_URL")
        if url:
            token = os.environ.get("PRIMED_TOKEN")
            token_file = os.environ.get("PRIMED_TOKEN_FILE")
            if token is None and token_file:
                with open(token_file, encoding="ascii") as f:
                    token = f.read().strip()
            return cls(url=url, token=token)
        return cls(socket_path=os.environ.get("PRIMED_HTTP_SOCKET") or default_socket())

    def _connection(self, timeout):
        if self._url is not None:
            return http.client.HTTPConnection(self._url.hostname, self._url.port, timeout=timeout)
        return _UnixConnection(self._socket, timeout)

    def _request(self, method, path, body=None, headers=None, timeout=None, stream=False):
        headers = dict(headers or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(timeout or self.timeout)
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        if stream and response.status == 200:
            return conn, response
        raw = response.read()
        conn.close()
        kind = response.getheader("Content-Type", "")
        value = json.loads(raw) if kind.startswith("application/json") else raw.decode()
        if response.status >= 400:
            message = value.get("error", raw.decode()) if isinstance(value, dict) else value
            raise PrimedError(response.status, message, value if isinstance(value, dict) else {})
        return value

    def ping(self):
        """True while the daemon serves."""
        return self._request("GET", "/v1/_ping") == "OK"

    def submit(self, numbers, idempotency_key=None):
        """Journals the numbers' tests; returns the jobs once durable. Inputs primed will not
        test are in `errors` of `submit_full`; here they raise only if none was accepted."""
        return self.submit_full(numbers, idempotency_key)["jobs"]

    def submit_full(self, numbers, idempotency_key=None):
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"numbers": [str(n) for n in numbers]}
        return self._request("POST", "/v1/jobs", body, headers)

    def make_prime(self, digits):
        """A job that makes a prime of `digits` digits; its answer's `n` is the prime."""
        return self._request("POST", "/v1/jobs", {"make_prime": {"digits": digits}})["jobs"][0]

    def result(self, job_id, wait=False, timeout=None):
        """The answer (as `primed result --json` prints it), or {"status": "pending"}."""
        query = {}
        if wait:
            query["wait"] = "true"
            if timeout is not None:
                query["timeout"] = int(timeout)
        path = f"/v1/jobs/{int(job_id)}" + (f"?{urlencode(query)}" if query else "")
        return self._request("GET", path, timeout=(timeout or 30) + self.timeout)

    def wait(self, job_ids, timeout=300):
        """Waits for each job's answer; a dict from id to answer."""
        answers = {}
        for job_id in job_ids:
            answer = self.result(job_id, wait=True, timeout=timeout)
            if answer.get("status") == "pending":
                raise TimeoutError(f"job {job_id} is not answered after {timeout}s")
            answers[job_id] = answer
        return answers

    def cancel(self, job_id):
        return self._request("DELETE", f"/v1/jobs/{int(job_id)}")

    def jobs(self, page=1000):
        """Every job in flight, a page at a time."""
        after = None
        while True:
            query = {"limit": page} if after is None else {"limit": page, "after": after}
            listed = self._request("GET", "/v1/jobs?" + urlencode(query))
            yield from listed["jobs"]
            after = listed["next"]
            if after is None:
                return

    def status(self):
        return self._request("GET", "/v1/status")

    def tree(self):
        return self._request("GET", "/v1/tree")

    def alarms(self):
        return self._request("GET", "/v1/alarms")["alarms"]

    def kill(self, actor):
        return self._request("POST", f"/v1/actors/{actor}/kill")

    def reload(self):
        return self._request("POST", "/v1/reload")["reloaded"]

    def metrics(self):
        """The Prometheus text of /metrics."""
        return self._request("GET", "/metrics")

    def events(self, since_ms=None):
        """The stored supervision events, then each new one as it happens: a generator of
        dicts that runs until the daemon closes (close it to stop)."""
        path = "/v1/events" + (f"?since_ms={int(since_ms)}" if since_ms is not None else "")
        conn, response = self._request("GET", path, stream=True, timeout=None)
        # Server-sent events may be quiet for long: no read timeout on this one.
        conn.sock.settimeout(None)
        try:
            data = []
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    yield json.loads("\n".join(data))
                    data = []
        finally:
            conn.close()
