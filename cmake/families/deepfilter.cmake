# Family "deepfilter": DfOp (six reference methods + fused) and the streaming deep filter.
# (The multi-frame modules are the separate family "multiframe".)
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/dfop.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/streaming_deep_filter.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/dfop.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/bench/dfop.cpp)
set(SEPMECH_TESTS_deepfilter tests/mechanisms/dfop_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES deepfilter)
set(SEPMECH_PARITY_GLOBS_deepfilter deepfilter/dfop_*.safetensors)
