"""llama-server of the pinned release, run as a child process and driven over HTTP: what the tests
(test_llama_server.py) and the benchmark (bench_llama_server.py) share."""

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PRELOAD = os.path.join(ROOT, "build", "lib", "libkeyformer-preload.so")


def model_path(name="smollm2"):
    return os.path.join(ROOT, "build", "deps", "models", name + ".gguf")


def server_binary():
    """The pinned llama-server (build/scripts/llama-server.sh builds it the first time)."""
    r = subprocess.run(["bash", os.path.join(ROOT, "build", "scripts", "llama-server.sh")], stdout=subprocess.PIPE, text=True,
                       timeout=3600)
    assert r.returncode == 0, "build/scripts/llama-server.sh failed"
    return r.stdout.strip().splitlines()[-1]


class Server:
    """A llama-server process on a free port of 127.0.0.1, its log in a file."""

    def __init__(self, binary, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary] + args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        deadline = time.time() + 300
        self.url = None
        while self.url is None:
            m = re.search(r"listening on (http://[0-9.]+:[0-9]+)", self.text())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError("llama-server did not start:\n" + self.text()[-3000:])
            else:
                time.sleep(0.2)
        while self.health() != 200:
            assert time.time() < deadline and self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.2)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def request(self, path, body=None, method=None):
        """(HTTP status, decoded JSON reply or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def health(self):
        try:
            return self.request("/health")[0]
        except (urllib.error.URLError, ConnectionError):
            return None

    def rss_mib(self, peak=False):
        """The process's resident memory now (peak: the most it has held), in MiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            field = "VmHWM" if peak else "VmRSS"
            return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1)) / 1024

    def kv_cache(self):
        """(cells per stream, streams, MiB) from llama.cpp's own log line of the KV cache's size."""
        m = re.findall(r"llama_kv_cache: size = +([0-9.]+) MiB \(\s*(\d+) cells,\s*\d+ layers,\s*(\d+)/(\d+) seqs\)",
                       self.text())
        assert m, "no KV size line in the log"
        mib, cells, _, streams = m[-1]
        return int(cells), int(streams), float(mib)

    def metrics(self):
        """The server's /metrics (--metrics) as {name: value}."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^llamacpp:(\w+) ([0-9.e+-]+)$", text, re.M)}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def stats_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def words(text):
    return re.search(r"[A-Za-z]{3,}", text or "") is not None


# A long, varied history without any dataset: numbered notes from templates.
PLACES = ["harbour", "library", "station", "market", "bridge", "orchard", "museum", "lighthouse"]
THINGS = ["ferry", "lantern", "bicycle", "ledger", "telescope", "kettle", "compass", "violin"]


def notes(first, n):
    return " ".join("Note %d: the %s near the %s was moved on day %d and checked again %d days later." % (
        i, THINGS[i * 7 % 8], PLACES[i * 3 % 8], i % 28 + 1, i % 9 + 2) for i in range(first, first + n))


def chat(server, client_id, turns=6, notes_per_turn=30, last="The code word is PLUM. Reply with the code word.",
         max_tokens=48):
    """A chat over the openai client: turns - 1 user turns of notes, each asking what they are
    about, then a short last turn that states a fact and asks it back. Returns the replies, the
    last reply's usage and the messages."""
    from openai import OpenAI
    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=900)
    messages, replies, usage = [], [], None
    for t in range(turns):
        if t == turns - 1:
            text = last
        else:
            text = notes((client_id * turns + t) * notes_per_turn, notes_per_turn)
            text += "\n\nSay in one sentence what these notes are about."
        messages.append({"role": "user", "content": text})
        r = client.chat.completions.create(model="m", messages=messages, max_tokens=max_tokens, temperature=0)
        reply = r.choices[0].message.content
        replies.append(reply)
        usage = r.usage
        messages.append({"role": "assistant", "content": reply})
    return replies, usage, messages


def in_threads(n, fn):
    """fn(i) for i in range(n) on n threads; their results, or the first exception raised."""
    results, errors = [None] * n, []

    def run(i):
        try:
            results[i] = fn(i)
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results
