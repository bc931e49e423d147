# EGRESSD_SANITIZE=address;undefined builds everything (tests included) with those sanitizers.
if(EGRESSD_SANITIZE)
  string(REPLACE ";" "," _egressd_san "${EGRESSD_SANITIZE}")
  add_compile_options(-fsanitize=${_egressd_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # GCC 12 reports libstdc++'s <regex> (pulled in by cxxopts) as maybe-uninitialized
  # under ASan: a known false positive, not our code.
  add_compile_options(-Wno-maybe-uninitialized)
  add_link_options(-fsanitize=${_egressd_san})
endif()
# GCC 12 warns (-Wtsan) that TSan does not model std::atomic_thread_fence, which Asio uses.
if(EGRESSD_SANITIZE MATCHES "thread")
  add_compile_options(-Wno-tsan)
endif()
