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
  set_tests_properties(unit.${name} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT 120)
endfunction()
