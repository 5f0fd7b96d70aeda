"""BackendClient against the real worker and against workers with test-only ops.

Test ops are registered on a real ``backend.worker.Worker`` inside a child
process (``python -c``), so the protocol, cancel and death paths are the
product's own code; only the op bodies are test doubles.
"""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import pytest

from backend.protocol.client import BackendClient
from backend.protocol.errors import FaceKeyError
from backend.protocol.messages import Progress

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEST_WORKER = textwrap.dedent("""
    import os, sys, time
    from backend import worker
    from backend.protocol.errors import FaceKeyError
    from backend.protocol.messages import Progress
    out = worker._protocol_stdout()
    worker._setup_logging()
    w = worker.Worker(sys.stdin.buffer, out)

    def cooperative(args, progress, cancel):
        for i in range(600):
            progress(Progress(i, 600, "waiting"))
            if cancel.wait(0.05):
                raise FaceKeyError("cancelled", "cooperative op cancelled", "again")
        return {"finished": True}

    def stubborn(args, progress, cancel):
        progress(Progress(0, 1, "ignoring cancel"))
        time.sleep(60)
        return {"finished": True}

    def noisy(args, progress, cancel):
        print("python-level print to stdout")
        os.write(1, b"C-level write to fd 1\\n")
        return {"ok": True}

    def crash(args, progress, cancel):
        raise ZeroDivisionError("test bug")

    def chatty(args, progress, cancel):
        for i in range(2000):
            progress(Progress(i + 1, 2000, "step"))
        return {"ok": True}

    def segfault(args, progress, cancel):
        import ctypes
        ctypes.string_at(0)

    def garbled(args, progress, cancel):
        out.write('{"type": "result", "id": "r1", "payl' + chr(10))     # half a protocol line, then it dies
        out.flush()
        os._exit(3)

    w.ops.update(cooperative=cooperative, stubborn=stubborn, noisy=noisy, crash=crash, chatty=chatty,
                 segfault=segfault, garbled=garbled)
    w.serve("cpu")
""")


def _client(tmp_path, args=None, python=sys.executable) -> BackendClient:
    return BackendClient(python, str(tmp_path / "backend.log"), args=args, cwd=REPO)


@pytest.fixture
def test_worker(tmp_path):
    client = _client(tmp_path, ["-c", TEST_WORKER])
    client.start(timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def real_worker(tmp_path_factory):
    client = _client(tmp_path_factory.mktemp("real"))
    hello = client.start(timeout=120)
    assert hello["protocol"] == 1 and hello["device"] in ("cpu", "cuda")
    yield client
    client.close()


def test_real_worker_ping_and_poll(real_worker):
    assert real_worker.request("ping", {}, timeout=30)["pong"] is True
    rid = real_worker.submit("ping", {})
    got = []
    for _ in range(300):  # what a UI timer does: poll now and then
        got += real_worker.poll()
        if any(m["type"] == "result" for m in got):
            break
        time.sleep(0.01)
    assert [m["id"] for m in got if m["type"] == "result"] == [rid]


def test_real_worker_csv_ops_and_errors(real_worker, tmp_path):
    from backend.protocol.livelink import write_livelink_csv
    from backend.protocol.take import Take, write_take

    take = Take.empty(45, 30.0)  # > 1 s, so the CSV timecodes show the rate
    take.weights[:, 17] = 0.5
    write_take(tmp_path / "a.npz", take)
    res = real_worker.request("export_csv", {"take": str(tmp_path / "a.npz"), "csv": str(tmp_path / "a.csv")})
    assert res["frames"] == 45 and os.path.isfile(res["csv"])
    res = real_worker.request("import_csv", {"csv": res["csv"], "output": str(tmp_path / "b.npz")})
    assert res["frames"] == 45 and res["fps"] == 30.0 and os.path.isfile(res["take"])
    with pytest.raises(FaceKeyError) as e:
        real_worker.request("import_csv", {"csv": str(tmp_path / "none.csv"), "output": str(tmp_path / "c.npz")})
    assert e.value.code == "file_missing" and e.value.hint
    with pytest.raises(FaceKeyError) as e:
        real_worker.request("import_csv", {"output": "x.npz"})
    assert e.value.code == "bad_argument"
    with pytest.raises(FaceKeyError) as e:
        real_worker.request("no_such_op", {})
    assert e.value.code == "protocol"
    assert real_worker.alive and write_livelink_csv  # still serving after errors


def test_python_that_does_not_exist(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        _client(tmp_path, python=str(tmp_path / "venv" / "bin" / "python")).start()
    assert e.value.code == "backend_missing" and "Set up backend" in e.value.hint


def test_python_without_the_backend(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        _client(tmp_path, ["-m", "facekey_backend_that_is_not_installed"]).start(timeout=30)
    assert e.value.code == "backend_missing"
    assert "No module named" in e.value.message  # the log tail travels in the message
    assert "Set up backend" in e.value.hint


def test_worker_that_never_says_hello_times_out(tmp_path):
    client = _client(tmp_path, ["-c", "import time; time.sleep(120)"])
    with pytest.raises(FaceKeyError) as e:
        client.start(timeout=1.0)
    assert e.value.code == "backend_timeout" and client.log_path in e.value.hint
    client.close()
    assert not client.alive


def test_worker_killed_mid_request_is_reported(test_worker):
    rid = test_worker.submit("stubborn", {})
    seen = []
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, on_progress=lambda p: (seen.append(p), os.kill(test_worker.hello["pid"], signal.SIGKILL)),
                         timeout=20)
    assert e.value.code == "backend_died", e.value  # not backend_timeout: the death is noticed at once
    assert seen and isinstance(seen[0], Progress)
    assert test_worker.log_path in e.value.hint and not test_worker.alive
    with pytest.raises(FaceKeyError) as e:
        test_worker.submit("ping", {})
    assert e.value.code == "backend_died"


def test_idle_worker_death_shows_up_in_poll(test_worker):
    os.kill(test_worker.hello["pid"], signal.SIGKILL)
    msgs = []
    for _ in range(1000):
        msgs += test_worker.poll()
        if msgs:
            break
        time.sleep(0.01)
    assert [(m["type"], m["code"], m["id"]) for m in msgs] == [("error", "backend_died", None)]


def test_cooperative_cancel_keeps_the_worker(test_worker):
    rid = test_worker.submit("cooperative", {})
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, on_progress=lambda p: test_worker.cancel(rid, kill_after=30), timeout=20)
    assert e.value.code == "cancelled" and e.value.message == "cooperative op cancelled"
    assert test_worker.alive and test_worker.request("ping", {}, timeout=10)["pong"]


def test_cancel_kills_a_worker_that_ignores_it(test_worker):
    rid = test_worker.submit("stubborn", {})
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, on_progress=lambda p: test_worker.cancel(rid, kill_after=0.5), timeout=20)
    assert e.value.code == "cancelled"  # within kill_after, not after the op's 60 s
    for _ in range(500):
        if not test_worker.alive:
            break
        time.sleep(0.01)
    assert not test_worker.alive


def test_cancel_of_a_queued_request(test_worker):
    first = test_worker.submit("cooperative", {})
    second = test_worker.submit("ping", {})
    test_worker.cancel(second, kill_after=30)
    test_worker.cancel(first, kill_after=30)
    for rid in (first, second):
        with pytest.raises(FaceKeyError) as e:
            test_worker.wait(rid, timeout=20)
        assert e.value.code == "cancelled"
    assert test_worker.alive


def test_library_prints_do_not_corrupt_the_protocol(test_worker):
    assert test_worker.request("noisy", {}, timeout=10) == {"ok": True}
    test_worker.close()
    log = open(test_worker.log_path).read()
    assert "python-level print to stdout" in log and "C-level write to fd 1" in log


def test_bug_in_an_op_is_internal_with_traceback_in_log(test_worker):
    with pytest.raises(FaceKeyError) as e:
        test_worker.request("crash", {}, timeout=10)
    assert e.value.code == "internal" and "ZeroDivisionError" in e.value.message
    assert test_worker.request("ping", {}, timeout=10)["pong"]
    test_worker.close()
    assert "Traceback" in open(test_worker.log_path).read()


def test_progress_is_rate_limited_but_ends_at_total(test_worker):
    seen = []
    assert test_worker.request("chatty", {}, on_progress=seen.append, timeout=20) == {"ok": True}
    assert 1 <= len(seen) < 2000
    assert seen[-1] == Progress(2000, 2000, "step")


def test_wait_timeout_and_unknown_request(test_worker):
    rid = test_worker.submit("cooperative", {})
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, timeout=0.2)
    assert e.value.code == "backend_timeout"
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait("r999", timeout=1)
    assert e.value.code == "bad_argument"


def test_close_is_prompt_and_idempotent(test_worker):
    test_worker.submit("stubborn", {})
    test_worker.close(timeout=0.5)
    assert not test_worker.alive
    test_worker.close()


def test_progress_sent_before_wait_is_still_delivered(test_worker):
    """Progress that reaches the client before wait() is called goes to on_progress
    (regression: it used to be parked for poll() and the cancel it triggers never came)."""
    rid = test_worker.submit("stubborn", {})
    deadline = time.monotonic() + 10
    while test_worker._inbox.empty() and time.monotonic() < deadline:   # the worker's first progress is queued
        time.sleep(0.01)
    seen = []
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, on_progress=lambda p: (seen.append(p), test_worker.cancel(rid, kill_after=0.5)),
                         timeout=20)
    assert seen and e.value.code == "cancelled"


def test_a_log_that_cannot_be_written_is_a_coded_error(tmp_path):
    (tmp_path / "log_is_a_folder").mkdir()
    client = BackendClient(sys.executable, str(tmp_path / "log_is_a_folder"), args=["-c", TEST_WORKER], cwd=REPO)
    with pytest.raises(FaceKeyError) as e:
        client.start(timeout=60)
    assert e.value.code == "write_failed" and "log_is_a_folder" in e.value.message and e.value.hint


def test_backend_death_is_reported_even_when_the_log_cannot_be_written(test_worker):
    """Half a line and a crash while the disk is full: writing the note about the bad line raised in the
    reader thread, which died before reporting the exit, and the request was waited on forever."""
    class FullDisk:
        closed = False

        def write(self, data):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    test_worker._log_file = FullDisk()
    rid = test_worker.submit("garbled", {})
    with pytest.raises(FaceKeyError) as e:
        test_worker.wait(rid, timeout=20)
    assert e.value.code == "backend_died"


def test_a_native_crash_leaves_its_stack_in_the_log():
    """The worker's stderr is the log: a segfault there left only an exit code (-11), no stack."""
    import subprocess

    crash = ("import ctypes\nfrom backend import worker\n"
             "worker.Worker.serve = lambda self, device: ctypes.string_at(0)\nworker.main()\n")
    proc = subprocess.run([sys.executable, "-c", crash], cwd=REPO, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and "Fatal Python error: Segmentation fault" in proc.stderr
    assert "serve" in proc.stderr or "<lambda>" in proc.stderr


def test_worker_exits_when_its_input_ends_without_a_shutdown(tmp_path):
    """Blender gone mid-request: the worker's input ends; an op that never looks at its cancel flag ran on,
    orphaned, for its whole length (60 s here); it now ends ORPHAN_GRACE_S after."""
    script = TEST_WORKER.replace("w = worker.Worker(sys.stdin.buffer, out)",
                                 "worker.ORPHAN_GRACE_S = 0.5\n"
                                 "w = worker.Worker(sys.stdin.buffer, out, exit_when_orphaned=True)")
    client = _client(tmp_path, ["-c", script])
    client.start(timeout=60)
    client.submit("stubborn", {})
    time.sleep(0.5)
    t0 = time.monotonic()
    client._proc.stdin.close()
    client._proc.wait(timeout=20)
    assert time.monotonic() - t0 < 10
    client.close()


def test_launch_returns_at_once_and_poll_takes_the_hello(tmp_path):
    """Blender's UI froze for the whole worker start (about 5 s, up to the 60 s timeout, Esc dead) while
    start() waited for the hello: launch() returns at once, a request submitted meanwhile waits in the
    pipe, and poll() takes the hello when it comes; no hello within the timeout is a backend_timeout."""
    slow = TEST_WORKER.replace("out = worker._protocol_stdout()", "time.sleep(2.0)\nout = worker._protocol_stdout()")
    client = _client(tmp_path, ["-c", slow])
    t0 = time.monotonic()
    client.launch(timeout=60)
    rid = client.submit("ping", {})
    assert time.monotonic() - t0 < 1.0 and client.hello is None
    seen = []
    while not any(m.get("id") == rid and m["type"] == "result" for m in seen) and time.monotonic() - t0 < 60:
        seen += client.poll()
        time.sleep(0.05)
    assert client.hello is not None and client.hello["protocol"] == 1
    assert [m["type"] for m in seen if m.get("id") in (None, rid)][-1] == "result"
    client.close()
    mute = _client(tmp_path, ["-c", "import time; time.sleep(120)"])
    mute.launch(timeout=1.0)
    time.sleep(1.2)
    errors = [m for m in mute.poll() if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["backend_timeout"] and not mute.alive
    mute.close()


def test_a_launched_worker_of_another_protocol_gets_nothing_to_run(tmp_path):
    """Requests submitted before the hello wait in the client: a worker speaking another protocol never
    receives them (its answer was used before the mismatch was seen); one that dies before its hello is a
    missing backend (set it up), not a crash to retry."""
    marker = tmp_path / "got_a_request"
    other = textwrap.dedent(f"""
        import os, sys
        from backend.protocol.messages import encode
        sys.stdout.write(encode("hello", protocol=99, version="x", device="cpu", pid=os.getpid()))
        sys.stdout.flush()
        for line in sys.stdin:          # a shutdown may come; a request must not
            if '"request"' in line:
                open({str(marker)!r}, "w").write(line)
    """)
    client = _client(tmp_path, ["-c", other])
    client.launch(timeout=60)
    client.submit("ping", {})
    seen, t0 = [], time.monotonic()
    while not any(m["type"] == "error" for m in seen) and time.monotonic() - t0 < 30:
        seen += client.poll()
        time.sleep(0.05)
    assert [m["type"] for m in seen] == ["error"] and seen[0]["code"] == "protocol"
    time.sleep(0.3)
    assert not marker.exists() and not client.alive
    waiting = _client(tmp_path, ["-c", other])       # the same through wait(): the mismatch is raised
    waiting.launch(timeout=60)
    with pytest.raises(FaceKeyError) as e:
        waiting.request("ping", {}, timeout=30)
    assert e.value.code == "protocol" and not marker.exists()
    broken = _client(tmp_path, ["-c", "import sys; sys.exit('No module named backend')"])
    broken.launch(timeout=60)
    rid = broken.submit("capture", {})
    with pytest.raises(FaceKeyError) as e:
        broken.wait(rid, timeout=30)
    assert e.value.code == "backend_missing" and "No module named backend" in e.value.message
