# Score-based diffusion (SGMSE family): SDEs, training step, samplers, spectrogram transform.
list(APPEND SEPMECH_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/src/diffusion/random.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/diffusion/sde.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/diffusion/analytic.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/diffusion/training.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/diffusion/sampling.cpp)
list(APPEND SEPMECH_DEVTOOLS_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/parity/diffusion.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/devtools/bench/diffusion.cpp)
set(SEPMECH_TESTS_diffusion tests/mechanisms/diffusion_test.cpp)
list(APPEND SEPMECH_PARITY_SUITES diffusion)
set(SEPMECH_PARITY_GLOBS_diffusion diffusion/*.safetensors)
