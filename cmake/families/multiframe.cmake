# The multi-frame filter family of DeepFilterNet (DF, DFreal, CRM, MfWf, MfMvdr, 2022 variants).
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/multiframe.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/kernels/multiframe_solver.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/multiframe.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/bench/multiframe.cpp)
set(SEPMECH_TESTS_multiframe tests/mechanisms/multiframe_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES multiframe)
set(SEPMECH_PARITY_GLOBS_multiframe deepfilter/mf_*.safetensors deepfilter/old_*.safetensors)
