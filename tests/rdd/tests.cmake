# Golden loss cases: scripts/make_golden_losses.py (a PyTorch transcription of the released RDD loss code)
# writes them into the build tree; `rdd selftest --golden` runs them (CPU, and the GPU when present).
set(RDD_GOLDEN_LOSS_DIR ${CMAKE_CURRENT_BINARY_DIR}/golden_losses)
add_test(NAME rdd_golden_losses_generate
         COMMAND ${RDD_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/make_golden_losses.py ${RDD_GOLDEN_LOSS_DIR})
set_tests_properties(rdd_golden_losses_generate PROPERTIES FIXTURES_SETUP rdd_golden_losses)
add_test(NAME rdd_golden_losses COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_LOSS_DIR})
set_tests_properties(rdd_golden_losses PROPERTIES FIXTURES_REQUIRED rdd_golden_losses)
# The runner must fail (exit non-zero) when outputs miss the tolerance: f32 results cannot meet 1e-12
# (with the envelope rule off).
add_test(NAME rdd_golden_losses_strict_rtol_fails
         COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_LOSS_DIR} --rtol 1e-12 --envelope-factor 0)
set_tests_properties(rdd_golden_losses_strict_rtol_fails PROPERTIES FIXTURES_REQUIRED rdd_golden_losses WILL_FAIL TRUE)

# Golden cases of the comparison KD methods (kind=kd_term): scripts/make_golden_kd.py (a PyTorch transcription
# of the CIRKD / RDD release's losses/ and DIST's) writes them; `rdd selftest --golden` runs them on the CPU,
# and on the GPU when present (the emulated device in an RDD_CUDA=EMULATE build).
set(RDD_GOLDEN_KD_DIR ${CMAKE_CURRENT_BINARY_DIR}/golden_kd)
add_test(NAME rdd_golden_kd_generate
         COMMAND ${RDD_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/make_golden_kd.py ${RDD_GOLDEN_KD_DIR})
set_tests_properties(rdd_golden_kd_generate PROPERTIES FIXTURES_SETUP rdd_golden_kd)
add_test(NAME rdd_golden_kd COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_KD_DIR})
set_tests_properties(rdd_golden_kd PROPERTIES FIXTURES_REQUIRED rdd_golden_kd)
add_test(NAME rdd_golden_kd_strict_rtol_fails COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_KD_DIR} --rtol 1e-12)
set_tests_properties(rdd_golden_kd_strict_rtol_fails PROPERTIES FIXTURES_REQUIRED rdd_golden_kd WILL_FAIL TRUE)
if(RDD_CUDA_EMULATED)
  # The same cases on the emulated device (scripts/test.sh's emulated pass runs *_emulated_gpu entries).
  add_test(NAME rdd_golden_losses_emulated_gpu COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_LOSS_DIR})
  set_tests_properties(rdd_golden_losses_emulated_gpu PROPERTIES FIXTURES_REQUIRED rdd_golden_losses TIMEOUT 1500)
  add_test(NAME rdd_golden_kd_emulated_gpu COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_KD_DIR})
  set_tests_properties(rdd_golden_kd_emulated_gpu PROPERTIES FIXTURES_REQUIRED rdd_golden_kd TIMEOUT 1500)
endif()
