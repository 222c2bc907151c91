#!/usr/bin/python3
"""The agent page following its agent live, in a real browser: headless Chromium, driven over
the DevTools protocol (--remote-debugging-pipe: JSON messages ending in a NUL byte, on the
browser's descriptors 3 and 4), loads the page, waits until its answer is verified, runs a
command that changes the agent's trust, and waits until the page, without a reload, shows
the change it received on its stream with the signature checked.

    live_follow.py CHROMIUM PAGE_URL PROFILE_DIR -- COMMAND...

Exit 0 with the page's note printed; 1 with what was missing."""

import json
import os
import select
import subprocess
import sys
import time


class Browser:
    def __init__(self, path, profile):
        self.to_r, self.to_w = os.pipe()      # we write, the browser reads (its fd 3)
        self.from_r, self.from_w = os.pipe()  # the browser writes (its fd 4), we read

        def fds():
            os.dup2(self.to_r, 3)
            os.dup2(self.from_w, 4)

        self.proc = subprocess.Popen(
            [path, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            preexec_fn=fds)
        os.close(self.to_r)
        os.close(self.from_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            ready, _, _ = select.select([self.from_r], [], [], 0.5)
            if ready:
                chunk = os.read(self.from_r, 65536)
                if not chunk:
                    raise RuntimeError("the browser closed the pipe")
                self.buf += chunk
        raise RuntimeError(f"{method}: no answer within {timeout} s")

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def text(b, session, selector):
    r = b.call("Runtime.evaluate", {
        "expression": f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''",
        "returnByValue": True}, session)
    return r.get("result", {}).get("value", "")


def wait_for(what, fn, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    print(f"live_follow: {what} did not happen within {seconds} s", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    browser, url, profile, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    b = Browser(browser, profile)
    try:
        target = b.call("Target.createTarget", {"url": url})["targetId"]
        session = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        wait_for("the page's own verification",
                 lambda: "verified against log" in text(b, session, "#verify-result"), 30)
        before = text(b, session, "#live")
        r = subprocess.run(command, timeout=60, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"live_follow: the command failed: {r.stdout}{r.stderr}", file=sys.stderr)
            sys.exit(1)
        note = wait_for("the change on the page, without a reload",
                        lambda: (lambda t: t if t != before and "changed just now" in t else None)(
                            text(b, session, "#live")), 30)
        if "its signature checked" not in note:
            print(f"live_follow: the page took a change it did not check: {note}", file=sys.stderr)
            sys.exit(1)
        print(note)
    finally:
        b.close()


if __name__ == "__main__":
    main()
