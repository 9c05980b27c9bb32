# End-to-end runs of the built `rdd` binary (CPU, tiny models): the trainer's pipeline, exact resume,
# SIGKILL safety and refusals of bad input. See tests/apps/e2e_trainer.sh.
foreach(_section pipeline resume kill errors)
  add_test(NAME apps_e2e_${_section}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_trainer.sh $<TARGET_FILE:rdd>
                   ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_${_section} ${_section})
  set_tests_properties(apps_e2e_${_section} PROPERTIES TIMEOUT 900)
endforeach()

# A run a user can trust with a week of GPU time (issue 16): signals, the run folder, data checked first,
# resume after moving the data, eval/predict/export from the weights' metadata, TensorBoard, diagnostics.
foreach(_section signal folder data moved metadata tensorboard list diagnostics)
  add_test(NAME apps_e2e_trust_${_section}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_trust.sh $<TARGET_FILE:rdd>
                   ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_trust_${_section} ${_section})
  set_tests_properties(apps_e2e_trust_${_section} PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
endforeach()

# `rdd bench --ops --layers`: the per-op table names the convolutions, the RDD loss stage and the optimizer;
# the per-layer table names layers by their parameter prefix.
add_test(NAME apps_bench_ops
         COMMAND $<TARGET_FILE:rdd> bench --model deeplabv3_resnet18 --width 0.125 --mode distill
                 --teacher deeplabv3_resnet18 --teacher-width 0.125 --crop 32x64 --batch 2 --iterations 2
                 --warmup 1 --device cpu --ops --layers --top 5)
set_tests_properties(apps_bench_ops PROPERTIES PASS_REGULAR_EXPRESSION
  "by op .*conv2d kxk forward .*batchnorm2d forward \\(eval\\).*loss: task CE \\+ TSE masks .*conv2d kxk backward .*optimizer: fused SGD .*outside ops.*by layer .*the 5 slowest.* [a-z]+\\.[a-z0-9._]+ (forward|backward) .*the other layers .*outside named layers")

# The emulated CUDA build (RDD_CUDA=EMULATE): the same tiny distillation, eval and predict on --device cpu
# and on the emulated --device cuda agree (tests/apps/e2e_emulated.sh states the tolerances).
if(RDD_CUDA_EMULATED)
  add_test(NAME apps_e2e_emulated_gpu
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_emulated.sh $<TARGET_FILE:rdd>
                   ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_emulated_gpu)
  set_tests_properties(apps_e2e_emulated_gpu PROPERTIES TIMEOUT 900)
  # Every layer family's GPU rows run on the emulated device, named as such; rdd info says what it is.
  add_test(NAME apps_selftest_emulated_gpu COMMAND $<TARGET_FILE:rdd> selftest)
  set_tests_properties(apps_selftest_emulated_gpu PROPERTIES PASS_REGULAR_EXPRESSION
    "bilinear resize up backward vs CPU +cuda:0 \\(emulated\\).*softmax_channels vs CPU +cuda:0 \\(emulated\\).*[0-9]+ passed, 0 failed"
    FAIL_REGULAR_EXPRESSION " FAIL")
  add_test(NAME apps_info_emulated_gpu COMMAND $<TARGET_FILE:rdd> info)
  set_tests_properties(apps_info_emulated_gpu PROPERTIES PASS_REGULAR_EXPRESSION
    "build: emulated CUDA.*no cuDNN.*cuda:0 \\(emulated\\)  rdd emulated CUDA device")
  # The comparison KD methods on the emulated device against the CPU, and their exact resume there.
  add_test(NAME apps_e2e_kd_methods_emulated_gpu
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_emulated_kd.sh $<TARGET_FILE:rdd>
                   ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_kd_methods_emulated_gpu)
  set_tests_properties(apps_e2e_kd_methods_emulated_gpu PROPERTIES TIMEOUT 900)
endif()

# Every comparison KD method trains alone and with RDD, logs its terms and their cost, and resumes exactly
# (tests/apps/e2e_kd_methods.sh).
add_test(NAME apps_e2e_kd_methods
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_kd_methods.sh $<TARGET_FILE:rdd>
                 ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_kd_methods)
set_tests_properties(apps_e2e_kd_methods PROPERTIES TIMEOUT 900)

# `rdd bench --ops` with the comparison methods: each term is a row of the per-op table.
add_test(NAME apps_bench_ops_kd_methods
         COMMAND $<TARGET_FILE:rdd> bench --model deeplabv3_resnet18 --width 0.125 --mode distill
                 --teacher deeplabv3_resnet18 --teacher-width 0.25 --crop 32x64 --batch 2 --iterations 1
                 --warmup 1 --device cpu --ops --at 1 --fitnet 1 --cwd-feature 1 --skd 1 --ifvd 1 --dsd 1 --dist 1
                 --cirkd 1 --cirkd-pixel-memory 64 --cirkd-region-memory 16)
set_tests_properties(apps_bench_ops_kd_methods PROPERTIES PASS_REGULAR_EXPRESSION
  "loss: CWD \\(feature\\) .*loss: AT .*loss: FitNet .*loss: SKD .*loss: IFVD .*loss: DSD \\(PSD \\+ CSD\\) .*loss: DIST .*loss: CIRKD \\(mini-batch \\+ memory\\) ")
# The adversarial term (its discriminator needs 64x64 logits: 512x512 crops) and its Adam are rows too.
add_test(NAME apps_bench_ops_adversarial
         COMMAND $<TARGET_FILE:rdd> bench --model deeplabv3_resnet18 --width 0.125 --mode distill
                 --teacher deeplabv3_resnet18 --teacher-width 0.125 --crop 512x512 --batch 2 --iterations 1
                 --warmup 1 --device cpu --ops --adv 0.001 --adv-width 8)
set_tests_properties(apps_bench_ops_adversarial PROPERTIES PASS_REGULAR_EXPRESSION
  "loss: adversarial \\(discriminator\\) .*optimizer: Adam \\(discriminator\\) ")
