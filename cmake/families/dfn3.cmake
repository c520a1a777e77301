# Family "dfn3": DeepFilterNet3 (spec: docs/spec/deepfilternet3.md) — configuration and config.ini
# parsing, the libDF front end (ERB bands, feature normalisations), the network under the
# reference's state_dict names, the offline forward/enhance and the frame-by-frame stream.
# The DF stage runs on DfOp's fused deep filter, so the family needs "deepfilter" in the build.
if(NOT "deepfilter" IN_LIST SEPMECH_FAMILIES)
  message(FATAL_ERROR "family dfn3 needs family deepfilter (-DSEPMECH_FAMILIES=\"deepfilter;dfn3\")")
endif()
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dfn3/config.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dfn3/features.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dfn3/network.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dfn3/stream.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/dfn3.cpp)
set(SEPMECH_TESTS_dfn3 tests/mechanisms/dfn3_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES dfn3)
set(SEPMECH_PARITY_GLOBS_dfn3 dfn3/*.safetensors)
