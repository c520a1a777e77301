# TAC (Transform-Average-Concatenate, FaSNet-TAC): module, parity adapter, bench workloads.
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/tac.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/tac.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/bench/tac.cpp)
set(SEPMECH_TESTS_tac tests/mechanisms/tac_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES tac)
set(SEPMECH_PARITY_GLOBS_tac tac/*.safetensors)
