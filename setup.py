"""The C extension of the feature pass (app/pipeline/_native.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "app.pipeline._native",
            ["app/pipeline/_native.c"],
            # -ffp-contract=off: no fused multiply-adds, so sums round exactly as numpy's and scipy's.
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
