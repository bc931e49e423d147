# -Wall -Wextra (-Werror) for every C++ target in the project.
add_compile_options(-Wall -Wextra -Wshadow -Wno-missing-field-initializers)
# GCC 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s own inlined char_traits::copy
# for every `"literal" + std::string&&` (GCC PR 105329 / PR 105651, fixed in GCC 13): a false
# positive on standard-library code, not on ours, hit in dozens of places. Off for GCC 12 only;
# every other compiler and warning keep -Werror.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options(-Wno-restrict)
endif()
if(EGRESSD_WERROR)
  add_compile_options(-Werror)
endif()
