# -Wall -Wextra (-Werror) for every C++ target in the project.
add_compile_options(-Wall -Wextra -Wshadow -Wno-missing-field-initializers)
if(EGRESSD_WERROR)
  add_compile_options(-Werror)
endif()
