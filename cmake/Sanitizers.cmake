# EGRESSD_SANITIZE=address;undefined builds everything (tests included) with those sanitizers.
if(EGRESSD_SANITIZE)
  string(REPLACE ";" "," _egressd_san "${EGRESSD_SANITIZE}")
  add_compile_options(-fsanitize=${_egressd_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_egressd_san})
endif()
