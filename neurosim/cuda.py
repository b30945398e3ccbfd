"""CUDA set-up for the ``cuda_standalone`` device (brian2cuda).

brian2cuda generates and compiles its code without a GPU if it is told the GPU's compute
capability instead of asking ``nvidia-smi`` (DESIGN.md §3, "Without a GPU"). This module finds
the CUDA toolkit (``nvcc``) and the cuRAND headers and library (the ``nvidia-curand`` wheel),
detects whether a GPU is present, and sets the Brian2 preferences that make the build work.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from neurosim import build_cache
from neurosim.errors import NeurosimError

__all__ = [
    "cache_dir",
    "configure_cuda_prefs",
    "cuda_toolkit_path",
    "curand_library",
    "curand_paths",
    "gpu_present",
]

#: C++ standard for nvcc and the host compiler: CUDA 13's Thrust refuses C++11.
CXX_STD = "-std=c++17"


def cache_dir() -> Path:
    """The user cache folder of neurosim, the parent of the build cache."""
    return build_cache.cache_root().parent


def _has_nvcc(root: Path) -> bool:
    return (root / "bin" / "nvcc").is_file()


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def cuda_toolkit_path() -> Path:
    """Return the CUDA toolkit folder (the one holding ``bin/nvcc`` and ``include/``).

    Looks at ``$CUDA_PATH`` and ``$CUDA_HOME``, then the ``nvcc`` on ``PATH``, then
    ``/usr/local/cuda``, ``/usr/local/cuda-*`` (newest first) and ``/opt/cuda``. An ``nvcc`` on
    ``PATH`` that is a wrapper script outside a toolkit (no ``include/cuda_runtime.h`` beside it)
    is used only if no full toolkit is found.
    """
    for var in ("CUDA_PATH", "CUDA_HOME"):
        value = os.environ.get(var)
        if value and _has_nvcc(Path(value).expanduser()):
            return Path(value).expanduser()
    wrapper_root = None
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        root = Path(nvcc).resolve().parent.parent
        if (root / "include" / "cuda_runtime.h").is_file():
            return root
        wrapper_root = root
    candidates = [Path("/usr/local/cuda")]
    candidates += sorted(Path("/usr/local").glob("cuda-*"), key=_version_key, reverse=True)
    candidates.append(Path("/opt/cuda"))
    for root in candidates:
        if _has_nvcc(root):
            return root
    if wrapper_root is not None and _has_nvcc(wrapper_root):
        return wrapper_root
    raise NeurosimError(
        "The CUDA compiler nvcc was not found: install the CUDA toolkit or set CUDA_PATH to it."
    )


def _curand_files() -> tuple[Path, Path] | None:
    """Return (curand.h, libcurand.so*) from the nvidia-curand wheel, or None."""
    try:
        dist = metadata.distribution("nvidia-curand")
    except metadata.PackageNotFoundError:
        return None
    header = library = None
    for file in dist.files or ():
        name = file.name
        if name == "curand.h" and header is None:
            header = Path(str(dist.locate_file(file)))
        elif name.startswith("libcurand.so") and library is None:
            library = Path(str(dist.locate_file(file)))
    if header is None or library is None or not header.is_file() or not library.is_file():
        return None
    return header, library


def curand_library() -> Path:
    """Return the cuRAND shared library file shipped by ``nvidia-curand`` (``libcurand.so.10``)."""
    files = _curand_files()
    if files is None:
        raise NeurosimError(
            "The cuRAND library was not found: install it with 'pip install nvidia-curand'."
        )
    return files[1]


def curand_paths() -> tuple[Path, Path]:
    """Return (include folder with ``curand.h``, folder with a ``libcurand.so`` link).

    The ``nvidia-curand`` wheel ships only ``libcurand.so.10``; the linker's ``-lcurand`` needs
    ``libcurand.so``, so a link to the library is made in ``<cache_dir()>/cuda-lib/``.
    """
    files = _curand_files()
    if files is None:
        raise NeurosimError(
            "The cuRAND library was not found: install it with 'pip install nvidia-curand'."
        )
    header, library = files
    if library.name == "libcurand.so":
        return header.parent, library.parent
    link_dir = cache_dir() / "cuda-lib"
    link = link_dir / "libcurand.so"
    target = library.resolve()
    try:
        if not (link.is_symlink() and link.resolve() == target):
            link_dir.mkdir(parents=True, exist_ok=True)
            tmp = link_dir / f".libcurand.so.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            tmp.replace(link)  # atomic: concurrent callers never see a missing link
    except OSError as exc:
        raise NeurosimError(
            f"Could not create the link {link} to the cuRAND library ({exc.strerror}): "
            "set NEUROSIM_CACHE to a writable folder."
        ) from exc
    return header.parent, link_dir


def gpu_present() -> bool:
    """Return True only if a usable NVIDIA GPU is present; fast, never raises.

    Asks ``nvidia-smi -L`` when it exists (a GPU line must be listed), otherwise looks for
    ``/dev/nvidia<N>``. ``CUDA_VISIBLE_DEVICES`` set to an empty value or ``-1`` hides all GPUs.
    """
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return False
        smi = shutil.which("nvidia-smi")
        if smi is not None:
            try:
                out = subprocess.run(
                    [smi, "-L"], capture_output=True, text=True, timeout=10, check=False
                )
            except (OSError, subprocess.SubprocessError):
                return False
            return out.returncode == 0 and any(
                line.startswith("GPU ") for line in out.stdout.splitlines()
            )
        return any(re.fullmatch(r"nvidia\d+", p.name) for p in Path("/dev").glob("nvidia*"))
    except Exception:  # detection must never fail
        return False


def _with_flag(flags: list[str], flag: str, replace_prefix: str | None = None) -> list[str]:
    """Return ``flags`` with ``flag`` once, without other flags starting with ``replace_prefix``."""
    kept = [f for f in flags if f != flag and not (replace_prefix and f.startswith(replace_prefix))]
    return [*kept, flag]


def _with_dir(dirs: list[str], path: Path) -> list[str]:
    return dirs if str(path) in dirs else [*dirs, str(path)]


def configure_cuda_prefs(compute_capability: float = 9.0) -> None:
    """Set the Brian2 preferences that let ``cuda_standalone`` generate, compile and run.

    Finds ``nvcc`` and cuRAND, adds their folders and ``-std=c++17`` to the compiler flags, an
    rpath to the cuRAND library, and, when no GPU is present, turns GPU detection off and
    compiles for ``compute_capability`` (9.0: H100/H200). When a GPU is present brian2cuda
    detects it and its compute capability. Safe to call repeatedly (no flag is added twice).
    """
    import brian2cuda  # noqa: F401 - registers the cuda_standalone device and its preferences
    from brian2 import prefs
    from brian2cuda.utils import gputools

    backend = prefs.devices.cuda_standalone.cuda_backend
    root = str(cuda_toolkit_path())
    if backend.cuda_path != root:
        backend.cuda_path = root
        gputools.reset_cuda_installation()  # brian2cuda caches the toolkit it detected

    include_dir, link_dir = curand_paths()
    runtime_dir = curand_library().resolve().parent

    nvcc_flags = list(backend.extra_compile_args_nvcc)
    nvcc_flags = _with_flag(nvcc_flags, f"-I{include_dir}")
    # The makefile template already passes -std=c++11 first; nvcc keeps the last -std.
    nvcc_flags = _with_flag(nvcc_flags, CXX_STD, replace_prefix="-std=")
    backend.extra_compile_args_nvcc = nvcc_flags

    gcc_flags = list(prefs.codegen.cpp.extra_compile_args_gcc)
    prefs.codegen.cpp.extra_compile_args_gcc = _with_flag(gcc_flags, CXX_STD, "-std=")
    prefs.codegen.cpp.include_dirs = _with_dir(list(prefs.codegen.cpp.include_dirs), include_dir)
    prefs.codegen.cpp.library_dirs = _with_dir(list(prefs.codegen.cpp.library_dirs), link_dir)
    prefs.codegen.cpp.runtime_library_dirs = _with_dir(
        list(prefs.codegen.cpp.runtime_library_dirs), runtime_dir
    )

    # Brian2's default `make -j` starts one nvcc per source file at once; bound it.
    if list(prefs.devices.cpp_standalone.extra_make_args_unix) == ["-j"]:
        prefs.devices.cpp_standalone.extra_make_args_unix = [
            "-j",
            str(os.cpu_count() or 1),
        ]

    if gpu_present():
        backend.detect_gpus = True
        backend.compute_capability = None
    else:
        backend.detect_gpus = False
        backend.gpu_id = 0
        backend.compute_capability = float(compute_capability)
    gputools.reset_gpu_selection()  # brian2cuda caches the GPU it selected
