# Golden train-step cases: scripts/make_golden_train_steps.py (a PyTorch transcription of the reference
# training loop) writes 6-step cases into the build tree — DeepLabV3-R18 and -MBv2 students; RDD across
# the TFE → TSE switch, KD on and off, the baseline loop — and, for three of them, copies whose expected
# values come from deliberately wrong loops. `rdd selftest --golden` runs the cases (CPU, and the GPU when
# present: the emulated one in an emulated build); every perturbed copy must fail by 8× its limit or more.
set(RDD_GOLDEN_TRAIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/golden_train_steps)
add_test(NAME train_golden_steps_generate
         COMMAND ${RDD_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/make_golden_train_steps.py ${RDD_GOLDEN_TRAIN_DIR}
                 --perturb all --perturb-cases r18_rdd_switch_kd,mbv2_rdd_switch_kd,r18_baseline)
set_tests_properties(train_golden_steps_generate PROPERTIES FIXTURES_SETUP train_golden_steps TIMEOUT 1500)
add_test(NAME train_golden_steps COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_TRAIN_DIR})
set_tests_properties(train_golden_steps PROPERTIES FIXTURES_REQUIRED train_golden_steps TIMEOUT 1500)
add_test(NAME train_golden_steps_perturbed_fail
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/train/golden_perturbed.sh $<TARGET_FILE:rdd>
                 ${RDD_GOLDEN_TRAIN_DIR}/perturbed 8)
set_tests_properties(train_golden_steps_perturbed_fail PROPERTIES FIXTURES_REQUIRED train_golden_steps TIMEOUT 900)
if(RDD_CUDA_EMULATED)
  # The six training steps on the emulated device too (scripts/test.sh's emulated pass runs *_emulated_gpu).
  add_test(NAME train_golden_steps_emulated_gpu COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_TRAIN_DIR})
  set_tests_properties(train_golden_steps_emulated_gpu PROPERTIES FIXTURES_REQUIRED train_golden_steps TIMEOUT 1500)
endif()

# scripts/study_summary.py (the end of scripts/study.sh) on a made-up study: mean ± sample std, paired
# differences, study.json and the bar chart.
add_test(NAME train_study_summary
         COMMAND ${RDD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/check_study_summary.py
                 ${CMAKE_CURRENT_BINARY_DIR}/study_summary_check)
