# -*- Python -*-
# The gtest unit binaries (names ending in "Tests"), one lit test per case.

import os

import lit.formats

config.name = "Kiln-Unit"
config.test_format = lit.formats.GoogleTest(".", "Tests")
config.test_source_root = os.path.join(config.kiln_obj_root, "test", "unit")
config.test_exec_root = config.test_source_root
