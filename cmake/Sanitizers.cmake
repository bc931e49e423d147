# EGRESSD_SANITIZE=address;undefined builds everything (tests included) with those sanitizers.
if(EGRESSD_SANITIZE)
  string(REPLACE ";" "," _egressd_san "${EGRESSD_SANITIZE}")
  add_compile_options(-fsanitize=${_egressd_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # GCC 12 reports libstdc++'s <regex> (pulled in by cxxopts) as maybe-uninitialized
  # under ASan: a known false positive, not our code.
  # And it reports Asio's coroutine frames as freed by a "mismatched" operator delete:
  # once ASan's instrumentation stops it from seeing through the frame's class-specific
  # operator new, it compares the inlined std::aligned_alloc with the class's operator
  # delete (which calls std::free, the right pair). ASan's alloc_dealloc_mismatch check
  # (on in scripts/test-sanitizers.sh) verifies the real pairs at run time instead.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-maybe-uninitialized -Wno-mismatched-new-delete)
  endif()
  add_link_options(-fsanitize=${_egressd_san})
  # clang 14's -fsanitize=function (part of `undefined`) cannot compile C++20 coroutines
  # ("Cannot represent a difference across sections" in the assembler): without it, the
  # other UBSan checks still run. Calls through mistyped function pointers are what it
  # catches; the code has none outside what the compiler already type-checks.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND EGRESSD_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize=function)
  endif()
endif()
# GCC 12 warns (-Wtsan) that TSan does not model std::atomic_thread_fence, which Asio uses.
if(EGRESSD_SANITIZE MATCHES "thread")
  add_compile_options(-Wno-tsan)
endif()
# EGRESSD_FUZZ=ON (clang only) instruments every target for libFuzzer's coverage feedback
# and builds the libFuzzer binaries of tests/fuzz (scripts/fuzz.sh: with address;undefined).
option(EGRESSD_FUZZ "Build the libFuzzer targets (clang)" OFF)
if(EGRESSD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "EGRESSD_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
