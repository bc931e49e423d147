# egressd_bpf_skeleton(NAME name SOURCES a.bpf.c ... HEADERS h...)
#   clang -target bpf each source -> .bpf.o (depending on every header, the ABI and vmlinux.h),
#   `bpftool gen object` links them into one object, `bpftool gen skeleton` makes
#   ${name}.skel.h, exposed through the INTERFACE target ${name}_skel.
find_program(EGRESSD_CLANG NAMES clang-14 clang REQUIRED)
find_program(EGRESSD_BPFTOOL NAMES bpftool REQUIRED PATHS /usr/sbin /usr/local/sbin)

execute_process(COMMAND ${EGRESSD_CLANG} --version OUTPUT_VARIABLE _clang_version_out)
string(REGEX MATCH "version ([0-9]+)" _ "${_clang_version_out}")
if(CMAKE_MATCH_1 AND CMAKE_MATCH_1 LESS 12)
  message(FATAL_ERROR "egressd BPF needs clang >= 12 (found ${CMAKE_MATCH_1})")
endif()

# clang -target bpf does not search the host's multiarch dirs (asm/types.h); pass them
# after everything else, as libbpf-bootstrap's FindBpfObject does.
execute_process(COMMAND ${EGRESSD_CLANG} -v -E - INPUT_FILE /dev/null
                ERROR_VARIABLE _clang_search OUTPUT_QUIET)
string(REGEX MATCH "#include <...> search starts here:\n(.*)\nEnd of search list" _ "${_clang_search}")
string(REGEX REPLACE "\n *" ";" _clang_dirs "${CMAKE_MATCH_1}")
set(EGRESSD_CLANG_SYSTEM_INCLUDES "")
foreach(_dir ${_clang_dirs})
  if(_dir)
    list(APPEND EGRESSD_CLANG_SYSTEM_INCLUDES -idirafter ${_dir})
  endif()
endforeach()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(EGRESSD_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(EGRESSD_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "egressd: unsupported architecture ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(egressd_bpf_skeleton)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;HEADERS" ${ARGN})
  set(_objects "")
  foreach(_src ${ARG_SOURCES})
    get_filename_component(_base ${_src} NAME_WE)
    set(_obj ${CMAKE_CURRENT_BINARY_DIR}/${_base}.bpf.o)
    add_custom_command(
      OUTPUT ${_obj}
      COMMAND ${EGRESSD_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${EGRESSD_BPF_ARCH}
              -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter ${EGRESSD_BPF_EXTRA_FLAGS}
              -I${PROJECT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR}/vmlinux
              ${EGRESSD_CLANG_SYSTEM_INCLUDES}
              -c ${CMAKE_CURRENT_SOURCE_DIR}/${_src} -o ${_obj}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${_src} ${ARG_HEADERS}
      COMMENT "[clang] ${_src}"
      VERBATIM)
    list(APPEND _objects ${_obj})
  endforeach()

  set(_linked ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}.bpf.o)
  set(_skel ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}.skel.h)
  add_custom_command(
    OUTPUT ${_linked}
    COMMAND ${EGRESSD_BPFTOOL} gen object ${_linked} ${_objects}
    DEPENDS ${_objects}
    COMMENT "[link] ${ARG_NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${_skel}
    COMMAND ${EGRESSD_BPFTOOL} gen skeleton ${_linked} name ${ARG_NAME} > ${_skel}
    DEPENDS ${_linked}
    COMMENT "[skel] ${ARG_NAME}.skel.h"
    VERBATIM)
  add_custom_target(${ARG_NAME}_skel_gen DEPENDS ${_skel})
  add_library(${ARG_NAME}_skel INTERFACE)
  add_dependencies(${ARG_NAME}_skel ${ARG_NAME}_skel_gen)
  target_include_directories(${ARG_NAME}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(${ARG_NAME}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
