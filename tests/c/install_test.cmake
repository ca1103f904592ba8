# install_test.cmake: installs the build in BUILD_DIR into WORK_DIR/prefix (cmake --install) and
# builds and runs a consumer against that prefix, by MODE:
#   find_package  the project in CONSUMER_DIR: find_package(keyformer CONFIG REQUIRED)
#   pkg_config    CONSUMER_DIR/main.c compiled with `pkg-config --cflags --libs keyformer`
# Run with cmake -DMODE=... -DBUILD_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=... -DC_COMPILER=...
# -DGENERATOR=... -DVERSION=... -P install_test.cmake
cmake_minimum_required(VERSION 3.16)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ ${ARGN}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

# What an install holds: the library with its soname link, the header, the CMake package, the .pc.
foreach(f lib/libkeyformer.so.${VERSION} lib/libkeyformer.so.0 lib/libkeyformer.so include/keyformer.h
          lib/cmake/keyformer/keyformerConfig.cmake lib/cmake/keyformer/keyformerConfigVersion.cmake
          lib/pkgconfig/keyformer.pc)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "the install lacks ${f}")
  endif()
endforeach()
foreach(link lib/libkeyformer.so.0 lib/libkeyformer.so)
  if(NOT IS_SYMLINK "${prefix}/${link}")
    message(FATAL_ERROR "${link} is not a symbolic link")
  endif()
endforeach()

if(MODE STREQUAL "find_package")
  run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
      "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
  run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
  run("${WORK_DIR}/build/consumer")
elseif(MODE STREQUAL "pkg_config")
  find_program(PKG_CONFIG pkg-config)
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config not found (build/scripts/ensure-tools.sh installs it)")
  endif()
  set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
  execute_process(COMMAND "${PKG_CONFIG}" --modversion keyformer OUTPUT_VARIABLE v OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT v STREQUAL VERSION)
    message(FATAL_ERROR "pkg-config --modversion keyformer: '${v}' (rc ${rc}), want ${VERSION}")
  endif()
  execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs keyformer OUTPUT_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags --libs keyformer failed")
  endif()
  message("pkg-config --cflags --libs keyformer: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run("${C_COMPILER}" -std=c99 -Wall -Wextra -Werror "${CONSUMER_DIR}/main.c" ${flags}
      "-Wl,-rpath,${prefix}/lib" -o "${WORK_DIR}/consumer")
  run("${WORK_DIR}/consumer")
else()
  message(FATAL_ERROR "MODE must be find_package or pkg_config, not '${MODE}'")
endif()
