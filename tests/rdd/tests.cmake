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
