"""bicky_client.py — the keep-alive HTTP client of the test load generators
(tests/tools/loadgen.py, tests/chaos/chaos_load.py); python3 standard library."""
import http.client
from urllib.parse import urlsplit


class Client:
    """One keep-alive HTTP/1.1 connection, reopened after any transport error."""

    def __init__(self, url, token, timeout):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.token, self.timeout, self.conn = token, timeout, None

    def request(self, method, path, body, key=None):
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
            ra = resp.getheader("Retry-After")
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, data, ra
        except TimeoutError:
            self.close()
            return -2, b"", None
        except (OSError, http.client.HTTPException):
            self.close()
            return -1, b"", None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
