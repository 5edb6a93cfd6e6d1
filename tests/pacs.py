"""Orthanc for tests, in a network namespace of the test's own (a helper module, not a test file).

Orthanc 1.10 cannot be told which address to listen on: it always listens on all interfaces
(``scripts/orthanc.sh`` documents it; "RemoteAccessAllowed": false makes it refuse requests that
do not come from this machine). A test must not open such a port on the machine's network, so
:func:`running_orthanc` first moves the test itself into a new, empty network namespace:

1. ``unshare(CLONE_NEWNET)`` through ctypes (``os.unshare`` only exists from Python 3.12). It
   moves only the calling thread, i.e. pytest's main thread, where fixtures and tests run; the
   new namespace has nothing but a loopback interface, which is brought up with the
   ``SIOCSIFFLAGS`` ioctl (no ``ip`` command needed).
2. ``scripts/orthanc.sh start`` (what users run) is started from that thread, so it and the
   Orthanc it starts live in the namespace; so do ``scripts/upload_studies.py`` and every other
   subprocess the test starts, and the test's own HTTP requests. Nothing else, not even another
   process on this machine, can reach 127.0.0.1:<port> there.
3. At the end, ``orthanc.sh stop``, then ``setns()`` back to the namespace the thread came from
   (a file descriptor of it is kept open). The private namespace disappears with its last
   process; an Orthanc that would not stop is killed by its PID.

This needs CAP_SYS_ADMIN (root, as on the CI machine). Where namespaces are not permitted, the
fixture calls ``pytest.skip`` with the reason instead of exposing a port. The Debian packages are
installed (``scripts/install_system_deps.sh orthanc``) before entering the namespace, which has no
route to the package archive. Each run uses a random free port and a temporary data folder.

Alternatives tried and not chosen: running pytest inside ``unshare -n`` (a wrapper around the
whole test run) and ``ip netns add`` + ``ip netns exec`` (named namespaces, mounted under
/run/netns, that outlive a crashed test) both work here as root but need more moving parts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
ORTHANC_SH = REPO / "scripts" / "orthanc.sh"

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class NamespaceUnavailable(RuntimeError):
    """This process may not create a network namespace (not root, seccomp, not Linux...)."""


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "unshare") or not hasattr(libc, "setns"):
        raise NamespaceUnavailable("the C library has no unshare()/setns()")
    return libc


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


class PrivateNetwork:
    """The calling thread's own network namespace while the ``with`` block runs."""

    def __init__(self):
        self.libc = None
        self.original: Optional[int] = None
        self.private: Optional[int] = None

    def __enter__(self) -> "PrivateNetwork":
        if not os.path.exists("/proc/thread-self/ns/net"):
            raise NamespaceUnavailable("no /proc/thread-self/ns/net (not Linux, or /proc not mounted)")
        self.libc = _libc()
        self.original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if self.libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(self.original)
            hint = " (needs root or CAP_SYS_ADMIN)" if err in (errno.EPERM, errno.EACCES) else ""
            raise NamespaceUnavailable(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}{hint}")
        try:
            self.private = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            _loopback_up()
        except BaseException:
            self._switch(self.original)
            raise
        return self

    def _switch(self, fd: int) -> None:
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise RuntimeError(f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")

    def inside(self) -> bool:
        """Whether the calling thread is in the private namespace now."""
        return os.stat("/proc/thread-self/ns/net").st_ino == os.fstat(self.private).st_ino

    @contextlib.contextmanager
    def outside(self) -> Iterator[None]:
        """Briefly back in the original namespace (to check that the private one is unreachable)."""
        self._switch(self.original)
        try:
            yield
        finally:
            self._switch(self.private)

    def __exit__(self, *exc) -> None:
        try:
            self._switch(self.original)
        finally:
            for fd in (self.private, self.original):
                if fd is not None:
                    os.close(fd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """A running Orthanc started by scripts/orthanc.sh; ``network`` is its private namespace."""

    def __init__(self, data: Path, port: int, network: PrivateNetwork, start_seconds: float):
        self.data = data
        self.port = port
        self.network = network
        self.start_seconds = start_seconds
        self.url = f"http://127.0.0.1:{port}"
        self.dicomweb = f"{self.url}/dicom-web"

    def script(self, action: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``bash scripts/orthanc.sh ACTION --data DATA`` (inside the namespace)."""
        env = dict(os.environ, ORTHANC_HTTP_PORT=str(self.port))
        return subprocess.run(["bash", str(ORTHANC_SH), action, "--data", str(self.data)], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def pid(self) -> Optional[int]:
        try:
            return int((self.data / "orthanc.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def get(self, path: str, **params):
        """GET from Orthanc's REST API (JSON), without proxies from the environment."""
        import requests

        with requests.Session() as session:
            session.trust_env = False
            response = session.get(self.url + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        path = self.data / "orthanc.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"


def _kill_orthanc(pid: Optional[int]) -> None:
    """SIGKILL ``pid`` if it is still an Orthanc (never a recycled PID of something else)."""
    try:
        if pid and Path(f"/proc/{pid}/comm").read_text().strip() == "Orthanc":
            os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


@contextlib.contextmanager
def running_orthanc(data: Optional[Path] = None, timeout: float = 60) -> Iterator[Orthanc]:
    """Orthanc started with scripts/orthanc.sh in a network namespace of the caller's own.

    Raises :class:`NamespaceUnavailable` when namespaces are not permitted (the fixture made by
    :func:`orthanc_fixture` turns that into ``pytest.skip``).
    """
    with PrivateNetwork():  # may we? (NamespaceUnavailable before installing anything)
        pass
    install = subprocess.run(["bash", str(REPO / "scripts" / "install_system_deps.sh"), "orthanc"],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        raise RuntimeError(f"installing Orthanc failed:\n{install.stdout}{install.stderr}")
    with contextlib.ExitStack() as stack:
        if data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orthanc-"))) / "orthanc"
        network = stack.enter_context(PrivateNetwork())
        port = free_port()
        orthanc = Orthanc(Path(data), port, network, 0.0)
        t0 = time.perf_counter()
        started = orthanc.script("start", timeout=timeout)
        orthanc.start_seconds = time.perf_counter() - t0
        try:
            if started.returncode != 0:
                raise RuntimeError(f"orthanc.sh start failed ({started.returncode}):\n{started.stdout}{started.stderr}")
            yield orthanc
        finally:
            pid = orthanc.pid()
            stopped = None
            try:
                stopped = orthanc.script("stop", timeout=60)
            finally:
                if stopped is None or stopped.returncode != 0:
                    _kill_orthanc(pid)


def orthanc_fixture(scope: str = "module"):
    """A pytest fixture running Orthanc for the tests that request it (see the module docstring).

        orthanc = orthanc_fixture()          # in a test module

        def test_something(orthanc):
            orthanc.get("/statistics")
    """

    @pytest.fixture(scope=scope)
    def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
        data = tmp_path_factory.mktemp("orthanc")
        try:
            manager = running_orthanc(data)
            server = manager.__enter__()
        except NamespaceUnavailable as exc:
            pytest.skip(f"Orthanc test needs a private network namespace: {exc}")
        try:
            yield server
        finally:
            manager.__exit__(None, None, None)

    return orthanc


def start_pacs_stack(orthanc: "Orthanc", root: Path, names, seed: int, metastatic=(True, False)):
    """Two phantoms in Orthanc (the second stored posterior first, without positions) and our
    server on its DICOMweb with fixed untrained weights; returns (server, folder of the files)."""
    from bonescan.pacs.upload import upload_folder
    from bonescan.phantoms.export import write_study
    from bonescan.phantoms.generator import make_phantom
    from tests.conftest import publish_untrained_weights, start_server

    files = root / "files"
    (files / "truth").mkdir(parents=True)
    layouts = ({"frame_order": ("anterior", "posterior"), "view_codes": True, "position": True},
               {"frame_order": ("posterior", "anterior"), "view_codes": True, "position": False})
    for index, (name, layout) in enumerate(zip(names, layouts)):
        write_study(make_phantom(seed + index, study_id=name, metastatic=metastatic[index]), files, layout)
    report = upload_folder(files, orthanc.dicomweb, progress=False)
    assert not report.failed and report.studies == 2, report.summary()
    model_dir = root / "model"
    model_dir.mkdir()
    publish_untrained_weights(model_dir)
    server = start_server(orthanc.dicomweb, model_dir, root / "server.log",
                          conf={"dicomweb_cache": root / "cache", "dicomweb_list_seconds": 1,
                                "upload_retry_seconds": 2, "retrain_every": 0})
    return server, files
