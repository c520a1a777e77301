# OSA_RES_eSE (VoVNetV2 block, stage, backbone): library sources, tests, parity suite.
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/osa.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/osa.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/bench/osa.cpp)
set(SEPMECH_TESTS_osa tests/mechanisms/osa_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES osa)
set(SEPMECH_PARITY_GLOBS_osa osa/*.safetensors)
