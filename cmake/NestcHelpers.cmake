# nestc_unit_test(NAME [LABELS l...]) — one cmocka test executable tests/unit/NAME.c linked to the
# static library (so private symbols are reachable), registered with ctest.
function(nestc_unit_test name)
  cmake_parse_arguments(T "" "" "LABELS" ${ARGN})
  add_executable(${name} ${name}.c)
  target_link_libraries(${name} PRIVATE nestc_static PkgConfig::CMOCKA)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(${name} PRIVATE NESTC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    NESTC_VECTORS_DIR="${NESTC_SPEC_DIR}")
  add_test(NAME unit.${name} COMMAND ${name})
  math(EXPR t "120 * ${NESTC_TEST_TIMEOUT_FACTOR}")
  set_tests_properties(unit.${name} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT ${t})
endfunction()

# nestc_test_environment() — once the calling directory is processed, every test registered there gets
# NESTC_TEST_TIMEOUT_FACTOR in its environment: the waits inside the tests (readiness, replies, bounds) scale
# by the same factor as their ctest TIMEOUT, so a slow or loaded machine makes tests slower, not red.
function(nestc_test_environment)
  cmake_language(DEFER CALL _nestc_test_environment_apply)
endfunction()
function(_nestc_test_environment_apply)
  get_property(tests DIRECTORY PROPERTY TESTS)
  if(tests)
    set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT
      "NESTC_TEST_TIMEOUT_FACTOR=${NESTC_TEST_TIMEOUT_FACTOR}")
  endif()
endfunction()
