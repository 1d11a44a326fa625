# Runs the built nestc with ARGS (a ;-list) and writes its standard output to OUT: the man page and the
# completion scripts are generated from the CLI's own option table, so they cannot drift from --help.
execute_process(COMMAND ${NESTC} ${ARGS} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "${NESTC} ${ARGS} failed: ${rc}")
endif()
