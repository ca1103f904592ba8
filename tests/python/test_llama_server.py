"""llama-server, unmodified, with keyformer by LD_PRELOAD (build/lib/libkeyformer-preload.so).

The pinned release's llama-server (build/scripts/llama-server.sh builds it once into build/deps) is started
twice with the same arguments, plain and with ``LD_PRELOAD`` and ``KEYFORMER_BUDGET``, on SmolLM2,
4 slots of 8192 positions each (``-c 32768 -np 4``, one KV stream per slot), and driven over HTTP
with the openai client and plain requests: memory, concurrent chats longer than the cells,
identical text where nothing is evicted, the requests that make the server edit a slot's cache,
a context shift (started by ``keyformer serve``), and a soak on a server of its own (8 clients;
``KEYFORMER_SOAK_SECONDS``, default 300).
"""

import os
import re
import subprocess
import threading
import time

import pytest

from llama_server import PRELOAD, ROOT, Server, chat, in_threads, model_path, notes, server_binary, stats_lines, words

MODEL = model_path()
BUDGET, N_BATCH, SLACK, SLOTS = 256, 256, 16, 4  # SLACK: the library's default evict_slack
#: What a slot's stream holds at most: the budget, the slack and one batch, rounded up to 256 as
#: llama.cpp rounds a stream.
STREAM_CELLS = (BUDGET + SLACK + N_BATCH + 255) // 256 * 256
ARGS = ["-m", MODEL, "-c", "32768", "-np", str(SLOTS), "-t", "2", "-b", str(N_BATCH), "-ub", str(N_BATCH),
        "--metrics", "-lv", "4", "--host", "127.0.0.1", "--port", "0"]
#: What neither server may ever log.
BAD_LOG = re.compile(r"Invalid input batch|GGML_ASSERT|failed to find a memory slot|failed to decode|"
                     r"keyformer-preload: keyformer_llama_")

pytestmark = pytest.mark.nolib  # the preload opens build/lib/libkeyformer.so.0 itself


@pytest.fixture(scope="module")
def binary():
    missing = [p for p in (MODEL, PRELOAD) if not os.path.exists(p)]
    if missing:
        msg = "missing %s (make deps lib)" % ", ".join(missing)
        if os.environ.get("KEYFORMER_TEST_REQUIRE_LIB") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return server_binary()


@pytest.fixture(scope="module")
def servers(binary, tmp_path_factory):
    """(plain, preloaded, the preloaded server's stats file)."""
    tmp = tmp_path_factory.mktemp("llama-server")
    stats = str(tmp / "stats.jsonl")
    args = ARGS + ["--slot-save-path", str(tmp)]
    plain = Server(binary, args, str(tmp / "plain.log"))
    try:
        kf = Server(binary, args, str(tmp / "keyformer.log"),
                    env={"LD_PRELOAD": PRELOAD, "KEYFORMER_BUDGET": str(BUDGET), "KEYFORMER_STATS": stats})
    except BaseException:
        plain.stop()
        raise
    yield plain, kf, stats
    kf.stop()
    plain.stop()


def test_short_prompt_gives_the_plain_servers_text(servers):
    plain, kf, _ = servers
    body = {"prompt": "The three primary colours are", "n_predict": 32, "temperature": 0, "cache_prompt": False}
    a, b = plain.request("/completion", body), kf.request("/completion", body)
    assert a[0] == b[0] == 200
    assert words(a[1]["content"])
    assert b[1]["content"] == a[1]["content"]


def test_concurrent_chats_longer_than_the_cells(servers):
    _, kf, stats = servers
    results = in_threads(SLOTS, lambda i: chat(kf, i))
    for replies, usage, _ in results:
        assert all(words(r) for r in replies), replies
        assert usage.prompt_tokens > 4 * STREAM_CELLS, usage  # the history outgrew the cells 4 times over
    # SmolLM2 (135M) itself misses the fact now and then (the plain server did once in 4 in trials)
    answered = sum("plum" in replies[-1].lower() for replies, _, _ in results)
    assert answered >= SLOTS - 1, [replies[-1] for replies, _, _ in results]
    lines = stats_lines(stats)
    seqs = {line["seq"] for line in lines}
    assert seqs == set(range(SLOTS)), seqs  # every slot ran through keyformer
    assert max(line["cells"] + line["evicted"] for line in lines) <= BUDGET + SLACK + N_BATCH
    assert max(line["cells"] for line in lines) <= BUDGET + SLACK
    assert max(line["pos_max"] for line in lines) > 4 * STREAM_CELLS
    assert all(line["pos_min"] == 0 for line in lines)  # the first tokens stay (KEYFORMER_KEEP_SINKS=1)
    assert all(line["n_ctx_seq"] == STREAM_CELLS and line["n_ctx_seq_virtual"] == 8192 for line in lines)
    # the slots decoded together: on average more than one busy slot per llama_decode
    busy = kf.metrics()["n_busy_slots_per_decode"]
    assert busy > 1, busy


def test_memory_is_bounded(servers):
    plain, kf, _ = servers
    assert plain.kv_cache()[:2] == (8192, SLOTS)
    assert kf.kv_cache()[:2] == (STREAM_CELLS, SLOTS)
    status, props = kf.request("/props")
    assert status == 200 and props["default_generation_settings"]["n_ctx"] == 8192  # what the host believes
    # SmolLM2's KV cache: 30 layers x 3 KV heads x 64 x (K + V) x 2 bytes = 22.5 KiB a cell
    saved_mib = (8192 - STREAM_CELLS) * SLOTS * 22.5 / 1024
    assert plain.rss_mib() - kf.rss_mib() > 0.8 * saved_mib, (plain.rss_mib(), kf.rss_mib(), saved_mib)


def test_requests_that_edit_a_slots_cache(servers):
    _, kf, _ = servers
    from openai import OpenAI
    client = OpenAI(base_url=kf.url + "/v1", api_key="none", max_retries=0, timeout=900)
    stop = threading.Event()

    def background(i):  # two clients keep chatting meanwhile
        n = 0
        while not stop.is_set() and n < 3:
            chat(kf, 10 + i, turns=2, notes_per_turn=12)
            n += 1

    th = threading.Thread(target=lambda: in_threads(2, background))
    th.start()
    try:
        _, _, messages = chat(kf, 20, turns=4)
        # regenerate the last answer: the same history without it
        r = client.chat.completions.create(model="m", messages=messages[:-1], max_tokens=32, temperature=0.8)
        assert words(r.choices[0].message.content)
        # edit an early turn: the slot keeps only the start of its cache
        edited = [dict(messages[0], content="A different first question: what is a lighthouse?")] + messages[1:-1]
        r = client.chat.completions.create(model="m", messages=edited, max_tokens=32, temperature=0)
        assert words(r.choices[0].message.content)
        # two completions of one prompt (the server copies the prompt's cells to a second slot)
        r = client.completions.create(model="m", prompt=notes(500, 40) + "\nIn short,", n=2, max_tokens=24,
                                      temperature=0.9)
        assert len(r.choices) == 2 and all(words(c.text) for c in r.choices)
        status, body = kf.request("/completion", {"prompt": notes(600, 60), "n_predict": 16, "cache_prompt": False})
        assert status == 200 and words(body["content"])
        # slot save works (llama.cpp writes its state); restore is refused, as an error reply
        status, _ = kf.request("/slots/0?action=save", {"filename": "slot0.bin"})
        assert status == 200
        status, body = kf.request("/slots/0?action=restore", {"filename": "slot0.bin"})
        assert status != 200, body
    finally:
        stop.set()
        th.join()
    assert kf.health() == 200
    text = kf.text()
    assert not BAD_LOG.search(text), BAD_LOG.search(text).group(0)
    assert "llama_state_seq_load_file refused" in text


def test_context_shift(binary, tmp_path):
    """A slot of 1024 positions generating 1100 tokens: llama-server shifts its context (seq_rm and
    seq_add of the kept tokens) and keyformer follows. The server is started by `keyformer serve`."""
    stats = str(tmp_path / "stats.jsonl")
    cli = str(tmp_path / "keyformer")
    subprocess.run(["go", "build", "-o", cli, "./bindings/lab/cmd/keyformer"], cwd=ROOT, check=True, timeout=900)
    server = Server(cli, ["serve", "--budget", str(BUDGET), "--stats", stats, "--server", binary, "--preload", PRELOAD,
                          "--", "-m", MODEL, "-c", "1024", "-np", "1", "-t", "2", "-b", str(N_BATCH), "-ub", str(N_BATCH),
                          "--context-shift", "--host", "127.0.0.1", "--port", "0"],
                    str(tmp_path / "shift.log"))
    try:
        status, body = server.request("/completion", {"prompt": notes(0, 20), "n_predict": 1100,
                                                      "ignore_eos": True, "temperature": 0})
        assert status == 200 and body["tokens_predicted"] == 1100, body
        assert server.health() == 200
        text = server.text()
        assert "keyformer serve: " + binary in text and "slot context shift" in text
        assert not BAD_LOG.search(text), BAD_LOG.search(text).group(0)
        assert max(line["cells"] for line in stats_lines(stats)) <= BUDGET + SLACK
    finally:
        server.stop()


def test_soak(binary, tmp_path):
    """8 clients for KEYFORMER_SOAK_SECONDS (default 300): no error reply, the server's memory flat
    after the warm-up (its first third). The server's own cache of idle slots' prompts
    (--cache-ram, which grows by design up to 8 GiB, and whose restores the preload refuses) is
    off, so that the memory measured is llama.cpp's and keyformer's."""
    kf = Server(binary, ARGS + ["--cache-ram", "0"], str(tmp_path / "soak.log"),
                env={"LD_PRELOAD": PRELOAD, "KEYFORMER_BUDGET": str(BUDGET)})
    seconds = float(os.environ.get("KEYFORMER_SOAK_SECONDS", "300"))
    deadline = time.time() + seconds
    rss = []

    def client(i):
        n = 0
        while time.time() < deadline:
            status, body = kf.request("/completion", {"prompt": notes(1000 + 97 * i + n, 10 + (i * 13 + n * 7) % 50),
                                                      "n_predict": 16 + n % 16, "temperature": 0.7})
            assert status == 200 and words(body["content"]), (status, body)
            n += 1
        return n

    def sample(_):
        while time.time() < deadline:
            rss.append((time.time(), kf.rss_mib()))
            time.sleep(2)

    try:
        counts = in_threads(9, lambda i: sample(i) if i == 8 else client(i))
        assert all(c > 0 for c in counts[:8]), counts
        warm = [m for t, m in rss if t > deadline - seconds * 2 / 3]
        assert warm and max(warm) - min(warm) < 32, (min(warm), max(warm))
        assert kf.health() == 200
        text = kf.text()
        assert not BAD_LOG.search(text), BAD_LOG.search(text).group(0)
    finally:
        kf.stop()
