# Speech-quality metrics (STOI, ESTOI, SI-SDR, SNR; spec: ../shared/spec/metrics.md). The metrics
# themselves live in the audio layer (src/audio/metrics.cpp, core sources, tests in
# tests/audio/metrics_test.cpp); this family adds the parity adapter and the pystoi golden files.
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/metrics.cpp)
set(SEPMECH_TESTS_metrics)
list(APPEND SEPMECH_PARITY_SUITES metrics)
set(SEPMECH_PARITY_GLOBS_metrics metrics/*.safetensors)
