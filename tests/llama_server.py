"""Run llama-cpp-python's OpenAI-compatible server, for the real-model tests.

``python tests/llama_server.py --model X.gguf --host 127.0.0.1 --port N ...`` takes the
same arguments as ``python -m llama_cpp.server``, with one change: weights are not
repacked into "extra buffer types".  A llama.cpp built with ``GGML_NATIVE`` on a CPU
that advertises AMX uses AMX tiles for repacked weights; where the kernel or the
hypervisor does not grant AMX state (these CI machines), the first token dies with a
general protection fault in ``ldtilecfg``.  Plain CPU buffers avoid that path.
"""

from __future__ import annotations

import runpy

import llama_cpp.llama_cpp as low

_default_params = low.llama_model_default_params


def _params():  # type: ignore[no-untyped-def]
    params = _default_params()
    params.use_extra_bufts = False
    return params


if __name__ == "__main__":
    low.llama_model_default_params = _params
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
