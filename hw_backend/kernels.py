"""tierbed's built-in chip kernels for the hw backend: compiled at run time, cached per user.

The conformance cases name chip kernels (``rt.kernel("add")``); on the real runtime a chip kernel is
a ``ChipCallable``: an orchestration shared object plus one in-core kernel per ``func_id``, wrapped
as upstream documents in ``docs/user/how-to/write-and-run-a-kernel.md``, "Option B — the ``Worker``
API directly" (compile with ``simpler_setup.kernel_compiler.KernelCompiler``, wrap with
``CoreCallable.build`` / ``ChipCallable.build``, register before ``init()``). The sources are
tierbed's own, in ``hw_backend/kernel_src/``: scalar C++ elementwise kernels over the runtime's
``ChipTensor`` descriptors, with one orchestration shared by all of them.

Platforms: the CPU simulation platforms (``a2a3sim``, ``a5sim``), where an in-core kernel is a
host shared object exporting ``kernel_entry``. The orchestration goes through upstream's
``KernelCompiler.compile_orchestration`` (its include paths and runtime sources are upstream's
business); the in-core kernel is compiled here with upstream's simulation-kernel flags, by the
compiler upstream names for them when it is installed, else by the host C++ compiler -- the
sources need no more than C++17, while upstream's named compiler is a newer GCC that the
PTO-ISA tile headers (not used here) require. Real ``a2a3`` / ``a5`` are not built: they need
the vendor toolchain and kernels written and validated against it (:class:`KernelToolchainMissing`
says which).

Artefacts are cached under :func:`cache_root`, keyed by the sources' digest, the runtime version
and headers, the platform and the compilers' identities, so the many processes of a conformance
run compile once (a file lock serialises the first build; the entry appears by an atomic rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The runtime the orchestration is compiled against; chip Workers must run on the same one.
RUNTIME = "tensormap_and_ringbuffer"
SIM_PLATFORMS = ("a2a3sim", "a5sim")
REAL_PLATFORMS = ("a2a3", "a5")
SOURCE_DIR = Path(__file__).resolve().parent / "kernel_src"

#: Bumped when the layout of a cache entry or the way callables are assembled changes.
_SCHEMA = 1
_ORCH_SOURCE = "binary_orch.cpp"
_ORCH_FUNC = "tierbed_binary_orchestration"
_ORCH_CONFIG = "tierbed_binary_orchestration_config"
_TAIL_LINES = 15
_TAIL_CHARS = 1500


@dataclass(frozen=True)
class KernelSpec:
    """One built-in kernel: its name, in-core source and tensor signature (``ArgDirection`` names,
    the same directions as the reference kernel of that name)."""

    name: str
    source: str
    signature: tuple[str, ...]


KERNELS: tuple[KernelSpec, ...] = (
    KernelSpec("add", "add.cpp", ("IN", "IN", "OUT")),
    KernelSpec("mul", "mul.cpp", ("IN", "IN", "OUT")),
)


class KernelBuildError(Exception):
    """The built-in kernels could not be built; ``str()`` is the reason a case reports."""

    def __init__(self, message: str, *, platform: str, kernel: str | None = None, compiler_output: str = "") -> None:
        super().__init__(message)
        self.platform = platform
        self.kernel = kernel
        self.compiler_output = compiler_output


class KernelToolchainMissing(KernelBuildError):
    """No toolchain that can build the kernels for this platform (or no runtime to build against)."""


class KernelCompileError(KernelBuildError):
    """A compiler ran and rejected a source; names the kernel and carries the compiler's message."""


@dataclass(frozen=True)
class KernelBuild:
    """A cache entry: the compiled artefacts of every built-in kernel for one platform."""

    platform: str
    runtime: str
    key: str
    directory: Path
    orchestration: Path
    incores: dict[str, Path] = field(default_factory=dict)
    compiled: bool = False  # True when this call compiled (a cache miss)


_COMPILES = 0


def compile_count() -> int:
    """How many times this process compiled (or tried to compile) the kernels: its cache misses."""
    return _COMPILES


def cache_root() -> Path:
    """Where builds are cached: ``TIERBED_HW_KERNEL_CACHE``, else the user's cache directory."""
    explicit = os.environ.get("TIERBED_HW_KERNEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tierbed" / "hw-kernels"


def kernel_map(platform: str, *, cache_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, Any]:
    """``{name: ChipCallable}`` of every built-in kernel for ``platform`` (built or taken from the cache).

    Raises :class:`KernelBuildError` (:class:`KernelToolchainMissing` / :class:`KernelCompileError`)
    when the kernels cannot be built.
    """
    return chip_callables(build_kernels(platform, cache_dir=cache_dir, source_dir=source_dir))


def chip_callables(build: KernelBuild) -> dict[str, Any]:
    """Wrap a build's artefacts as the runtime's callables: the orchestration with the kernel as its
    only child, ``func_id`` 0 (the id ``binary_orch.cpp`` submits)."""
    from simpler.task_interface import ArgDirection, ChipCallable, CoreCallable

    orch = build.orchestration.read_bytes()
    out: dict[str, Any] = {}
    for spec in KERNELS:
        sig = [getattr(ArgDirection, d) for d in spec.signature]
        core = CoreCallable.build(signature=sig, binary=build.incores[spec.name].read_bytes())
        out[spec.name] = ChipCallable.build(signature=sig, func_name=_ORCH_FUNC, binary=orch,
                                            children=[(0, core)], config_name=_ORCH_CONFIG)
    return out


def build_kernels(platform: str, *, cache_dir: Path | None = None, source_dir: Path | None = None) -> KernelBuild:
    """The cache entry for ``platform``, compiling it first when absent."""
    src = Path(source_dir) if source_dir is not None else SOURCE_DIR
    kc = _compiler(platform)
    cxx = _incore_compiler(kc, platform)
    flags = list(kc.gxx15.get_compile_flags(core_type="aiv"))
    key = _cache_key(platform, kc, cxx, flags, src)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    entry = root / f"{platform}-{key}"
    if (entry / "manifest.json").is_file():
        return _load(platform, key, entry, compiled=False)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{entry.name}.lock"):
        if (entry / "manifest.json").is_file():  # another process built it while this one waited
            return _load(platform, key, entry, compiled=False)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
        try:
            _compile_all(platform, kc, cxx, flags, src, staging)
            (staging / "manifest.json").write_text(json.dumps(
                {"schema": _SCHEMA, "platform": platform, "runtime": RUNTIME, "key": key,
                 "kernels": {s.name: list(s.signature) for s in KERNELS}}, indent=1))
            if entry.exists():  # an entry without its manifest is unfinished or damaged: replace it
                shutil.rmtree(entry)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _load(platform, key, entry, compiled=True)


# ---------------------------------------------------------------------------------------------- helpers


def _compiler(platform: str) -> Any:
    """Upstream's ``KernelCompiler`` for a simulation platform; a reason for anything else."""
    if platform in REAL_PLATFORMS:
        home = os.environ.get("ASCEND_HOME_PATH")
        found = f"the vendor toolchain is set up (ASCEND_HOME_PATH={home})" if home else \
            "the vendor toolchain is not set up (ASCEND_HOME_PATH is unset)"
        raise KernelToolchainMissing(
            f"tierbed's built-in chip kernels are built for the simulation platforms {', '.join(SIM_PLATFORMS)} "
            f"only; on real {platform} chip kernels need the vendor compiler (ccec) and kernels written and "
            f"validated against it, and {found}; give a kernel map (HwAPI(kernels=...) or TIERBED_HW_KERNELS)",
            platform=platform)
    if platform not in SIM_PLATFORMS:
        raise KernelToolchainMissing(f"no built-in chip kernels for unknown platform {platform!r}", platform=platform)
    try:
        from simpler_setup.kernel_compiler import KernelCompiler
    except ImportError as exc:
        raise KernelToolchainMissing(f"the runtime's kernel compiler (simpler_setup) is not importable: {exc}",
                                     platform=platform) from exc
    return KernelCompiler(platform=platform)


def _incore_compiler(kc: Any, platform: str) -> str:
    """``TIERBED_HW_CXX``, else the compiler upstream names for simulation kernels, else the host one."""
    for cxx in (os.environ.get("TIERBED_HW_CXX"), kc.gxx15.cxx_path, kc.host_gxx.cxx_path):
        if cxx and shutil.which(cxx):
            return cxx
    raise KernelToolchainMissing(
        f"no C++ compiler for the {platform} chip kernels: none of {kc.gxx15.cxx_path!r}, {kc.host_gxx.cxx_path!r} "
        "is on PATH (set TIERBED_HW_CXX to choose one)", platform=platform)


def _identity(cxx: str) -> str:
    try:
        res = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False)
        return f"{os.path.basename(cxx)}: {res.stdout.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{os.path.basename(cxx)}: {type(exc).__name__}"


def _digest_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _cache_key(platform: str, kc: Any, cxx: str, flags: list[str], src: Path) -> str:
    """What decides the artefacts' bytes: our sources, the runtime (version and the headers the
    sources compile against, since one version string spans many commits), the compilers and flags."""
    sources = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in (".cpp", ".h"))
    headers = sorted(p for d in kc.get_orchestration_include_dirs(RUNTIME) if Path(d).is_dir()
                     for p in Path(d).iterdir() if p.suffix == ".h" and p.is_file())
    try:
        version = importlib.metadata.version("simpler")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    token = {"schema": _SCHEMA, "platform": platform, "runtime": RUNTIME, "simpler": version,
             "sources": _digest_files(sources), "headers": _digest_files(headers),
             "incore": {"compiler": _identity(cxx), "flags": flags},
             "upstream": kc.compile_cache_token(RUNTIME, ["aiv"])}
    return hashlib.sha256(json.dumps(token, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _tail(text: str) -> str:
    """The compiler's first error line (usually the cause) and the last lines of its output."""
    lines = text.strip().splitlines()
    first = next((ln for ln in lines if "error" in ln.lower()), None)
    tail = lines[-_TAIL_LINES:]
    head = [first, "..."] if first is not None and first not in tail else []
    return "\n".join([*head, *tail])[-_TAIL_CHARS:]


def _compile_all(platform: str, kc: Any, cxx: str, flags: list[str], src: Path, out: Path) -> None:
    global _COMPILES
    _COMPILES += 1
    names = ", ".join(s.name for s in KERNELS)
    try:
        orch = kc.compile_orchestration(runtime_name=RUNTIME, source_path=str(src / _ORCH_SOURCE),
                                        extra_include_dirs=[str(src)], build_dir=str(out))
    except (RuntimeError, FileNotFoundError) as exc:
        # upstream reports a missing compiler as a RuntimeError carrying only its hint
        kind = KernelCompileError if "compilation failed" in str(exc) else KernelToolchainMissing
        raise kind(f"chip kernel orchestration ({_ORCH_SOURCE}, shared by {names}) for {platform} did not build:\n"
                   f"{_tail(str(exc))}", platform=platform, kernel="orchestration", compiler_output=str(exc)) from exc
    for p in out.iterdir():  # upstream leaves its temporary output in build_dir
        p.unlink()
    (out / "orchestration.so").write_bytes(orch)
    includes = [*kc.get_incore_include_dirs(), *kc.get_orchestration_include_dirs(RUNTIME), str(src)]
    for spec in KERNELS:
        target = out / f"{spec.name}.so"
        cmd = [cxx, *flags, *(f"-I{d}" for d in includes), "-o", str(target), str(src / spec.source)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise KernelToolchainMissing(f"chip kernel {spec.name!r} for {platform}: cannot run {cxx}: {exc}",
                                         platform=platform, kernel=spec.name) from exc
        if res.returncode != 0 or not target.is_file():
            msg = res.stderr or res.stdout
            raise KernelCompileError(f"chip kernel {spec.name!r} ({spec.source}) for {platform} did not compile "
                                     f"({os.path.basename(cxx)} exit {res.returncode}):\n{_tail(msg)}",
                                     platform=platform, kernel=spec.name, compiler_output=msg)


def _load(platform: str, key: str, entry: Path, *, compiled: bool) -> KernelBuild:
    return KernelBuild(platform, RUNTIME, key, entry, entry / "orchestration.so",
                       {s.name: entry / f"{s.name}.so" for s in KERNELS}, compiled)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

