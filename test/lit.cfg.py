# -*- Python -*-
# Kiln's lit suite: FileCheck tests of kiln-opt passes, the importer and the
# checker, plus the gtest unit binaries (GoogleTest format) under unit/.

import os

import lit.formats
from lit.llvm import llvm_config

config.name = "Kiln"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "test")
config.excludes = ["Inputs", "fixtures", "unit", "CMakeLists.txt",
                   "lit.cfg.py", "lit.site.cfg.py", "run_lit.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(
    ["kiln-opt", "kiln-import", "kiln-check", "kiln-kernelgen",
     "kiln-paged-check", "kiln-compile", "kiln-run", "kiln-perplexity", "kiln-tokenize", "kiln-agree", "kiln-bench", "kiln-serve-bench", "kiln-spec-bench"],
    [config.kiln_tools_dir])

config.substitutions.append(("%fixtures",
                             os.path.join(config.test_source_root, "fixtures")))
config.substitutions.append(("%python", config.python_executable))
# A CUDA driver (libcuda.so.1) on this machine: the CUDA device can open.
def _has_cuda_driver():
    import ctypes
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False
if _has_cuda_driver():
    config.available_features.add("cuda-driver")

if config.ptxas and os.path.exists(config.ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%{ptxas}", config.ptxas))
