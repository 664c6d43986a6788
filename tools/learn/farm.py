"""The learner's view of a dllm-farm: HTTP only (urllib), plus the project's CLI for the offline steps
(`dllm-farm tasks`, `export`, `convert`). Every failure is a FarmError with a sentence saying what to fix."""
import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class FarmError(RuntimeError):
    """A failure talking to the farm or running its CLI, with a message a user can act on."""


class Client:
    """Minimal JSON client of the gateway: bearer key, timeouts, clear errors (gateway down, 4xx/5xx with the
    API's own error message)."""

    def __init__(self, base_url, key, timeout=60.0):
        self.base = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def request(self, method, path, body=None, ok=(200, 201, 202), raw=False):
        """-> parsed JSON (or bytes when raw). Raises FarmError on no answer or an unexpected status;
        the error has .status (HTTP status or None) and .code (the API's error code when given)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                status, payload = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise FarmError(f"the gateway at {self.base} does not answer ({method} {path}: {reason}); is the farm running and the URL right?") from None
        if status not in ok:
            msg, code = payload.decode("utf-8", "replace")[:500], None
            try:
                j = json.loads(payload)
                err = j.get("error", j)
                if isinstance(err, dict):
                    msg, code = err.get("message", msg), err.get("code") or err.get("type")
            except ValueError:
                pass
            e = FarmError(f"{method} {path} -> HTTP {status}: {msg}")
            e.status, e.code = status, code
            raise e
        if raw:
            return payload
        return json.loads(payload) if payload else None


def cli_argv(cli):
    """The dllm-farm CLI as an argv prefix: `cli` is a command line (default: the repo's bin/dllm-farm)."""
    return shlex.split(cli) if cli else ["node", os.path.join(REPO, "bin", "dllm-farm")]


def run_cli(cli, args, what, timeout=600):
    """Runs `dllm-farm <args>`; -> stdout. A non-zero exit is a FarmError carrying the CLI's own message."""
    argv = cli_argv(cli) + list(args)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except FileNotFoundError as e:
        raise FarmError(f"{what}: cannot run the dllm-farm CLI ({argv[0]}: {e.strerror}); pass --cli") from None
    except subprocess.TimeoutExpired:
        raise FarmError(f"{what}: dllm-farm {args[0]} did not finish in {timeout}s") from None
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-5:]
        raise FarmError(f"{what}: dllm-farm {args[0]} exited {p.returncode}: " + " | ".join(tail))
    return p.stdout


def wait_rollout(client, rid, timeout, poll=0.5):
    """Polls GET /v1/rollouts/:id until completed; a failed rollout or the timeout is a FarmError. -> the view."""
    t_end = time.time() + timeout
    while True:
        v = client.request("GET", f"/v1/rollouts/{rid}")
        if v.get("status") == "completed":
            return v
        if v.get("status") == "failed":
            raise FarmError(f"rollout {rid} failed: {v.get('failed_reason') or v.get('error') or 'no reason given'}")
        if time.time() > t_end:
            raise FarmError(f"rollout {rid} did not complete in {timeout:.0f}s (status {v.get('status')}, progress {v.get('progress')})")
        time.sleep(poll)


def read_stream(client, rid, group, cursor, on_page, timeout, count=200, poll=0.3):
    """Reads every record of rollout `rid` as consumer group `group` from `cursor` (None: the start). Each page is
    handed to on_page(records, cursor) BEFORE it is acknowledged (its cursor is only sent with the next request), so
    a crash in between re-delivers it. Returns when the gateway says done (everything read and acknowledged)."""
    t_end = time.time() + timeout
    while True:
        q = {"group": group, "count": str(count)}
        if cursor:
            q["cursor"] = cursor
        page = client.request("GET", f"/v1/rollouts/{rid}/stream?" + urllib.parse.urlencode(q))
        if page.get("done"):
            return cursor
        recs = page.get("records") or []
        if recs:
            on_page(recs, page.get("cursor"))
            cursor = page.get("cursor")
            continue
        if time.time() > t_end:
            raise FarmError(f"rollout {rid}: stream not finished after {timeout:.0f}s (published {page.get('published')}, total {page.get('total')})")
        time.sleep(poll)


def register_version(client, model, directory, version):
    """POST /v1/models/:name/versions {dir, version}. A 409 for the same directory (a crash after registering)
    counts as done; a 409 for another directory is a version conflict FarmError. -> the registry entry."""
    try:
        return client.request("POST", f"/v1/models/{model}/versions", {"dir": directory, "version": version})
    except FarmError as e:
        if getattr(e, "status", None) == 409:
            listing = client.request("GET", f"/v1/models/{model}/versions")
            for v in listing.get("data", []):
                if v.get("version") == version and os.path.realpath(v.get("dir", "")) == os.path.realpath(directory):
                    return v
            raise FarmError(f"version conflict: {model} version '{version}' is already registered with another directory; "
                            f"use another --version-prefix (or --out for a fresh run)") from None
        if getattr(e, "status", None) == 422:
            raise FarmError(f"the gateway rejected {directory} as {model} version '{version}': {e}") from None
        raise
