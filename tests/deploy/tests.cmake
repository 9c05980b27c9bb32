# ONNX Runtime checks (Python): reported as skipped (77) where /usr/bin/python3 has no onnxruntime —
# scripts/setup.sh installs it, so CI runs them.
#   deploy_onnxruntime          test_deploy's "onnxruntime" suite: every model, static and dynamic, BN folded
#                               and kept, against rdd within 1e-4; the pool and resize forms; a failing check
#   deploy_r18_predict_argmax   synth → train → export → predict: the exported R18 DeepLabV3's labels in ONNX
#                               Runtime, fed from the model's metadata only, equal `rdd predict`'s on ≥ 99.9%
set(_rdd_needs_ort "'${RDD_PYTHON}' -c 'import onnxruntime' 2>/dev/null || { echo 'SKIP: onnxruntime is not installed for ${RDD_PYTHON} (run scripts/setup.sh)'; exit 77; }")
add_test(NAME deploy_onnxruntime
         COMMAND sh -c "${_rdd_needs_ort}; exec \"$0\" --test-suite=onnxruntime" $<TARGET_FILE:test_deploy>)
add_test(NAME deploy_r18_predict_argmax
         COMMAND ${RDD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_predict_argmax.py $<TARGET_FILE:rdd>
                 ${CMAKE_CURRENT_BINARY_DIR}/deploy_r18_predict_argmax)
set_tests_properties(deploy_onnxruntime deploy_r18_predict_argmax PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)

# `rdd export` through the built binary: a refusal exits with 1 and says why on stderr.
add_test(NAME deploy_export_unknown_model
         COMMAND sh -c "\"$0\" export --model deeplabv3_resnet19 --weights none.safetensors --out m.onnx --dynamic; echo \"exit $?\"" $<TARGET_FILE:rdd>)
set_tests_properties(deploy_export_unknown_model PROPERTIES PASS_REGULAR_EXPRESSION
                     "rdd: error: --model: unknown model 'deeplabv3_resnet19' \\(known: [a-z0-9_, ]+\\).exit 1")

# `rdd bench --mode forward --fold-bn`: the exported graph's forward timed beside the eval forward, BN kept
# and folded (the numbers are the machine's; the test reads the table's shape).
add_test(NAME deploy_bench_fold_bn
         COMMAND $<TARGET_FILE:rdd> bench --model psp_mobilenetv2 --width 0.125 --mode forward --crop 32x48 --batch 1
                 --iterations 2 --warmup 1 --device cpu --fold-bn)
set_tests_properties(deploy_bench_fold_bn PROPERTIES PASS_REGULAR_EXPRESSION
  "student forward \\(eval\\) .*the exported graph's forward on cpu \\(main head only.*BN kept +[0-9.]+ +[0-9.]+% +[0-9.]+ img/s.*BN folded into the convs +[0-9.]+ +[0-9.]+%")
