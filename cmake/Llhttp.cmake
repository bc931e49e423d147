# llhttp (HTTP/1.1 parser) from Debian's node-llhttp, which ships the generated C sources
# under /usr/share/llhttp and the header under /usr/share/include/llhttp. Built as a static
# library without our warning flags (it is third-party C).
find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp /usr/include NO_DEFAULT_PATH)
find_path(LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp NO_DEFAULT_PATH)
if(NOT LLHTTP_INCLUDE_DIR OR NOT LLHTTP_SOURCE_DIR)
  message(FATAL_ERROR "llhttp sources not found: install node-llhttp (scripts/install-deps.sh)")
endif()
add_library(egressd_llhttp STATIC ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c
                                  ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(egressd_llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(egressd_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
target_compile_options(egressd_llhttp PRIVATE -w)
# llhttp's strict build (the file holds both; the header defaults to the loose one). The
# loose build skips the two bytes after each chunk's data without looking at them, so
# "5\r\nhelloXY0\r\n\r\n" ended a message that a strict upstream rejects or frames
# differently (found by fuzz.http_chunked). Every other laxity of the loose build was
# already refused by egressd's own head guard (userspace/http/head_guard.h).
target_compile_definitions(egressd_llhttp PRIVATE LLHTTP_STRICT_MODE=1)
