# Golden model cases: scripts/make_golden_models.py (the PyTorch transcription in scripts/torch_models.py)
# writes every registered architecture in eval and train mode (width 1/8, 2×3×40×48) into the build
# tree; `rdd selftest --golden` runs them (CPU, and the GPU when present) and so does test_models.
set(RDD_GOLDEN_MODEL_DIR ${CMAKE_CURRENT_BINARY_DIR}/golden_models)
add_test(NAME models_golden_generate
         COMMAND ${RDD_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/make_golden_models.py ${RDD_GOLDEN_MODEL_DIR})
set_tests_properties(models_golden_generate PROPERTIES FIXTURES_SETUP models_golden)
add_test(NAME models_golden COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_MODEL_DIR})
set_tests_properties(models_golden PROPERTIES FIXTURES_REQUIRED models_golden)
# The runner must fail when outputs miss the tolerance (f32 cannot meet 1e-12 with the envelope rule off).
add_test(NAME models_golden_strict_rtol_fails
         COMMAND $<TARGET_FILE:rdd> selftest --golden ${RDD_GOLDEN_MODEL_DIR}/psp_resnet18_w0.125_train.safetensors
                 --rtol 1e-12 --envelope-factor 0)
set_tests_properties(models_golden_strict_rtol_fails PROPERTIES FIXTURES_REQUIRED models_golden WILL_FAIL TRUE)
# test_models reads the same cases instead of generating its own.
set_tests_properties(models_cpu models_gpu PROPERTIES FIXTURES_REQUIRED models_golden
                     ENVIRONMENT RDD_MODELS_GOLDEN_DIR=${RDD_GOLDEN_MODEL_DIR})

# `rdd info --model`: the FLOPs the issue names (dilation-correct conv multiply-adds × 2, aux head included).
add_test(NAME models_info_r18 COMMAND $<TARGET_FILE:rdd> info --model deeplabv3_resnet18 --input 512x1024)
set_tests_properties(models_info_r18 PROPERTIES PASS_REGULAR_EXPRESSION
                     "parameters: 13,607,974.*= 258.75 GFLOP per forward at 512x1024")
add_test(NAME models_info_r101 COMMAND $<TARGET_FILE:rdd> info --model deeplabv3_resnet101 --input 512x1024)
set_tests_properties(models_info_r101 PROPERTIES PASS_REGULAR_EXPRESSION
                     "parameters: 61,118,950.*= 1031.67 GFLOP per forward at 512x1024")
add_test(NAME models_info_unknown COMMAND $<TARGET_FILE:rdd> info --model deeplabv3_resnet19)
set_tests_properties(models_info_unknown PROPERTIES WILL_FAIL TRUE)
