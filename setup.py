"""setup.py: the Python package attn (python/attn), `pip install .` from here.

The extension attn._attn (python/attn/_attn.c, CPython C API and the buffer
protocol) is linked with libattn.a, which this script builds with the
project's own Makefile (`make BUILD=... libattn.a`: the same flags, kernels
and run-time CPU dispatch as the C library and the CLI), so an installed
package needs no libattn.so at run time. numpy is the only run-time
dependency; PyTorch is optional (attn.torch). docs/python.md has the design.

Environment: ATTN_BUILD (the Makefile's build directory, default "build",
which an earlier `make` may already have filled), ATTN_MAKE_JOBS (default 2),
ATTN_OPENMP=0 (a build without OpenMP).
"""
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def version():
    with open(os.path.join(ROOT, "include", "attn", "info.h")) as f:
        for line in f:
            if line.startswith("#define ATTN_VERSION_STRING"):
                return line.split('"')[1]
    raise RuntimeError("include/attn/info.h: no ATTN_VERSION_STRING")


class BuildWithMake(build_ext):
    """Builds libattn.a with make, then the extension against it."""

    def run(self):
        build = os.environ.get("ATTN_BUILD", "build")
        jobs = os.environ.get("ATTN_MAKE_JOBS", "2")
        opts = [f"BUILD={build}"]
        if os.environ.get("ATTN_OPENMP") == "0":
            opts.append("OPENMP=0")
        subprocess.check_call(["make", "-C", ROOT, f"-j{jobs}"] + opts + [f"{build}/libattn.a"])
        ldlibs = subprocess.check_output(["make", "-s", "--no-print-directory", "-C", ROOT] + opts +
                                         ["print-ldlibs"], text=True).split()
        archive = os.path.join(ROOT, build, "libattn.a")
        for ext in self.extensions:
            ext.extra_objects = [archive]
            ext.extra_link_args = ldlibs
        super().run()


setup(
    name="attn",
    version=version(),
    description="Neural attention mechanisms (forward and backward) from the attn C library",
    license="see the repository",
    packages=["attn"],
    package_dir={"": "python"},
    ext_modules=[
        Extension(
            "attn._attn",
            sources=["python/attn/_attn.c"],
            include_dirs=[os.path.join(ROOT, "include")],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
        )
    ],
    cmdclass={"build_ext": BuildWithMake},
    install_requires=["numpy"],
    python_requires=">=3.8",
    zip_safe=False,
)
