# End-to-end runs of the built `rdd` binary (CPU, tiny models): the trainer's pipeline, exact resume,
# SIGKILL safety and refusals of bad input. See tests/apps/e2e_trainer.sh.
foreach(_section pipeline resume kill errors)
  add_test(NAME apps_e2e_${_section}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e_trainer.sh $<TARGET_FILE:rdd>
                   ${CMAKE_CURRENT_BINARY_DIR}/apps_e2e_${_section} ${_section})
  set_tests_properties(apps_e2e_${_section} PROPERTIES TIMEOUT 900)
endforeach()
