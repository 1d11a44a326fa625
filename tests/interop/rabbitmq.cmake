# The RabbitMQ broker shared by one test run (included by tests/CMakeLists.txt before its subdirectories, so
# every test folder can use nestc_rabbitmq_test). Starting RabbitMQ takes seconds, so one broker serves all
# tests: the ctest fixture "rabbitmq" is a setup test that starts it (plain and TLS listeners; TLS with the
# interop test certificates) and a cleanup test that stops it by PID. README.md in this folder, "RabbitMQ".
#
#   NESTC_RABBITMQ_SERVER   rabbitmq-server script (Debian: /usr/lib/rabbitmq/bin, not the /usr/sbin wrapper)
#   NESTC_RMQ_ENV           the file the setup test writes: NAME=VALUE lines (NESTC_RMQ_URL, NESTC_RMQS_URL,
#                           NESTC_RMQ_CA, RMQ_CTL, …)
#   NESTC_RMQ_AVAILABLE     TRUE when the fixture is registered
#
# nestc_rabbitmq_test(<test> ...) — for tests already added with add_test (call it in the same folder): they
# get FIXTURES_REQUIRED rabbitmq, the label "rmq" and NESTC_RMQ_ENV=<file> in their environment. A test whose
# command is wrapped as `with-shared-rabbitmq.sh -- <command...>` (NESTC_WITH_SHARED_RABBITMQ) also has
# NESTC_RMQ_URL etc. in its environment and {RMQ_URL}/{RMQS_URL}/{RMQ_ID} replaced in its arguments; an
# unwrapped one reads the file. Without rabbitmq-server (or epmd, or Node.js for the free ports) the tests
# are DISABLED, which ctest reports.
find_program(NESTC_RABBITMQ_SERVER rabbitmq-server PATHS /usr/lib/rabbitmq/bin /usr/local/lib/rabbitmq/bin
  NO_DEFAULT_PATH)
find_program(NESTC_EPMD epmd)
find_program(NESTC_NODE node)
set(NESTC_RMQ_STATE ${PROJECT_BINARY_DIR}/rabbitmq)
set(NESTC_RMQ_ENV ${NESTC_RMQ_STATE}/env)
set(NESTC_WITH_SHARED_RABBITMQ ${CMAKE_CURRENT_LIST_DIR}/with-shared-rabbitmq.sh)
if(NESTC_RABBITMQ_SERVER AND NESTC_EPMD AND NESTC_NODE)
  set(NESTC_RMQ_AVAILABLE TRUE)
  set(_rmq_fixture ${CMAKE_CURRENT_LIST_DIR}/rabbitmq-fixture.sh)
  set(_rmq_env "NODE=${NESTC_NODE};RABBITMQ_SERVER=${NESTC_RABBITMQ_SERVER};EPMD=${NESTC_EPMD}"
    "NESTC_TEST_TIMEOUT_FACTOR=${NESTC_TEST_TIMEOUT_FACTOR}")
  # The TLS listener uses the interop certificates (fixture interop_certs, tests/interop/CMakeLists.txt).
  add_test(NAME interop.rabbitmq.start
    COMMAND ${_rmq_fixture} start ${NESTC_RMQ_STATE} --tls ${PROJECT_BINARY_DIR}/tests/interop/certs)
  set_tests_properties(interop.rabbitmq.start PROPERTIES FIXTURES_SETUP rabbitmq FIXTURES_REQUIRED interop_certs
    LABELS "interop;rmq" TIMEOUT ${T300} ENVIRONMENT "${_rmq_env}")
  add_test(NAME interop.rabbitmq.stop COMMAND ${_rmq_fixture} stop ${NESTC_RMQ_STATE})
  set_tests_properties(interop.rabbitmq.stop PROPERTIES FIXTURES_CLEANUP rabbitmq
    LABELS "interop;rmq" TIMEOUT ${T300} ENVIRONMENT "${_rmq_env}")
else()
  set(NESTC_RMQ_AVAILABLE FALSE)
  message(STATUS "RabbitMQ tests disabled: rabbitmq-server, epmd or node not found")
endif()

function(nestc_rabbitmq_test)
  foreach(test ${ARGN})
    if(NOT NESTC_RMQ_AVAILABLE)
      set_tests_properties(${test} PROPERTIES DISABLED TRUE)
      continue()
    endif()
    set_property(TEST ${test} APPEND PROPERTY FIXTURES_REQUIRED rabbitmq)
    get_property(labels TEST ${test} PROPERTY LABELS)
    if(NOT "rmq" IN_LIST labels)
      set_property(TEST ${test} APPEND PROPERTY LABELS rmq)
    endif()
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT "NESTC_RMQ_ENV=${NESTC_RMQ_ENV}")
  endforeach()
endfunction()
