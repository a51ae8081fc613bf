"""Build the Cython kernels.

Environment switches:
  LRPFAST_DEBUG=1       bounds and wraparound checks on, -O0 -g (debugging)
  LRPFAST_NO_OPENMP=1   build serially even where OpenMP works
  LRPFAST_NATIVE=1      add -march=native (faster, not portable; off by default)
  LRPFAST_NO_AVX2=1     skip the AVX2/FMA build of the kernels (x86-64)
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("LRPFAST_DEBUG", "") == "1"


def openmp_flags():
    """Return (compile, link) flags if a tiny ``#pragma omp`` program builds and runs."""
    if os.environ.get("LRPFAST_NO_OPENMP", "") == "1" or sys.platform == "win32":
        return [], []
    cc = os.environ.get("CC", "cc")
    src = textwrap.dedent("""\
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n == omp_get_max_threads() ? 0 : 1;
        }
        """)
    tmp = tempfile.mkdtemp()
    try:
        c = os.path.join(tmp, "omp_probe.c")
        exe = os.path.join(tmp, "omp_probe")
        with open(c, "w") as fh:
            fh.write(src)
        subprocess.run([cc, "-fopenmp", c, "-o", exe], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([exe], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return ["-fopenmp"], ["-fopenmp"]
    except (OSError, subprocess.CalledProcessError):
        warnings.warn("lrpfast: OpenMP not available; building the kernels serially "
                      "(prange runs on one thread).")
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compiler_accepts(flags):
    """True if the C compiler builds a trivial program with ``flags``."""
    cc = os.environ.get("CC", "cc")
    tmp = tempfile.mkdtemp()
    try:
        c = os.path.join(tmp, "probe.c")
        with open(c, "w") as fh:
            fh.write("int main(void) { return 0; }\n")
        subprocess.run([cc, *flags, c, "-o", os.path.join(tmp, "probe")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


omp_compile, omp_link = openmp_flags()
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
if os.environ.get("LRPFAST_NATIVE", "") == "1":
    compile_args.append("-march=native")



def kernel_extension(name, extra=()):
    return Extension(
        name,
        [name.replace(".", "/") + ".pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + omp_compile + list(extra),
        extra_link_args=omp_link,
    )


# The baseline build runs on any CPU of the platform.  On x86-64 the same
# source is built a second time for AVX2 + FMA; lrpfast/_dispatch.py imports
# it only where the CPU has both (LRPFAST_NO_AVX2=1 skips it).
extensions = [kernel_extension("lrpfast._kernels"), kernel_extension("lrpfast._flip")]
AVX2 = ["-mavx2", "-mfma"]
if (platform.machine().lower() in ("x86_64", "amd64")
        and os.environ.get("LRPFAST_NO_AVX2", "") != "1"
        and sys.platform != "win32" and compiler_accepts(AVX2)):
    extensions.append(kernel_extension("lrpfast._kernels_avx2", AVX2))

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
        },
    ),
)
