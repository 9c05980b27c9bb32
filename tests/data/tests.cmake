# End-to-end: the built `rdd` binary generates a synthetic Cityscapes dataset, checks it with
# `rdd info --dataset cityscapes` (exit 0, no bad files, every class count recounted independently by
# tests/data/check_info.py with numpy + PIL), measures the loader with
# `rdd bench --data`, and `rdd info` exits 1 naming a corrupted file.
set(_rdd_data_e2e ${CMAKE_CURRENT_BINARY_DIR}/data_e2e)
add_test(NAME data_e2e_synth_info_bench
         COMMAND sh -c "set -e
rm -rf '${_rdd_data_e2e}'
'$<TARGET_FILE:rdd>' synth --out '${_rdd_data_e2e}' --train 8 --val 4 --size 64x128 --seed 3
'$<TARGET_FILE:rdd>' info --dataset cityscapes --data-root '${_rdd_data_e2e}' --split train > '${_rdd_data_e2e}/info.txt'
grep -q 'images: 8' '${_rdd_data_e2e}/info.txt'
grep -q 'bad files: none' '${_rdd_data_e2e}/info.txt'
grep -q 'image sizes (HxW, as --crop and --input take them): 64x128 ' '${_rdd_data_e2e}/info.txt'
grep -Eq '^  13 +car +[1-9]' '${_rdd_data_e2e}/info.txt'
if ${RDD_PYTHON} -c 'import PIL' 2>/dev/null; then ${RDD_PYTHON} '${CMAKE_CURRENT_SOURCE_DIR}/data/check_info.py' '${_rdd_data_e2e}' train '${_rdd_data_e2e}/info.txt'; else echo 'PIL missing: per-class counts not cross-checked'; fi
'$<TARGET_FILE:rdd>' bench --data --dataset cityscapes --data-root '${_rdd_data_e2e}' --crop 32x64 --batch 2 --workers 2 --iterations 4 | grep -q 'img/s'
f=$(ls '${_rdd_data_e2e}'/leftImg8bit/val/*/*.png | head -1)
echo garbage > \"$f\"
if '$<TARGET_FILE:rdd>' info --dataset cityscapes --data-root '${_rdd_data_e2e}' --split val > '${_rdd_data_e2e}/bad.txt'; then exit 1; fi
grep -q 'bad files: 1' '${_rdd_data_e2e}/bad.txt'
grep -q \"$f\" '${_rdd_data_e2e}/bad.txt'
echo e2e ok")
