"""The sandbox around every run of student code (bubblewrap), and the launcher that drops into it.

Grading runs student code twice per submission: the notebook kernels that ``nbgrader autograde``
starts, and the accuracy measurement child (:mod:`autograder.measure`). Both run inside ``bwrap``:

- **what is visible** (an allow-list, everything read-only): the system (``/usr``, ``/etc``), the
  Python installation and the virtual environment, the toolkit ``genrekit/``, and a *sourceless*
  copy of the grader modules the run needs (compiled
  ``.pyc`` only, first on ``PYTHONPATH``, so hidden checks run but their source cannot be printed;
  the real ``autograder/`` is not there). Nothing else of the
  host: no ``solutions/``, no other student, no output folder, no dataset or cache folder, no home
  folder. Writable: that submission's scratch copy and a private ``/tmp`` (a size-limited tmpfs).
- **no network** (own network namespace, loopback only), **own PID namespace** with
  ``--die-with-parent``: when the run ends, every process it started ends with it.
- **an unprivileged user**: the launcher (``python -m autograder.sandbox exec -- CMD``) sets the
  limits and switches to a user id of its own (one per concurrent run, so process limits do not
  mix) before it executes CMD. nbgrader itself runs in the sandbox as root (it writes the scratch
  gradebook, which that user can neither read nor write); only the kernels it starts are launched
  through the launcher (a kernelspec of our own).
- **limits**: address space (memory), processes, file size (output), CPU seconds (setrlimit),
  ``/tmp`` size (tmpfs), and disk use of the scratch copy (watched by the grader while it runs).
  A breach is named in the submission's row.
"""

from __future__ import annotations

import json
import os
import py_compile
import resource
import shutil
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC_ENV = "GENRE_SANDBOX_SPEC"        # how the launcher learns the user id and the limits
NUMBA_INSIDE = "/tmp/numba"            # numba's cache inside: a warm copy, so librosa is not recompiled
NUMBA_WARM = "/opt/genre-numba"        # where the warm cache is bound read-only
GRADER_LIB = "/opt/genre-grader"       # the sourceless grader modules (first on PYTHONPATH inside)
KERNEL_NAME = "python3"                # the notebooks' kernel: ours shadows the venv's
UID_BASE = 61000
SLOTS = 8                              # concurrent submissions; their second runs use SLOTS + slot
# grader modules the runs need, compiled without source; nothing that holds paths, answers or results
SANDBOX_MODULES = ("__init__.py", "measure.py", "nbexec.py", "pipelines_*.py", "parts.py", "sandbox.py",
                   "checks/*.py")
INSTALL_HINT = "bubblewrap (bwrap) is not installed: run `apt-get install -y bubblewrap` as root (or `make sandbox`)"


MOUNTED = {Path(p) for p in ("/usr", "/etc", "/tmp", "/dev", "/dev/shm", "/proc", "/opt")}


class SandboxError(Exception):
    """The sandbox cannot be used (one line)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run of student code."""
    memory_mb: int = 4096      # address space per process
    processes: int = 256       # processes and threads of the run's user (torch starts a thread per core)
    file_mb: int = 512         # largest file a process may write (output size)
    disk_mb: int = 2048        # all files written in the scratch copy
    tmp_mb: int = 1024         # the private /tmp (and /dev/shm)
    cpu_s: int = 3600          # CPU seconds per process

    def describe(self, kind: str) -> str:
        return {"memory": f"memory limit {self.memory_mb / 1024:g} GB", "processes": f"process limit {self.processes}",
                "file": f"output size limit {self.file_mb} MB per file", "disk": f"disk limit {self.disk_mb} MB",
                "tmp": f"/tmp limit {self.tmp_mb} MB", "cpu": f"CPU time limit {self.cpu_s} s"}[kind]


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def check_available() -> str:
    """The bwrap executable, after checking it works here; SandboxError (one line) otherwise."""
    exe = bwrap_path()
    if not exe:
        raise SandboxError(INSTALL_HINT)
    res = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--die-with-parent",
                          "true"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise SandboxError(f"bwrap does not work here ({res.stderr.strip()[:200]}); it needs root or "
                           f"unprivileged user namespaces")
    return exe


def _ancestors(path: Path) -> list[Path]:
    return list(reversed(path.parents))[1:]  # without "/"


class Sandbox:
    """One batch's sandbox: the private files every run binds (sourceless grader, kernelspec, warm
    numba cache) live in ``private`` (a folder of the grader's, never bound writable)."""

    def __init__(self, private: Path, limits: Limits | None = None, numba_cache: Path | None = None):
        self.bwrap = check_available()
        self.limits = limits or Limits()
        self.private = Path(private).resolve()
        self.private.mkdir(parents=True, exist_ok=True)
        os.chmod(self.private, 0o700)
        self.lib = self._compile_grader(self.private / "lib" / "autograder")
        self.kernels = self._kernelspec(self.private / "jupyter")
        self.numba = Path(numba_cache) if numba_cache else self.private / "numba"
        self._slots = list(range(SLOTS))
        self._lock = threading.Lock()

    # --- private files --------------------------------------------------------------------------

    @staticmethod
    def _compile_grader(dest: Path) -> Path:
        """The grader modules the runs import, as legacy ``module.pyc`` files without source."""
        if dest.exists():
            shutil.rmtree(dest)
        src = ROOT / "autograder"
        for pattern in SANDBOX_MODULES:
            for py in sorted(src.glob(pattern)):
                rel = py.relative_to(src).with_suffix(".pyc")
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                py_compile.compile(str(py), cfile=str(dest / rel), dfile=f"<grader>/{rel.with_suffix('.py')}",
                                   doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        for d in [dest, *dest.rglob("*")]:
            os.chmod(d, 0o755 if d.is_dir() else 0o644)
        os.chmod(dest.parent, 0o755)
        return dest

    @staticmethod
    def _kernelspec(jupyter: Path) -> Path:
        """A ``python3`` kernelspec that starts the kernel through the launcher."""
        spec = jupyter / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "autograder.sandbox", "exec", "--", sys.executable, "-Xfrozen_modules=off",
                "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3 (sandboxed)",
                                                      "language": "python"}, indent=1))
        for d in (jupyter, jupyter / "kernels", spec):
            os.chmod(d, 0o755)
        os.chmod(jupyter.parent, 0o700)
        return jupyter

    def warm_numba(self, timeout: float = 600) -> None:
        """Compile librosa's numba functions once (in the sandbox, grader code only) into a cache that
        every run copies into its private /tmp: without it each run recompiles them (10-40 s)."""
        stamp = self.numba / ".warm"
        if stamp.is_file():
            return
        self.numba.mkdir(parents=True, exist_ok=True)
        code = "from genrekit.data import warm_up_librosa; warm_up_librosa()"
        cmd = self.command([sys.executable, "-c", code], writable=[], as_user=False,
                           extra=["--bind", str(self.numba), NUMBA_INSIDE])
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env())
        if res.returncode != 0:
            raise SandboxError(f"warming numba's cache in the sandbox failed: {res.stderr.strip()[-200:]}")
        stamp.write_text("ok\n")

    # --- command lines --------------------------------------------------------------------------

    def env(self, base: dict | None = None, *, jupyter: bool = False) -> dict:
        """The environment inside: nothing of the host's but what running Python needs."""
        from autograder.checks.common import JUDGED_BY_GRADER
        keep = ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS", "PYTHONWARNINGS", "OMP_WAIT_POLICY",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GENRE_QUICK", "NBGRADER_EXECUTION", "LANG", JUDGED_BY_GRADER)
        env = {k: v for k, v in (base or os.environ).items() if k in keep}
        env.update({"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
                    "HOME": "/tmp", "TMPDIR": "/tmp", "NUMBA_CACHE_DIR": NUMBA_INSIDE, "MPLCONFIGDIR": "/tmp/mpl",
                    "MPLBACKEND": "Agg", "IPYTHONDIR": "/tmp/ipython", "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config",
                    "JUPYTER_DATA_DIR": "/tmp/jupyter-data", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
                    "PYTHONDONTWRITEBYTECODE": "1",
                    # the sourceless grader first, then the toolkit from the bound genrekit/ (whatever
                    # path an editable install recorded: Gradescope's image has the project elsewhere)
                    "PYTHONPATH": os.pathsep.join([GRADER_LIB, str(ROOT)]), "LANG": env.get("LANG", "C.UTF-8")})
        if jupyter:
            env["JUPYTER_PATH"] = str(self.kernels)
        return env

    def _readable(self) -> list[Path]:
        prefixes = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix),
                    Path(os.path.realpath(sys.executable)).parents[1]}
        return sorted({p.resolve() for p in prefixes} | {ROOT / "genrekit"})

    def command(self, cmd: list[str], writable: list[Path], *, readable: list[Path] = (), as_user: bool = True,
                slot: int = 0, nbgrader: bool = False, extra: list[str] | None = None) -> list[str]:
        """The bwrap command line running ``cmd``: see the module docstring for what it sees."""
        lim = self.limits
        args = [self.bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session",
                "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for name in ("bin", "lib", "lib64", "sbin", "lib32"):
            target = Path("/") / name
            if target.is_symlink():
                args += ["--symlink", os.readlink(target), str(target)]
            elif target.is_dir():
                args += ["--ro-bind", str(target), str(target)]
        args += ["--dev", "/dev", "--proc", "/proc",
                 "--perms", "1777", "--size", str(lim.tmp_mb * 2**20), "--tmpfs", "/tmp",
                 "--perms", "1777", "--size", str(lim.tmp_mb * 2**20), "--tmpfs", "/dev/shm"]
        args += ["--perms", "0755", "--dir", "/opt"]
        made = {Path("/opt")}
        mounts = [(p, "--ro-bind") for p in [*self._readable(), *(Path(r).resolve() for r in readable)]] \
            + [(Path(w).resolve(), "--bind") for w in writable]
        for path, _ in mounts:
            for parent in _ancestors(path):
                if parent not in made and parent not in MOUNTED:
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
        for path, how in mounts:
            args += [how, str(path), str(path)]
        args += ["--ro-bind", str(self.lib.parent), GRADER_LIB]
        if self.numba.is_dir():
            args += ["--ro-bind", str(self.numba), NUMBA_WARM]
        if nbgrader:
            args += ["--ro-bind", str(self.kernels), str(self.kernels)]
        args += extra or []
        caps = ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL"]
        args += ["--cap-drop", "ALL"] + [x for c in caps for x in ("--cap-add", c)]
        args += ["--setenv", SPEC_ENV, json.dumps({"uid": UID_BASE + slot, "limits": asdict(lim)})]
        if as_user:
            args += ["--", sys.executable, "-m", "autograder.sandbox", "exec", "--"]
        else:
            args += ["--"]
        return args + list(cmd)

    # --- runners (the signature of autograder.course.run_limited) --------------------------------

    def acquire(self) -> int:
        with self._lock:
            return self._slots.pop(0)

    def release(self, slot: int) -> None:
        with self._lock:
            self._slots.append(slot)
            self._slots.sort()

    def runner(self, writable: list[Path], *, slot: int, readable: list[Path] = (), nbgrader: bool = False):
        """A function like :func:`autograder.course.run_limited` running its command in the sandbox:
        ``writable`` (bound read-write, its disk use watched) and ``readable`` are all it sees of the host."""
        from autograder.course import run_limited

        def run(cmd, cwd, env, timeout, **kwargs):
            inner = self.env(env, jupyter=nbgrader)
            full = self.command(list(cmd), writable, readable=readable, as_user=not nbgrader, slot=slot,
                                nbgrader=nbgrader, extra=["--chdir", str(Path(cwd).resolve())])
            return run_limited(full, cwd, inner, timeout, watchdog=self.disk_watch(writable), **kwargs)
        return run

    def disk_watch(self, folders: list[Path]):
        """A check the grader polls while a run goes on: the reason to stop it, or None."""
        limit = self.limits.disk_mb * 2**20

        def check():
            total = 0
            for folder in folders:
                for dirpath, _, files in os.walk(folder):
                    for name in files:
                        try:
                            total += os.lstat(os.path.join(dirpath, name)).st_size
                        except OSError:
                            pass
                    if total > limit:
                        return f"{self.limits.describe('disk')} exceeded"
            return None
        return check


# === the launcher: inside the sandbox, as root, just before the student's code ========================

def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def launch(cmd: list[str]) -> None:
    """Set the limits, become the run's own user, and execute ``cmd`` (never returns)."""
    spec = json.loads(os.environ.pop(SPEC_ENV))
    uid, lim = int(spec["uid"]), Limits(**spec["limits"])
    cmd = list(cmd)
    if "-f" in cmd and "ipykernel_launcher" in cmd:  # a kernel: its cwd is the notebook's folder
        _chown_tree(Path.cwd(), uid)
        i = cmd.index("-f") + 1
        own = Path("/tmp") / f"kernel-{os.getpid()}.json"
        own.write_bytes(Path(cmd[i]).read_bytes())
        os.chown(own, uid, uid)
        os.chmod(own, 0o600)
        cmd[i] = str(own)
    if Path(NUMBA_WARM).is_dir() and not Path(NUMBA_INSIDE).exists():
        shutil.copytree(NUMBA_WARM, NUMBA_INSIDE)
        _chown_tree(Path(NUMBA_INSIDE), uid)
    mb = 2**20
    resource.setrlimit(resource.RLIMIT_AS, (lim.memory_mb * mb, lim.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_mb * mb, lim.file_mb * mb))
    resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_s, lim.cpu_s))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    os.execvp(cmd[0], cmd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[:2] != ["exec", "--"]:
        print("usage: python -m autograder.sandbox exec -- CMD...", file=sys.stderr)
        return 2
    if SPEC_ENV not in os.environ:
        print(f"autograder.sandbox: {SPEC_ENV} is not set (this runs inside the grader's sandbox only)", file=sys.stderr)
        return 2
    launch(argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
