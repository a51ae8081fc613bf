"""Build the Cython kernels.

Environment switches:
  LRPFAST_DEBUG=1       bounds and wraparound checks on, -O0 -g (debugging)
  LRPFAST_NO_OPENMP=1   build serially even where OpenMP works
  LRPFAST_NATIVE=1      add -march=native (faster, not portable; off by default)
"""

import os
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


omp_compile, omp_link = openmp_flags()
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
if os.environ.get("LRPFAST_NATIVE", "") == "1":
    compile_args.append("-march=native")

extensions = [
    Extension(
        "lrpfast._kernels",
        ["lrpfast/_kernels.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + omp_compile,
        extra_link_args=omp_link,
    )
]

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
