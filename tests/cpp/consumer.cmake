# ctest driver for the installed C++ package (run with cmake -P).
#   STEP=install: install the "cpp" component of BUILD_DIR into PREFIX.
#   STEP=build:   configure and build the project SOURCE_DIR in WORK_DIR against PREFIX with
#                 the generator, compiler and configuration of the calling build, then run
#                 the program RUN if given.
# GENERATOR, GENERATOR_PLATFORM, GENERATOR_TOOLSET, MAKE_PROGRAM, CXX_COMPILER, CONFIG and
# VERSION (the project() version, which the package must report) come from the calling
# build (tests/cpp/CMakeLists.txt).

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${what} failed: ${rc}")
  endif()
endfunction()

set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()

if(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${PREFIX}")
  run("install of the cpp component"
      "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --component cpp --prefix "${PREFIX}" ${config_args})
elseif(STEP STREQUAL "build")
  set(configure_args -S "${SOURCE_DIR}" -B "${WORK_DIR}" "-DCMAKE_PREFIX_PATH=${PREFIX}"
      "-DPROCTOPO_EXPECTED_VERSION=${VERSION}")
  if(GENERATOR)
    list(APPEND configure_args -G "${GENERATOR}")
  endif()
  if(GENERATOR_PLATFORM)
    list(APPEND configure_args -A "${GENERATOR_PLATFORM}")
  endif()
  if(GENERATOR_TOOLSET)
    list(APPEND configure_args -T "${GENERATOR_TOOLSET}")
  endif()
  if(MAKE_PROGRAM)
    list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  if(CXX_COMPILER)
    list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(CONFIG)
    # Single-config generators read this; multi-config ones take --config below.
    list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
  endif()
  file(REMOVE_RECURSE "${WORK_DIR}")
  run("configuring ${SOURCE_DIR}" "${CMAKE_COMMAND}" ${configure_args})
  run("building ${SOURCE_DIR}" "${CMAKE_COMMAND}" --build "${WORK_DIR}" ${config_args})
  if(RUN)
    set(exe "${WORK_DIR}/${RUN}")
    if(CONFIG AND IS_DIRECTORY "${WORK_DIR}/${CONFIG}")  # multi-config generators
      set(exe "${WORK_DIR}/${CONFIG}/${RUN}")
    endif()
    run("the program ${RUN}" "${exe}")
  endif()
else()
  message(FATAL_ERROR "consumer.cmake: STEP must be install or build, not '${STEP}'")
endif()
